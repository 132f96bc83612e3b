/**
 * Runs whose vmlab process died, without a guest: a real QEMU (`-machine
 * none`, which starts in milliseconds) whose command line names a run
 * directory registered to a dead owner is ended by the next sweep, with the
 * run's overlays, sockets and checkpoints; the report stays. A live owner's
 * run, a reused pid and a kept machine are left alone. And a QEMU started by
 * the lab dies with the process that started it, SIGKILL included.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { execa, type ResultPromise } from "execa";
import { dir, type DirectoryResult } from "tmp-promise";
import { describeCleanup, ownRun, processStart, qemuProcessesOf, runsDir, sweepDeadBuilds, sweepOrphans } from "../../src/vm/orphans.ts";
import { endQemu } from "../vm/helpers.ts";

let tmp: DirectoryResult;
const started: ResultPromise[] = [];
const savedCache = process.env.VMLAB_CACHE;

beforeEach(async () => {
  tmp = await dir({ unsafeCleanup: true, prefix: "vmlab-orphans-" });
  process.env.VMLAB_CACHE = join(tmp.path, "cache");
});

afterEach(async () => {
  for (const p of started.splice(0)) await endQemu(p as never);
  if (savedCache === undefined) delete process.env.VMLAB_CACHE;
  else process.env.VMLAB_CACHE = savedCache;
  await tmp.cleanup();
});

const alive = (pid: number) => processStart(pid) !== undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A run directory as a killed run leaves it: overlays, a socket, a half-written checkpoint, the report. */
async function deadRun(name: string): Promise<string> {
  const runDir = join(tmp.path, "reports", name);
  await mkdir(join(runDir, "checkpoint-3"), { recursive: true });
  for (const f of ["vm-sda.qcow2", "vm-sdb.qcow2", "vm.qmp.sock", "report.json", "vm.console.log", "checkpoint-3/state.partial"]) await writeFile(join(runDir, f), "x");
  return runDir;
}

/** A real QEMU whose command line names the run directory, as the lab's QEMU does (its console log). */
function qemuIn(runDir: string): ResultPromise {
  const p = execa("qemu-system-x86_64", ["-machine", "none", "-nodefaults", "-display", "none", "-chardev", `file,id=log,path=${join(runDir, "vm.console.log")}`], { reject: false });
  started.push(p);
  return p;
}

/** Register `runDir` as owned by a process that has exited. */
async function ownedByTheDead(runDir: string): Promise<number> {
  const child = execa("sleep", ["30"], { reject: false });
  const pid = child.pid!;
  const start = processStart(pid)!;
  await mkdir(runsDir(), { recursive: true });
  await writeFile(join(runsDir(), "dead.json"), JSON.stringify({ runDir, pid, pidStart: start, registeredAt: new Date().toISOString() }));
  child.kill("SIGKILL");
  await child;
  return pid;
}

describe("runs whose vmlab process died", () => {
  it("the next sweep ends their QEMU and removes overlays, sockets and checkpoints; the report stays", async () => {
    const runDir = await deadRun("root-to-lvm-20260101T000000-abcdef");
    const q = qemuIn(runDir);
    for (let i = 0; i < 100 && qemuProcessesOf(runDir).length === 0; i++) await sleep(20);
    expect(qemuProcessesOf(runDir)).toEqual([q.pid]);
    const owner = await ownedByTheDead(runDir);

    const cleaned = await sweepOrphans();
    expect(cleaned).toHaveLength(1);
    expect(cleaned[0]).toMatchObject({ runDir, ownerPid: owner, qemu: [q.pid] });
    await q;
    expect(alive(q.pid!)).toBe(false);
    for (const f of ["vm-sda.qcow2", "vm-sdb.qcow2", "vm.qmp.sock", "checkpoint-3"]) expect(existsSync(join(runDir, f)), f).toBe(false);
    for (const f of ["report.json", "vm.console.log"]) expect(existsSync(join(runDir, f)), f).toBe(true);
    expect(describeCleanup(cleaned)).toMatch(new RegExp(`^cleaned up after 1 run whose vmlab process died \\(pid ${owner}\\): ended 1 QEMU, removed 4 overlay, socket and checkpoint files`));
    // Cleaned once: the entry is gone.
    expect(await sweepOrphans()).toEqual([]);
  });

  it("a run whose owner lives is left alone, and so is one whose pid now belongs to another process", async () => {
    const mine = await deadRun("mine-20260101T000000-000001");
    const held = await ownRun(mine);
    const reused = await deadRun("reused-20260101T000000-000002");
    // The pid of this very process, but another start time: not the owner that registered the run.
    await writeFile(join(runsDir(), "reused.json"), JSON.stringify({ runDir: reused, pid: process.pid, pidStart: (processStart(process.pid) ?? 0) - 1, registeredAt: "" }));
    const cleaned = await sweepOrphans();
    expect(cleaned.map((c) => c.runDir)).toEqual([reused]);
    expect(existsSync(join(mine, "vm-sda.qcow2"))).toBe(true);
    await held.release();
    expect(await sweepOrphans()).toEqual([]);
  });
});

describe("image builds whose process died", () => {
  it("their build directories go, mounts first; a live build's stays", async () => {
    const trees = join(tmp.path, "trees");
    const child = execa("sleep", ["30"], { reject: false });
    const dead = child.pid!;
    child.kill("SIGKILL");
    await child;
    const deadDir = join(trees, `.build-bookworm-abc-${dead}`);
    const liveDir = join(trees, `.build-bookworm-abc-${process.pid}`);
    for (const d of [deadDir, liveDir]) await mkdir(join(d, "proc"), { recursive: true });
    // mmdebstrap killed mid-build leaves filesystems mounted in its directory: a tmpfs stands in for /proc here.
    await execa("mount", ["-t", "tmpfs", "-o", "size=1m", "vmlab-test", join(deadDir, "proc")]);
    await writeFile(join(deadDir, "proc", "inside-the-mount"), "x");
    expect(await sweepDeadBuilds([trees, join(tmp.path, "no-such-dir")])).toEqual([deadDir]);
    expect(existsSync(deadDir)).toBe(false);
    expect(existsSync(liveDir)).toBe(true);
    expect((await readFile("/proc/mounts", "utf8")).includes(deadDir)).toBe(false);
  });
});

describe("a QEMU tied to the process that starts it", () => {
  it("dies when that process is killed with SIGKILL", async () => {
    const runDir = await deadRun("tied-20260101T000000-000003");
    // A stand-in for the lab: a shell that starts QEMU the way src/vm/machine.ts does, then waits.
    const lab = execa("sh", ["-c", `setpriv --pdeathsig KILL -- qemu-system-x86_64 -machine none -nodefaults -display none -chardev file,id=log,path=${join(runDir, "vm.console.log")} & wait`], { reject: false });
    started.push(lab);
    for (let i = 0; i < 100 && qemuProcessesOf(runDir).length === 0; i++) await sleep(20);
    const [pid] = qemuProcessesOf(runDir);
    expect(pid).toBeDefined();
    lab.kill("SIGKILL");
    await lab;
    for (let i = 0; i < 100 && alive(pid!); i++) await sleep(20);
    expect(alive(pid!)).toBe(false);
  });
});
