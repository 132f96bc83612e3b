/** Training mode in the terminal: `vmlab train list|start|hint|check|reset|rescue|solution|stop|status|prove` (src/training). */
import { UsageError } from "../../src/errors.ts";
import { chooseAccel } from "../../src/host/kvm.ts";
import { requireTool } from "../../src/host/tools.ts";
import { listExercises, loadExercise } from "../../src/training/exercise.ts";
import { proveExercises, type ProofResult } from "../../src/training/prove.ts";
import {
  checkSession,
  consoleTailOf,
  currentSession,
  findSession,
  giveUp,
  listSessions,
  nextHint,
  outcomeInWords,
  rescueDoneSession,
  rescueSession,
  resetSession,
  sessionTerminals,
  startSession,
  stopSession,
} from "../../src/training/session.ts";
import type { CheckAttempt, TrainingSession } from "../../src/training/types.ts";
import { DETACH_KEY } from "../../src/vm/console.ts";
import { alignColumns } from "../../src/util/table.ts";
import { out } from "../output.ts";
import { cleanOrphans } from "./scenarios.ts";

type SessionOpt = { session?: string };

async function pick(o: SessionOpt): Promise<TrainingSession> {
  return o.session ? findSession(o.session) : currentSession();
}

export async function cmdTrainList(o: { json?: boolean }): Promise<number> {
  const all = await listExercises();
  if (o.json) {
    out(JSON.stringify(all.map(({ name, title, level, minutes, image, tags, needsRescue }) => ({ name, title, level, minutes, image, tags, needsRescue })), null, 2));
    return 0;
  }
  for (const l of alignColumns([["exercise", "level", "min", "rescue", "title"], ...all.map((e) => [e.name, e.level, String(e.minutes), e.needsRescue ? "yes" : "", e.title])])) out(l);
  return 0;
}

function reach(s: TrainingSession, machine: string): void {
  out(`  vmlab console ${machine}        its serial console (root's password: vmlab); ${DETACH_KEY} detaches`);
  out(`  vmlab ssh ${machine}            a root shell over SSH, when the machine answers`);
  out(`  vmlab train hint                the next hint (each one used is recorded)`);
  out(`  vmlab train check               reboot through the firmware and check your repair (exit 0: fixed)`);
  out(`  vmlab train rescue              boot the rescue system with this machine's disks`);
  out(`  vmlab train reset               back to the broken machine, in seconds`);
  out(`  vmlab train solution            show the reference solution (gives the exercise up)`);
  out(`  vmlab train stop                end the session`);
  out(`  (with several sessions open, add --session ${s.id})`);
}

export async function cmdTrainStart(name: string): Promise<number> {
  const ex = await loadExercise(name);
  requireTool("qemu-system-x86_64");
  requireTool("qemu-img");
  await cleanOrphans();
  const s = await startSession(ex.name, { accel: await chooseAccel(), onProgress: (l) => process.stderr.write(`… ${l}\n`) });
  out(`# ${ex.title}`);
  out(`(${ex.level}, about ${ex.minutes} minutes)`);
  out("");
  out(ex.story);
  out("");
  out("The machine's console ends with:");
  for (const l of await consoleTailOf(s, 8)) out(`  | ${l}`);
  out("");
  out(`session ${s.id} (token ${s.token}): the machine is running`);
  reach(s, s.machine);
  return 0;
}

export async function cmdTrainHint(o: SessionOpt): Promise<number> {
  const s = await pick(o);
  const h = await nextHint(s.id);
  out(`hint ${h.index} of ${h.total}: ${h.text}`);
  if (h.index === h.total) out("(that was the last hint)");
  return 0;
}

export function checkLines(a: CheckAttempt): string[] {
  const lines: string[] = [];
  if (a.boot) {
    lines.push(`boot: ${outcomeInWords(a.boot.outcome, a.boot.detail)} (${a.boot.outcome}, via ${a.boot.via}, ${(a.boot.durationMs / 1000).toFixed(1)} s)`);
    for (const e of a.boot.evidence) lines.push(`  evidence: ${e}`);
  }
  if (a.root) lines.push(`/ is ${a.root.device} (${a.root.fstype})`);
  if (a.data) lines.push(`data set: ${a.data.summary.split("\n")[0]}`);
  for (const c of a.commands) lines.push(`${c.ok ? "ok" : "not yet"}: ${c.says}`);
  lines.push(a.pass ? "PASSED" : "NOT YET");
  for (const r of a.reasons) lines.push(`  ${r}`);
  return lines;
}

export async function cmdTrainCheck(o: SessionOpt): Promise<number> {
  const s = await pick(o);
  process.stderr.write(`… checking ${s.id}: rebooting through the firmware\n`);
  const a = await checkSession(s.id);
  for (const l of checkLines(a)) out(l);
  return a.pass ? 0 : 1;
}

export async function cmdTrainReset(o: SessionOpt): Promise<number> {
  const s = await pick(o);
  const t = Date.now();
  const now = await resetSession(s.id);
  out(`${now.id}: back to the broken machine in ${((Date.now() - t) / 1000).toFixed(1)} s (reset ${now.resets})`);
  return 0;
}

export async function cmdTrainRescue(o: SessionOpt & { done?: boolean }): Promise<number> {
  const s = await pick(o);
  if (o.done) {
    const now = await rescueDoneSession(s.id);
    out(`${now.id}: the rescue system is off; the machine booted from its own disk (\`vmlab train check\` judges it)`);
    return 0;
  }
  await cleanOrphans();
  const now = await rescueSession(s.id);
  const t = await sessionTerminals(now.id);
  out(`${now.id}: the machine is powered off; the rescue system ${t.machine} has its disks`);
  out(`  vmlab ssh ${t.machine}       a root shell in the rescue system; the machine's disks follow the rescue disk`);
  out(`      (lsblk -o NAME,SERIAL,SIZE,FSTYPE,LABEL); its filesystems keep their labels: mount LABEL=root /mnt/target`);
  out(`  vmlab train check        switch the rescue system off, boot the machine from its own disk, and check it`);
  return 0;
}

export async function cmdTrainSolution(o: SessionOpt): Promise<number> {
  const s = await pick(o);
  const { solution } = await giveUp(s.id);
  out(solution.trimEnd());
  out(`(${s.id} is marked as given up)`);
  return 0;
}

export async function cmdTrainStop(o: SessionOpt & { all?: boolean }): Promise<number> {
  const targets = o.all ? (await listSessions()).filter((s) => s.state !== "stopped") : [await pick(o)];
  for (const s of targets) {
    await stopSession(s.id);
    out(`${s.id}: stopped (${s.hintsUsed} hint(s), ${s.checks.length} check(s))`);
  }
  return 0;
}

export async function cmdTrainStatus(o: { json?: boolean }): Promise<number> {
  const all = await listSessions();
  if (o.json) {
    out(JSON.stringify(all.map(({ token: _t, ...s }) => s), null, 2));
    return 0;
  }
  const rows = all.map((s) => [s.id, s.exercise, s.state, s.startedAt.replace("T", " ").slice(0, 19), String(s.hintsUsed), `${s.checks.filter((c) => c.pass).length}/${s.checks.length}`, String(s.resets)]);
  for (const l of alignColumns([["session", "exercise", "state", "started", "hints", "passed/checks", "resets"], ...rows])) out(l);
  return 0;
}

export async function cmdTrainProve(names: string[], o: { jobs?: string; json?: boolean }): Promise<number> {
  const jobs = o.jobs === undefined ? 1 : Number(o.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 16) throw new UsageError(`--jobs ${o.jobs} is not a number from 1 to 16`);
  const exercises = names.length ? await Promise.all(names.map((n) => loadExercise(n))) : await listExercises();
  requireTool("qemu-system-x86_64");
  requireTool("qemu-img");
  await cleanOrphans();
  const results: ProofResult[] = await proveExercises(
    exercises.map((e) => e.name),
    { jobs, onProgress: (l) => process.stderr.write(`… ${l}\n`) },
  );
  if (o.json) out(JSON.stringify(results, null, 2));
  else {
    for (const r of results) {
      out(`${r.exercise}: ${r.proven ? "PROVEN" : "NOT PROVEN"}`);
      for (const l of r.lines) out(`  ${l}`);
    }
  }
  return results.every((r) => r.proven) ? 0 : 1;
}
