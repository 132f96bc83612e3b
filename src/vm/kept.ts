/**
 * Kept machines: a QEMU left running after its scenario (`vmlab run --keep`)
 * so that someone can step into it with `vmlab ssh` or `vmlab console`, and
 * end it with `vmlab stop`.
 *
 * Each kept machine has an entry in <cache>/kept/<id>.json. An entry is alive
 * only while its pid exists, is not a zombie, and is the very QEMU of that run
 * (its command line names the run's own QMP socket). A pid reused by another
 * process, or a host that rebooted, therefore never reads as alive. A dead
 * entry is cleaned: its overlays, sockets and the entry itself are removed;
 * the run's report directory (report, console log) stays.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { removeSocketLink } from "./socket-dir.ts";
import { labSshOptions } from "./ssh.ts";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, isAbsolute } from "node:path";
import { UsageError } from "../errors.ts";
import { cacheDir } from "../paths.ts";
import type { Machine } from "./machine.ts";
import type { DiskAttachment } from "./qemu-args.ts";
import { QmpClient } from "./qmp.ts";

export interface KeptVm {
  /** Short name used on the command line: `<scenario>-<6 hex>`. */
  id: string;
  scenario: string;
  /** The machine's name within the run ("vm"). */
  machine: string;
  pid: number;
  /** When QEMU was started, and when the run finished and handed it over. */
  startedAt: string;
  keptAt: string;
  /** The scenario's verdict when the machine was kept. */
  verdict: "pass" | "fail";
  sshPort: number;
  sshKey: string;
  serialSocket: string;
  qmpSocket: string;
  serialLog: string;
  /** The run's report directory. */
  reportDir: string;
  /** The machine's own disks (overlays in the report directory), removed when it ends. */
  overlays: string[];
  /** How to start the machine again from its disks (`vmlab rescue --done`): its disks, memory and accelerator. */
  disks?: DiskAttachment[];
  memoryMiB?: number;
  accel?: { accel: "kvm" | "tcg"; cpu: string };
  /** A UEFI machine's own NVRAM file, which a start from its disks boots with. */
  efiVars?: string;
  /** Powered off while a rescue system works on its disks: the rescue machine's id. Not dead, not cleaned. */
  parked?: { rescue: string; since: string };
  /** A rescue system booted with this machine's disks (`vmlab rescue`). */
  rescueOf?: string;
}

export interface KeptStatus extends KeptVm {
  alive: boolean;
  /** Why it is not alive. */
  why?: string;
}

export function keptDir(): string {
  return join(cacheDir(), "kept");
}

function entryPath(id: string): string {
  return join(keptDir(), `${id}.json`);
}

/** Whether the entry's QEMU is running: the pid exists, is not a zombie, and its command line names the run's QMP socket. */
export function liveness(e: Pick<KeptVm, "pid" | "qmpSocket">): { alive: boolean; why?: string } {
  if (!Number.isInteger(e.pid) || e.pid <= 0) return { alive: false, why: `no valid pid (${e.pid})` };
  let cmdline: string;
  let stat: string;
  try {
    cmdline = readFileSync(`/proc/${e.pid}/cmdline`, "utf8");
    stat = readFileSync(`/proc/${e.pid}/stat`, "utf8");
  } catch {
    return { alive: false, why: `process ${e.pid} does not exist` };
  }
  // Field 3 of /proc/PID/stat, after the command name in parentheses.
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  if (state === "Z" || state === "X") return { alive: false, why: `process ${e.pid} has exited` };
  const args = cmdline.split("\0");
  if (!args.some((a) => a.includes(e.qmpSocket))) {
    return { alive: false, why: `process ${e.pid} is not this machine's QEMU (${args[0] || "?"})` };
  }
  return { alive: true };
}

/** Forget an entry without touching its disks (they go on with a new entry of the same machine). */
export async function dropEntry(id: string): Promise<void> {
  await rm(entryPath(id), { force: true });
}

/** Record a kept machine. */
export async function saveKept(e: KeptVm): Promise<void> {
  await mkdir(keptDir(), { recursive: true });
  const tmp = `${entryPath(e.id)}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(e, null, 2) + "\n");
  await rename(tmp, entryPath(e.id));
}

/** A free id for a kept machine of this run. */
export function keptId(scenario: string, runDir: string, machine: string): string {
  const hex = runDir.split("-").at(-1) ?? "0";
  let id = machine === "vm" ? `${scenario}-${hex}` : `${scenario}-${hex}-${machine}`;
  for (let n = 2; existsSync(entryPath(id)); n++) id = `${scenario}-${hex}-${n}`;
  return id;
}

function isKeptVm(x: unknown): x is KeptVm {
  const e = x as KeptVm;
  return Boolean(e) && typeof e.id === "string" && typeof e.pid === "number" && typeof e.qmpSocket === "string" && Array.isArray(e.overlays);
}

/** Every entry with its liveness, oldest first. Entries that cannot be read are reported dead. */
export async function listKept(): Promise<KeptStatus[]> {
  let files: string[];
  try {
    files = (await readdir(keptDir())).filter((f) => f.endsWith(".json"));
  } catch {
    return [];
  }
  const out: KeptStatus[] = [];
  for (const f of files) {
    const id = f.slice(0, -".json".length);
    let e: unknown;
    try {
      e = JSON.parse(await readFile(join(keptDir(), f), "utf8"));
    } catch {
      e = undefined;
    }
    if (!isKeptVm(e) || e.id !== id) {
      out.push({ ...unreadable(id), alive: false, why: `entry ${join(keptDir(), f)} is not a kept-machine record` });
      continue;
    }
    out.push({ ...e, ...(e.parked ? { alive: false, why: `powered off while the rescue system ${e.parked.rescue} works on its disks` } : liveness(e)) });
  }
  return out.sort((a, b) => a.keptAt.localeCompare(b.keptAt) || a.id.localeCompare(b.id));
}

function unreadable(id: string): KeptVm {
  return {
    id, scenario: "?", machine: "?", pid: 0, startedAt: "", keptAt: "", verdict: "fail", sshPort: 0, sshKey: "",
    serialSocket: "", qmpSocket: "", serialLog: "", reportDir: "", overlays: [],
  };
}

/** True when `file` lies inside `dir`: cleaning never removes anything outside the run's directory. */
function inside(dir: string, file: string): boolean {
  if (!dir || !isAbsolute(dir)) return false;
  const r = relative(dir, file);
  return r !== "" && !r.startsWith("..") && !isAbsolute(r);
}

/** Remove a dead machine's overlays, sockets and entry. The report directory stays. */
export async function cleanKept(e: KeptVm): Promise<void> {
  // The sockets live in the run directory, perhaps reached through a short link to it (src/vm/socket-dir.ts).
  const files = [...e.overlays, ...[e.serialSocket, e.qmpSocket].filter(Boolean).map((f) => join(e.reportDir, basename(f)))];
  for (const f of files) if (inside(e.reportDir, f)) await rm(f, { force: true });
  if (e.reportDir && e.qmpSocket) removeSocketLink(e.reportDir, dirname(e.qmpSocket));
  await rm(entryPath(e.id), { force: true });
}

/** One entry by id or by a prefix that names exactly one entry. */
export async function findKept(idOrPrefix: string): Promise<KeptStatus> {
  const all = await listKept();
  const exact = all.find((e) => e.id === idOrPrefix);
  const matches = exact ? [exact] : all.filter((e) => e.id.startsWith(idOrPrefix));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) {
    throw new UsageError(`no kept machine "${idOrPrefix}"`, {
      hint: all.length ? `kept machines: ${all.map((e) => e.id).join(", ")} (\`vmlab ps\`)` : "no machine is kept; `vmlab run --keep NAME` keeps one",
    });
  }
  throw new UsageError(`"${idOrPrefix}" names ${matches.length} kept machines: ${matches.map((e) => e.id).join(", ")}`, { hint: "give more of the id" });
}

/** A kept machine that must be running; a dead one is cleaned and reported. */
export async function requireAlive(idOrPrefix: string): Promise<KeptStatus> {
  const e = await findKept(idOrPrefix);
  if (e.parked) {
    throw new UsageError(`kept machine ${e.id} is powered off: the rescue system ${e.parked.rescue} has its disks`, {
      hint: `\`vmlab ssh ${e.parked.rescue}\` to work in the rescue system; \`vmlab rescue ${e.id} --done\` boots ${e.id} from its own disk again`,
    });
  }
  if (!e.alive) {
    await cleanKept(e);
    throw new UsageError(`kept machine ${e.id} is no longer running: ${e.why}`, {
      where: e.reportDir || undefined,
      hint: `its entry and overlays were removed; the report and console log stay in ${e.reportDir || "its report directory"}`,
    });
  }
  return e;
}

/** The ssh command line for a kept machine. */
export function keptSshArgs(e: KeptVm, command: string[], tty: boolean): string[] {
  return [
    ...labSshOptions(e.sshKey, e.sshPort),
    tty ? "-t" : "-T",
    "root@127.0.0.1",
    ...command,
  ];
}


export async function waitDead(e: Pick<KeptVm, "pid" | "qmpSocket">, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!liveness(e).alive) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}

/**
 * End a kept machine: QMP `quit`, then SIGKILL by pid if QEMU is still there
 * after `graceMs`; then clean its overlays and entry. Returns how it ended.
 */
export async function stopKept(e: KeptVm, graceMs = 10_000): Promise<"quit" | "killed" | "was-dead"> {
  if (e.parked || !liveness(e).alive) {
    await cleanKept(e);
    return "was-dead";
  }
  let how: "quit" | "killed" = "quit";
  try {
    const qmp = await QmpClient.connect(e.qmpSocket, { timeoutMs: 3000, commandTimeoutMs: 5000 });
    try {
      await qmp.execute("quit");
    } catch {
      /* the socket closes as QEMU quits */
    } finally {
      qmp.close();
    }
  } catch {
    /* QMP unreachable: the kill below ends it */
  }
  if (!(await waitDead(e, graceMs))) {
    how = "killed";
    // Only the very QEMU of this run: liveness() just matched its command line.
    if (liveness(e).alive) {
      try {
        process.kill(e.pid, "SIGKILL");
      } catch {
        /* gone meanwhile */
      }
    }
    await waitDead(e, 5000);
  }
  await cleanKept(e);
  return how;
}

/**
 * Hand a running machine over to the kept registry: QEMU is released from
 * this process (it survives the exit of `vmlab run`) and recorded. Should the
 * record fail to be written, the machine is ended instead of left unknown.
 */
export async function keepMachine(
  m: Machine,
  run: { scenario: string; verdict: "pass" | "fail"; runDir: string; startedAt: string; id?: string },
): Promise<KeptVm> {
  const pid = m.release();
  const entry: KeptVm = {
    id: run.id ?? keptId(run.scenario, run.runDir, m.opts.name),
    scenario: run.scenario,
    machine: m.opts.name,
    pid,
    startedAt: run.startedAt,
    keptAt: new Date().toISOString(),
    verdict: run.verdict,
    sshPort: m.sshPort,
    sshKey: m.opts.sshKey,
    serialSocket: m.serialSocket,
    qmpSocket: m.qmpSocket,
    serialLog: m.serialLog,
    reportDir: run.runDir,
    overlays: m.disks.map((d) => d.path).filter((p) => inside(run.runDir, p)),
    disks: m.disks.map((d) => ({ ...d })),
    ...(m.opts.memoryMiB ? { memoryMiB: m.opts.memoryMiB } : {}),
    ...(m.efiVars ? { efiVars: m.efiVars } : {}),
    accel: m.opts.accel,
  };
  try {
    await saveKept(entry);
  } catch (err) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
    throw err;
  }
  return entry;
}
