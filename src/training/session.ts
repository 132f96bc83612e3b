/**
 * Training sessions: a trainee's machine, forked from the exercise's broken
 * checkpoint and kept running, with an unguessable token.
 *
 * The broken state is made once per exercise (and image, and break): the
 * image's warm state is resumed, the data set seeded, the break run, the
 * machine rebooted into its failure, and a checkpoint taken there, in
 * <cache>/exercises/<name>-<key>/. Every start and every reset forks that
 * checkpoint: seconds, not minutes.
 *
 * The check is declared like a scenario's verdict: reboot through the
 * firmware, the classified boot outcome, where `/` is, the data set, and
 * commands that must succeed. A session in the rescue system is checked by
 * switching the rescue system off and booting the machine from its own disk:
 * that boot is the check's.
 *
 * Sessions are files in <cache>/training/sessions/<id>.json; the machine and
 * its rescue system are kept machines (src/vm/kept.ts), so the terminal
 * commands and `vmlab train serve` can drive the same session.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { appendFile, copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BootOutcome } from "../boot/classify.ts";
import { UsageError, VmlabError } from "../errors.ts";
import { injectGeneric } from "../faults/inject.ts";
import type { FaultName } from "../faults/index.ts";
import { checkKept, rebootKept, rescueDone, rescueKept } from "../handson/index.ts";
import { chooseAccel, type AccelChoice } from "../host/kvm.ts";
import { ensureImage } from "../image/build.ts";
import { labKey } from "../image/keys.ts";
import { loadRecipe } from "../image/recipes.ts";
import { cacheDir } from "../paths.ts";
import { DataSet, DATASET_FILE } from "../scenario/dataset.ts";
import { withDirLock } from "../util/lock.ts";
import { fork, readCheckpoint, takeCheckpoint, type Checkpoint } from "../vm/checkpoint.ts";
import { findKept, keepMachine, liveness, stopKept, type KeptVm } from "../vm/kept.ts";
import { Machine, type BootRecord } from "../vm/machine.ts";
import { sshRun } from "../vm/ssh.ts";
import { ensureWarmState, machineDisks, profileFor, stateFirmware } from "../vm/warm.ts";
import { loadExercise } from "./exercise.ts";
import type { BootSummary, CheckAttempt, Exercise, SessionTerminals, TrainingSession } from "./types.ts";

/** Bumped when the way a broken state is made changes: older ones are made again. */
const BROKEN_VERSION = 2;

export function sessionsDir(): string {
  return join(cacheDir(), "training", "sessions");
}

export function brokenDir(): string {
  return join(cacheDir(), "exercises");
}

export interface BrokenState {
  dir: string;
  checkpoint: Checkpoint;
  /** How the broken machine's boot ended when the state was made. */
  boot: BootSummary;
  manifestFile: string;
  madeMs: number;
  reused: boolean;
}

export function summarize(b: BootRecord): BootSummary {
  return { outcome: b.outcome, ...(b.detail ? { detail: b.detail } : {}), via: b.via, evidence: b.evidence, durationMs: b.durationMs };
}

/** Does a boot match the declared broken outcome (and its evidence pattern)? Why not, in words, when it does not. */
export function brokenMismatch(ex: Pick<Exercise, "broken" | "name">, boot: Pick<BootSummary, "outcome" | "evidence">): string | undefined {
  if (boot.outcome !== ex.broken.outcome) return `its boot ended as ${boot.outcome}, not ${ex.broken.outcome} as exercise.md declares`;
  if (ex.broken.evidence && !boot.evidence.some((l) => new RegExp(ex.broken.evidence!).test(l))) {
    return `its boot ended as ${boot.outcome}, but no evidence line matches /${ex.broken.evidence}/`;
  }
  return undefined;
}

/**
 * The exercise's broken state, made on first use: resume the image's warm
 * state, seed the data set, break, reboot into the failure, checkpoint.
 */
export async function ensureBroken(ex: Exercise, accel: AccelChoice, log: (m: string) => void = () => undefined): Promise<BrokenState> {
  const recipe = await loadRecipe(ex.image);
  const image = await ensureImage(recipe, { progress: log });
  const { privateKey } = await labKey();
  const profile = profileFor({ extraDisks: ex.disks });
  const warm = await ensureWarmState(image, profile, accel, privateKey, log);
  const key = createHash("sha256")
    .update(JSON.stringify({ v: BROKEN_VERSION, image: image.hash, warm: warm.key, accel: accel.accel, disks: ex.disks, break: ex.break, reboot: ex.rebootAfterBreak, broken: ex.broken }))
    .digest("hex")
    .slice(0, 16);
  const dir = join(brokenDir(), `${ex.name}-${key}`);
  const done = join(dir, "broken.json");
  const found = async (reused: boolean): Promise<BrokenState> => {
    const meta = JSON.parse(await readFile(done, "utf8")) as { boot: BootSummary; madeMs: number };
    return { dir, checkpoint: await readCheckpoint(join(dir, "checkpoint")), boot: meta.boot, manifestFile: join(dir, DATASET_FILE), madeMs: meta.madeMs, reused };
  };
  if (existsSync(done)) return found(true);
  await mkdir(brokenDir(), { recursive: true });
  return withDirLock(`${dir}.lock`, async () => {
    if (existsSync(done)) return found(true);
    // A state half made by a process that died is made again.
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const t0 = Date.now();
    log(`making the broken state of ${ex.name} (once; every start and reset forks it)`);
    const disks = await machineDisks(dir, image, profile, warm);
    const vm = new Machine({ name: "vm", runDir: dir, disks, accel, sshKey: privateKey, incomingState: warm.state, memoryMiB: profile.memoryMiB, smp: profile.smp, ...stateFirmware(warm) });
    try {
      const up = await vm.resume();
      if (up.outcome !== "ssh") throw new VmlabError(`the machine of ${ex.name} did not come up from the warm state`, { output: up.evidence.join("\n") });
      const manifest = await new DataSet().seed(vm);
      await writeFile(join(dir, DATASET_FILE), JSON.stringify(manifest, null, 2) + "\n");
      if (ex.break.script !== undefined) {
        log(`break: ${ex.break.file}`);
        const r = await vm.run("bash -es", { input: ex.break.script, timeoutMs: 30 * 60_000 });
        if (r.exitCode !== 0) {
          throw new VmlabError(`${ex.break.file} failed on the guest with exit code ${r.exitCode}`, { output: `${r.stdout}\n${r.stderr}`.trim(), where: ex.break.file, hint: "run it by hand on `vmlab up` to see why" });
        }
      }
      if (ex.break.fault) {
        log(`break: the ${ex.break.fault} fault`);
        await injectGeneric(vm, { fault: ex.break.fault as FaultName, at: 0, ...ex.break.options });
      }
      let boot: BootRecord | undefined;
      if (ex.rebootAfterBreak) {
        boot = await vm.reboot();
        log(`after the break the boot ended as ${boot.outcome}${boot.detail ? ` (${boot.detail})` : ""}`);
      }
      const summary: BootSummary = boot ? summarize(boot) : { outcome: "ssh", via: "saved-state", evidence: ["the machine was not rebooted after the break"], durationMs: 0 };
      const wrong = brokenMismatch(ex, summary);
      if (wrong) {
        throw new VmlabError(`the break of ${ex.name} did not leave the machine as declared: ${wrong}`, {
          output: [...summary.evidence, "", await vm.consoleTail(25)].join("\n"),
          where: join(ex.dir, "exercise.md"),
          hint: `fix break.sh or broken.outcome; the console log is ${vm.serialLog}`,
        });
      }
      // The boot is classified at its first decisive line; what comes after it (emergency mode's password
      // prompt, the rest of a panic) is part of what the trainee finds: let the console go quiet first.
      await settle(vm);
      await takeCheckpoint(vm, join(dir, "checkpoint"), `${ex.name}: broken`);
      await vm.kill();
      // The machine's overlays after the checkpoint are nobody's.
      for (const d of vm.disks) await rm(d.path, { force: true });
      const madeMs = Date.now() - t0;
      await writeFile(done, JSON.stringify({ exercise: ex.name, key, boot: summary, madeMs, madeAt: new Date().toISOString() }, null, 2) + "\n");
      log(`broken state of ${ex.name} made in ${(madeMs / 1000).toFixed(1)} s`);
      await dropOlderBroken(ex.name, dir);
      return found(false);
    } catch (err) {
      await vm.kill();
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  });
}

/** Wait until the machine's console has printed nothing for `quietMs` (at most `maxMs`). */
async function settle(vm: Machine, quietMs = 3000, maxMs = 30_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let size = await vm.logOffset();
  let since = Date.now();
  while (Date.now() < deadline && Date.now() - since < quietMs) {
    await new Promise((r) => setTimeout(r, 250));
    const now = await vm.logOffset();
    if (now !== size) {
      size = now;
      since = Date.now();
    }
  }
}

/**
 * Remove the exercise's broken states made for an older image or break, once
 * no open session of it is left (a session's disks sit on its state's).
 */
async function dropOlderBroken(name: string, keep: string): Promise<void> {
  if ((await listSessions()).some((s) => s.exercise === name && s.state !== "stopped")) return;
  for (const d of await readdir(brokenDir())) {
    const key = d.slice(name.length + 1);
    if (d.startsWith(`${name}-`) && /^[0-9a-f]{16}$/.test(key) && join(brokenDir(), d) !== keep) await rm(join(brokenDir(), d), { recursive: true, force: true });
  }
}

// ------------------------------------------------------------ sessions

function sessionFile(id: string): string {
  return join(sessionsDir(), `${id}.json`);
}

async function save(s: TrainingSession): Promise<void> {
  await mkdir(sessionsDir(), { recursive: true });
  const tmp = `${sessionFile(s.id)}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(s, null, 2) + "\n", { mode: 0o600 });
  await rename(tmp, sessionFile(s.id));
}

export async function listSessions(): Promise<TrainingSession[]> {
  if (!existsSync(sessionsDir())) return [];
  const out: TrainingSession[] = [];
  for (const f of (await readdir(sessionsDir())).filter((f) => f.endsWith(".json")).sort()) {
    try {
      out.push(JSON.parse(await readFile(join(sessionsDir(), f), "utf8")) as TrainingSession);
    } catch {
      /* a session file being written */
    }
  }
  return out;
}

export async function findSession(id: string): Promise<TrainingSession> {
  if (!/^[a-z0-9-]{1,80}$/.test(id)) throw new UsageError(`"${id}" is not a session id`, { hint: "`vmlab train status` lists the sessions" });
  const f = sessionFile(id);
  if (!existsSync(f)) throw new UsageError(`no training session ${id}`, { hint: "`vmlab train status` lists the sessions" });
  return JSON.parse(await readFile(f, "utf8")) as TrainingSession;
}

/** The one session still open (not stopped), for the terminal commands when no --session is given. */
export async function currentSession(): Promise<TrainingSession> {
  const open = (await listSessions()).filter((s) => s.state !== "stopped");
  if (open.length === 1) return open[0]!;
  if (!open.length) throw new UsageError("no training session is open", { hint: "`vmlab train start NAME` starts one; `vmlab train list` shows the exercises" });
  throw new UsageError(`${open.length} training sessions are open: ${open.map((s) => s.id).join(", ")}`, { hint: "name one with --session ID" });
}

/**
 * Change a session's record: read it again under its lock, apply `change`,
 * write it. Actions take minutes (a check reboots a machine); what others
 * recorded meanwhile (a hint, a touch) is kept.
 */
export async function updateSession(id: string, change: (s: TrainingSession) => void): Promise<TrainingSession> {
  await mkdir(sessionsDir(), { recursive: true });
  return withDirLock(`${sessionFile(id)}.lock`, async () => {
    const s = await findSession(id);
    change(s);
    s.lastActivityAt = new Date().toISOString();
    await save(s);
    return s;
  });
}

/** A new session's record, as `startSession` writes it. */
export function newSessionRecord(id: string, exercise: string, dir: string, state: TrainingSession["state"] = "starting"): TrainingSession {
  const now = new Date().toISOString();
  return { id, token: randomBytes(24).toString("base64url"), exercise, state, startedAt: now, lastActivityAt: now, machine: id, hintsUsed: 0, checks: [], resets: 0, dir };
}

/** Write a session's record (<cache>/training/sessions/<id>.json, mode 0600: it holds the token). */
export async function saveSession(s: TrainingSession): Promise<void> {
  await save(s);
}

export async function touchSession(id: string): Promise<void> {
  await updateSession(id, () => undefined);
}

function requireOpen(s: TrainingSession): void {
  if (s.state === "stopped") throw new UsageError(`training session ${s.id} was stopped`, { hint: `\`vmlab train start ${s.exercise}\` starts a new one` });
  if (s.state === "starting") throw new UsageError(`training session ${s.id} is still starting`);
}

/** The name of the machine's console log in a session's directory. */
export const SESSION_CONSOLE_LOG = "vm.console.log";

async function forkBroken(ex: Exercise, broken: BrokenState, id: string, dir: string, accel: AccelChoice): Promise<KeptVm> {
  const { privateKey } = await labKey();
  // The console begins with the boot into the failure, as the trainee would have seen it; QEMU appends to it.
  const made = join(broken.dir, SESSION_CONSOLE_LOG);
  if (existsSync(made)) await appendFile(join(dir, SESSION_CONSOLE_LOG), await readFile(made));
  const { vm, boot } = await fork(broken.checkpoint, { name: "vm", runDir: dir, accel, sshKey: privateKey, keepable: true }, { ended: broken.boot.outcome as BootOutcome });
  if (boot.outcome !== broken.boot.outcome) {
    await vm.kill();
    throw new VmlabError(`the machine of ${ex.name} did not resume as it was saved: ${boot.outcome}`, { output: boot.evidence.join("\n") });
  }
  return keepMachine(vm, { scenario: `train ${ex.name}`, verdict: "pass", runDir: dir, startedAt: new Date().toISOString(), id });
}

/** Start a session of an exercise: its broken state (made the first time), forked and kept. */
export async function startSession(name: string, o: { onProgress?: (line: string) => void; accel?: AccelChoice } = {}): Promise<TrainingSession> {
  const ex = await loadExercise(name);
  const accel = o.accel ?? (await chooseAccel());
  const broken = await ensureBroken(ex, accel, o.onProgress);
  const id = `${ex.name}-${randomBytes(3).toString("hex")}`;
  const dir = join(sessionsDir(), id);
  await mkdir(dir, { recursive: true });
  await copyFile(broken.manifestFile, join(dir, DATASET_FILE));
  await save(newSessionRecord(id, ex.name, dir));
  try {
    await forkBroken(ex, broken, id, dir, accel);
  } catch (err) {
    await updateSession(id, (s) => (s.state = "stopped"));
    throw err;
  }
  return updateSession(id, (s) => (s.state = "running"));
}

export async function nextHint(id: string): Promise<{ index: number; total: number; text: string }> {
  requireOpen(await findSession(id));
  const ex = await loadExercise((await findSession(id)).exercise);
  let index = 0;
  await updateSession(id, (s) => {
    index = Math.min(s.hintsUsed + 1, ex.hints.length);
    s.hintsUsed = index;
  });
  return { index, total: ex.hints.length, text: ex.hints[index - 1]! };
}

const OUTCOME_WORDS: Record<string, string> = {
  ssh: "the machine booted and answers on the network",
  "login-prompt": "the machine booted to a login prompt, but does not answer on the network",
  "no-bootable-device": "the firmware found nothing to boot on the disks",
  "grub-rescue": "GRUB could not load its menu and stopped at its rescue prompt",
  "uefi-shell": "the UEFI firmware found no boot entry that works and opened its shell",
  "kernel-panic": "the kernel started but could not go on (a kernel panic)",
  "initramfs-shell": "the initramfs could not find or mount the root filesystem and opened its shell",
  "root-shell": "the machine booted into a bare root shell instead of its system",
  "emergency-mode": "systemd stopped in emergency mode: a filesystem it needs did not mount",
  "reboot-loop": "the machine restarts over and over",
  timeout: "the machine showed no sign of life in time",
};

export function outcomeInWords(outcome: string, detail?: string): string {
  return `${OUTCOME_WORDS[outcome] ?? outcome}${detail ? ` (${detail})` : ""}`;
}

/** Judge a check's observations against the exercise's declared check: the reasons it is not yet fixed. */
export function judgeCheck(ex: Pick<Exercise, "check">, seen: Pick<CheckAttempt, "boot" | "root" | "data" | "commands">): string[] {
  const reasons: string[] = [];
  const c = ex.check;
  if (seen.boot && seen.boot.outcome !== c.outcome) {
    reasons.push(`${outcomeInWords(seen.boot.outcome, seen.boot.detail)}; a fixed machine ${c.outcome === "ssh" ? "boots and answers" : `ends as ${c.outcome}`}`);
  }
  if (c.root && seen.root && seen.root.device !== c.root) reasons.push(`/ is mounted from ${seen.root.device}, and it should be ${c.root}`);
  if (c.data && seen.data && !seen.data.intact) reasons.push(`the data in /srv/vmlab-data is not as it was: ${seen.data.summary.split("\n")[0]}`);
  for (const cmd of seen.commands) if (!cmd.ok) reasons.push(`not yet true: ${cmd.says}`);
  return reasons;
}

/**
 * The check: reboot through the firmware (or, in rescue, boot the machine
 * from its own disk), classify the boot, and look at the root, the data set
 * and the declared commands.
 */
export async function checkSession(id: string, o: { accel?: AccelChoice } = {}): Promise<CheckAttempt> {
  const s = await findSession(id);
  requireOpen(s);
  const ex = await loadExercise(s.exercise);
  let boot: BootRecord | undefined;
  if (s.state === "rescue") {
    boot = (await rescueDone(s.machine, o.accel)).boot;
    await updateSession(id, (now) => {
      now.state = "running";
      delete now.rescue;
    });
  } else if (ex.check.reboot) {
    boot = (await rebootKept(s.machine)).boot;
  }
  const attempt: CheckAttempt = { at: new Date().toISOString(), pass: false, commands: [], reasons: [], summary: "" };
  if (boot) attempt.boot = summarize(boot);
  const answers = !boot || boot.outcome === "ssh";
  if (answers) {
    const { entry, result } = await checkKept(s.machine, ex.check.root ? { root: ex.check.root } : {});
    if (result.root) attempt.root = result.root;
    if (result.data && ex.check.data) attempt.data = { intact: result.data.intact, summary: result.data.summary };
    if (result.unobserved) attempt.reasons.push(result.unobserved);
    for (const c of ex.check.commands) {
      const r = await sshRun({ host: "127.0.0.1", port: entry.sshPort, user: "root", keyPath: entry.sshKey }, c.run, { timeoutMs: 120_000, connectTimeoutS: 10 });
      attempt.commands.push({ ...c, ok: r.exitCode === 0, output: `${r.stdout}${r.stderr}`.trim().slice(-2000) });
    }
  } else {
    for (const c of ex.check.commands) attempt.commands.push({ ...c, ok: false, output: "not run: the machine does not answer" });
  }
  attempt.reasons.push(...judgeCheck(ex, attempt));
  attempt.pass = attempt.reasons.length === 0;
  attempt.summary = attempt.pass ? "passed: the machine boots by itself and everything the exercise checks holds" : `not yet: ${attempt.reasons[0]}`;
  await updateSession(id, (now) => {
    now.checks.push(attempt);
    if (attempt.pass && now.state !== "gave-up") now.state = "passed";
  });
  return attempt;
}

/** End the session's machines (the rescue system first), keeping the session's record. */
async function endMachines(s: TrainingSession): Promise<void> {
  for (const id of [s.rescue, s.machine]) {
    if (!id) continue;
    const e = await findKept(id).catch(() => undefined);
    if (e) await stopKept({ ...e, parked: undefined });
  }
}

/** Back to the broken state: the machine is ended and forked again from the exercise's checkpoint. */
export async function resetSession(id: string, o: { accel?: AccelChoice } = {}): Promise<TrainingSession> {
  const s = await findSession(id);
  requireOpen(s);
  const ex = await loadExercise(s.exercise);
  const accel = o.accel ?? (await chooseAccel());
  const broken = await ensureBroken(ex, accel);
  await endMachines(s);
  await forkBroken(ex, broken, s.machine, s.dir, accel);
  return updateSession(id, (now) => {
    delete now.rescue;
    now.resets++;
    if (now.state === "rescue" || now.state === "passed") now.state = "running";
  });
}

export async function rescueSession(id: string, o: { accel?: AccelChoice } = {}): Promise<TrainingSession> {
  const s = await findSession(id);
  requireOpen(s);
  if (s.state === "rescue") throw new UsageError(`session ${s.id} is already in the rescue system`, { hint: "`vmlab train check` boots the machine from its own disk and checks it" });
  const { rescue } = await rescueKept(s.machine, o.accel);
  return updateSession(id, (now) => {
    now.rescue = rescue.id;
    now.state = "rescue";
  });
}

/** Leave the rescue system without a check: the machine boots from its own disk. */
export async function rescueDoneSession(id: string, o: { accel?: AccelChoice } = {}): Promise<TrainingSession> {
  const s = await findSession(id);
  if (s.state !== "rescue") throw new UsageError(`session ${s.id} is not in the rescue system`);
  await rescueDone(s.machine, o.accel);
  return updateSession(id, (now) => {
    now.state = "running";
    delete now.rescue;
  });
}

/** The reference solution; the session counts as given up. */
export async function giveUp(id: string): Promise<{ session: TrainingSession; solution: string }> {
  const ex = await loadExercise((await findSession(id)).exercise);
  const s = await updateSession(id, (now) => {
    if (now.state !== "stopped" && now.state !== "passed") now.state = "gave-up";
  });
  const where = { guest: "on the machine, as root", rescue: "in the rescue system (`vmlab train rescue`), as root", console: "on the machine's serial console" }[ex.solve.where];
  return { session: s, solution: `# ${ex.title}: the reference solution, ${where}\n${ex.solve.script}` };
}

export async function stopSession(id: string): Promise<void> {
  await endMachines(await findSession(id));
  await updateSession(id, (s) => {
    s.state = "stopped";
    delete s.rescue;
  });
}

/** Where the terminals connect: the machine in front (the rescue system while in rescue). */
export async function sessionTerminals(id: string): Promise<SessionTerminals> {
  const s = await findSession(id);
  requireOpen(s);
  const e = await findKept(s.state === "rescue" && s.rescue ? s.rescue : s.machine);
  if (!liveness(e).alive) throw new UsageError(`the machine of session ${s.id} is not running`, { hint: "reset the session" });
  return { serialSocket: e.serialSocket, ssh: { host: "127.0.0.1", port: e.sshPort, user: "root", keyPath: e.sshKey }, machine: e.id };
}

/** The last lines of what the session's machine printed on its console (escape codes removed). */
export async function consoleTailOf(s: Pick<TrainingSession, "dir">, lines = 12): Promise<string[]> {
  const f = join(s.dir, SESSION_CONSOLE_LOG);
  if (!existsSync(f)) return [];
  const text = (await readFile(f, "utf8")).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
  return text.split("\n").filter((l) => l.trim()).slice(-lines);
}
