/**
 * Runs whose owner died. Every run registers its directory with the vmlab
 * process that owns it (<cache>/runs/<id>.json: the directory, the owner's
 * pid and its start time, so that a reused pid never passes for the owner).
 * A run that ends normally removes its entry. A run whose owner was killed
 * (SIGKILL, the OOM killer, a CI runner's cancel) leaves it behind, and the
 * next command that starts machines ends what is left of it: a QEMU that was
 * started keepable (the others die with their owner: src/vm/machine.ts), the
 * overlays, the sockets and any checkpoint, whole or half-written. Kept
 * machines (src/vm/kept.ts) are the deliberate exception and stay.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { cacheDir } from "../paths.ts";
import { listKept } from "./kept.ts";
import { removeSocketLink, socketDir } from "./socket-dir.ts";
import { removeBuildDir } from "../image/tree.ts";

export interface RunOwner {
  runDir: string;
  pid: number;
  /** The owner's start time in clock ticks since boot (/proc/PID/stat, field 22). */
  pidStart: number;
  registeredAt: string;
}

export function runsDir(): string {
  return join(cacheDir(), "runs");
}

function entryFile(runDir: string): string {
  return join(runsDir(), `${createHash("sha256").update(resolve(runDir)).digest("hex").slice(0, 16)}.json`);
}

/** A process's start time (clock ticks since boot), or undefined when there is no such process. */
export function processStart(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The fields after the command name, which is in parentheses and may hold spaces.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z" || rest[0] === "X") return undefined;
    return Number(rest[19]);
  } catch {
    return undefined;
  }
}

/** Whether the run's owner is still the process that registered it. */
export function ownerAlive(o: Pick<RunOwner, "pid" | "pidStart">): boolean {
  return processStart(o.pid) === o.pidStart;
}

/** Register `runDir` as owned by this process; `release()` when the run has ended. */
export async function ownRun(runDir: string): Promise<{ release(): Promise<void> }> {
  const file = entryFile(runDir);
  const entry: RunOwner = { runDir: resolve(runDir), pid: process.pid, pidStart: processStart(process.pid) ?? 0, registeredAt: new Date().toISOString() };
  await mkdir(runsDir(), { recursive: true });
  await writeFile(`${file}.${process.pid}`, JSON.stringify(entry, null, 2) + "\n");
  await rename(`${file}.${process.pid}`, file);
  return { release: () => rm(file, { force: true }) };
}

/** QEMU processes whose command line names a file in `runDir` (its disks, console log or sockets). */
export function qemuProcessesOf(runDir: string): number[] {
  const dir = resolve(runDir);
  const link = socketDir(dir, "vm.serial.sock");
  const pids: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (!/qemu-system/.test(args[0] ?? "")) continue;
    if (processStart(Number(p)) === undefined) continue;
    if (args.some((a) => a.includes(`${dir}/`) || (link !== dir && a.includes(`${link}/`)))) pids.push(Number(p));
  }
  return pids;
}

export interface OrphanCleanup {
  runDir: string;
  ownerPid: number;
  qemu: number[];
  removed: string[];
}

/**
 * End what runs of dead owners left: their QEMU (unless kept), overlays,
 * sockets and checkpoints. The report, console logs and anything a kept
 * machine still uses stay. Returns one record per run cleaned.
 */
export async function sweepOrphans(): Promise<OrphanCleanup[]> {
  if (!existsSync(runsDir())) return [];
  const kept = await listKept();
  const out: OrphanCleanup[] = [];
  for (const f of await readdir(runsDir())) {
    if (!f.endsWith(".json")) continue;
    const file = join(runsDir(), f);
    let o: RunOwner;
    try {
      o = JSON.parse(await readFile(file, "utf8")) as RunOwner;
    } catch {
      continue;
    }
    if (ownerAlive(o)) continue;
    const keptHere = kept.filter((k) => resolve(k.reportDir) === o.runDir);
    const keptPids = new Set(keptHere.filter((k) => k.alive).map((k) => k.pid));
    const keptFiles = new Set(keptHere.flatMap((k) => [...k.overlays, ...(k.disks ?? []).map((d) => d.path)]));
    const qemu = qemuProcessesOf(o.runDir).filter((p) => !keptPids.has(p));
    for (const pid of qemu) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone meanwhile */
      }
    }
    const removed: string[] = [];
    if (existsSync(o.runDir)) {
      for (const name of await readdir(o.runDir)) {
        const path = join(o.runDir, name);
        const disk = /\.(qcow2|raw)$/.test(name) && !keptFiles.has(path);
        const socket = /\.sock$/.test(name) && keptHere.length === 0;
        // Checkpoints live in their own directories; one of a dead run is never forked again, whole or not.
        const checkpoint = /^checkpoint-/.test(name);
        if (disk || socket || checkpoint) {
          await rm(path, { recursive: true, force: true });
          removed.push(path);
        }
      }
      if (keptHere.length === 0) removeSocketLink(o.runDir, socketDir(o.runDir, "vm.serial.sock"));
    }
    await rm(file, { force: true });
    out.push({ runDir: o.runDir, ownerPid: o.pid, qemu, removed });
  }
  return out;
}

/**
 * Build directories of image and tree builds whose process died (a killed
 * `vmlab image build`, or a run killed while it built): mmdebstrap may have
 * left /proc, /sys and /dev/pts mounted in them. They are unmounted and
 * removed without crossing into another filesystem (removeBuildDir). Only a
 * directory whose pid no longer runs is touched.
 */
export async function sweepDeadBuilds(dirs: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const name of await readdir(dir)) {
      const m = /^\.build-.*-(\d+)$/.exec(name);
      if (!m || processStart(Number(m[1])) !== undefined) continue;
      try {
        await removeBuildDir(join(dir, name));
        removed.push(join(dir, name));
      } catch {
        /* left for the next time; a failed clean-up never stops the command */
      }
    }
  }
  return removed;
}

/** The one line a command prints after cleaning up after dead runs. */
export function describeCleanup(c: OrphanCleanup[]): string | undefined {
  if (c.length === 0) return undefined;
  const qemu = c.reduce((n, x) => n + x.qemu.length, 0);
  const files = c.reduce((n, x) => n + x.removed.length, 0);
  return `cleaned up after ${c.length} run${c.length === 1 ? "" : "s"} whose vmlab process died (${c.map((x) => `pid ${x.ownerPid}`).join(", ")}): ended ${qemu} QEMU, removed ${files} overlay, socket and checkpoint file${files === 1 ? "" : "s"} (${c.map((x) => x.runDir).join(", ")})`;
}
