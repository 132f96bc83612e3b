/**
 * The registry of kept machines without a guest: liveness never trusts a pid
 * alone, dead entries are cleaned (overlays and entry gone, report kept), and
 * `vmlab stop` ends a real QEMU (`-machine none`, which starts in
 * milliseconds) by QMP.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { execa, type ResultPromise } from "execa";
import { dir, type DirectoryResult } from "tmp-promise";
import { cleanKept, keptDir, keptSshArgs, listKept, liveness, saveKept, stopKept, type KeptVm } from "../../src/vm/kept.ts";
import { endQemu, vmlab } from "../vm/helpers.ts";

let tmp: DirectoryResult;
let qemu: ResultPromise<{ reject: false; detached: true }> | undefined;
const savedCache = process.env.VMLAB_CACHE;

beforeEach(async () => {
  tmp = await dir({ unsafeCleanup: true, prefix: "vmlab-kept-" });
  process.env.VMLAB_CACHE = join(tmp.path, "cache");
});

afterEach(async () => {
  if (qemu) {
    await endQemu(qemu);
    qemu = undefined;
  }
  if (savedCache === undefined) delete process.env.VMLAB_CACHE;
  else process.env.VMLAB_CACHE = savedCache;
  await tmp.cleanup();
});

/** A run directory with an overlay, sockets and a report, and its kept entry. */
async function fakeRun(id: string, pid: number): Promise<KeptVm> {
  const runDir = join(tmp.path, "reports", `${id}-20260101T000000-abcdef`);
  await mkdir(runDir, { recursive: true });
  for (const f of ["sda.qcow2", "report.json", "vm.console.log"]) await writeFile(join(runDir, f), "x");
  const e: KeptVm = {
    id,
    scenario: id.split("-")[0]!,
    machine: "vm",
    pid,
    startedAt: new Date().toISOString(),
    keptAt: new Date().toISOString(),
    verdict: "fail",
    sshPort: 2222,
    sshKey: join(tmp.path, "key"),
    serialSocket: join(runDir, "vm.serial.sock"),
    qmpSocket: join(runDir, "vm.qmp.sock"),
    serialLog: join(runDir, "vm.console.log"),
    reportDir: runDir,
    overlays: [join(runDir, "sda.qcow2")],
  };
  await saveKept(e);
  return e;
}

/** A pid that no process has: past the kernel's pid_max. */
function unusedPid(): number {
  return Number(readFileSync("/proc/sys/kernel/pid_max", "utf8")) + 1;
}

describe("kept machines: liveness", () => {
  it("a pid that does not exist, a pid of another process, or a bad pid is dead", async () => {
    const gone = await fakeRun("gone-000001", unusedPid());
    expect(liveness(gone)).toMatchObject({ alive: false, why: expect.stringContaining("does not exist") });
    // This test's own process exists, but it is not that run's QEMU (a reused pid after a reboot).
    const other = await fakeRun("other-000002", process.pid);
    expect(liveness(other)).toMatchObject({ alive: false, why: expect.stringContaining("is not this machine's QEMU") });
    expect(liveness({ pid: 0, qmpSocket: "/x" }).alive).toBe(false);
    expect(liveness({ pid: -1, qmpSocket: "/x" }).alive).toBe(false);
    const all = await listKept();
    expect(all.map((e) => [e.id, e.alive])).toEqual([
      ["gone-000001", false],
      ["other-000002", false],
    ]);
  });

  it("cleaning removes the overlays, sockets and entry, and keeps the report and console log", async () => {
    const e = await fakeRun("gone-000003", unusedPid());
    await writeFile(e.qmpSocket, "");
    await cleanKept(e);
    expect(existsSync(e.overlays[0]!)).toBe(false);
    expect(existsSync(e.qmpSocket)).toBe(false);
    expect(existsSync(join(keptDir(), "gone-000003.json"))).toBe(false);
    expect(existsSync(join(e.reportDir, "report.json"))).toBe(true);
    expect(existsSync(e.serialLog)).toBe(true);
  });

  it("cleaning never removes a file outside the run's directory", async () => {
    const outside = join(tmp.path, "base.qcow2");
    await writeFile(outside, "base image");
    const e = await fakeRun("evil-000004", unusedPid());
    await cleanKept({ ...e, overlays: [outside, join(e.reportDir, "..", "base.qcow2")] });
    expect(existsSync(outside)).toBe(true);
  });

  it("vmlab ps --json shows dead entries as not alive once, then they are gone; ssh, console and stop name bad ids", async () => {
    const env = { VMLAB_CACHE: process.env.VMLAB_CACHE! };
    const e = await fakeRun("smoke-00dead", process.pid);
    const ps = await vmlab(["ps", "--json"], env);
    expect(ps.exitCode, ps.stderr).toBe(0);
    const list = JSON.parse(ps.stdout) as { id: string; scenario: string; alive: boolean; cleaned: boolean }[];
    expect(list).toEqual([expect.objectContaining({ id: "smoke-00dead", scenario: "smoke", alive: false, cleaned: true })]);
    expect(existsSync(e.overlays[0]!)).toBe(false);
    expect(JSON.parse((await vmlab(["ps", "--json"], env)).stdout)).toEqual([]);
    expect((await vmlab(["ps"], env)).stdout).toContain("no kept machines");

    for (const cmd of [["ssh", "nope"], ["console", "nope"], ["stop", "nope"], ["ssh"], ["stop"]]) {
      const r = await vmlab(cmd, env);
      expect(r.exitCode, cmd.join(" ")).toBe(2);
      expect(r.stderr).toMatch(/no kept machine "nope"|needs the id/);
    }
    // A dead machine named on the command line is cleaned and reported, not attached to.
    const dead = await fakeRun("smoke-0dead2", unusedPid());
    const ssh = await vmlab(["ssh", "smoke-0dead2", "true"], env);
    expect(ssh.exitCode).toBe(2);
    expect(ssh.stderr).toContain("is no longer running");
    expect(existsSync(dead.overlays[0]!)).toBe(false);
  });

  it("ssh arguments: the lab key, no host key bookkeeping, -t only for a terminal", () => {
    const e = { sshKey: "/k", sshPort: 4242 } as KeptVm;
    const a = keptSshArgs(e, ["cat", "/etc/hostname"], false);
    expect(a.slice(0, 4)).toEqual(["-i", "/k", "-p", "4242"]);
    expect(a).toContain("StrictHostKeyChecking=no");
    expect(a).toContain("UserKnownHostsFile=/dev/null");
    expect(a).toContain("LogLevel=ERROR");
    expect(a).toContain("-T");
    expect(a.slice(-3)).toEqual(["root@127.0.0.1", "cat", "/etc/hostname"]);
    expect(keptSshArgs(e, [], true)).toContain("-t");
  });
});

describe("kept machines: a real QEMU", () => {
  it("is alive while it runs; vmlab stop ends it by QMP and cleans its entry", async () => {
    const e = await fakeRun("qemu-000005", 0);
    qemu = execa(
      "qemu-system-x86_64",
      ["-name", "vmlab-vm", "-machine", "none", "-nodefaults", "-display", "none", "-qmp", `unix:${e.qmpSocket},server=on,wait=off`],
      { reject: false, detached: true },
    );
    const entry = { ...e, pid: qemu.pid! };
    await saveKept(entry);
    for (let i = 0; i < 100 && !existsSync(e.qmpSocket); i++) await new Promise((r) => setTimeout(r, 50));
    expect(liveness(entry)).toEqual({ alive: true });
    const ps = JSON.parse((await vmlab(["ps", "--json"], { VMLAB_CACHE: process.env.VMLAB_CACHE! })).stdout) as { id: string; alive: boolean }[];
    expect(ps).toEqual([expect.objectContaining({ id: "qemu-000005", alive: true })]);
    // A prefix names it.
    const stop = await vmlab(["stop", "qemu-0000"], { VMLAB_CACHE: process.env.VMLAB_CACHE! });
    expect(stop.exitCode, stop.stderr).toBe(0);
    expect(stop.stdout).toContain("qemu-000005: stopped;");
    const r = await qemu;
    // QMP quit: QEMU exits by itself with status 0 (not killed by a signal).
    expect(r.exitCode).toBe(0);
    expect(r.signal).toBeUndefined();
    expect(existsSync(`/proc/${entry.pid}`) && readFileSync(`/proc/${entry.pid}/cmdline`, "utf8").includes(e.qmpSocket)).toBe(false);
    expect(await listKept()).toEqual([]);
    expect(existsSync(e.overlays[0]!)).toBe(false);
    expect(existsSync(join(e.reportDir, "report.json"))).toBe(true);
  });

  it("a hung QEMU that does not answer QMP is killed by pid after the grace time", async () => {
    const e = await fakeRun("qemu-000006", 0);
    qemu = execa(
      "qemu-system-x86_64",
      ["-machine", "none", "-nodefaults", "-display", "none", "-qmp", `unix:${e.qmpSocket},server=on,wait=off`],
      { reject: false, detached: true },
    );
    const entry = { ...e, pid: qemu.pid! };
    for (let i = 0; i < 100 && !existsSync(e.qmpSocket); i++) await new Promise((r) => setTimeout(r, 50));
    // Stopped, it still counts as alive, but never answers.
    process.kill(entry.pid, "SIGSTOP");
    expect(liveness(entry).alive).toBe(true);
    expect(await stopKept(entry, 500)).toBe("killed");
    const r = await qemu;
    expect(r.signal).toBe("SIGKILL");
    expect(existsSync(e.overlays[0]!)).toBe(false);
    expect(await listKept()).toEqual([]);
  });
});
