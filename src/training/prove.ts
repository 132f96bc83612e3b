/**
 * Proving an exercise, as CI does (`vmlab train prove`): two sessions forked
 * from its broken checkpoint, side by side when --jobs allows.
 *
 * - Broken: the check must fail, and its boot must end as the exercise
 *   declares (`broken.outcome`, with its evidence).
 * - Solved: the reference solution is applied the way a trainee would (on
 *   the machine over SSH, typed on its serial console, or in the rescue
 *   system), and the check must pass.
 *
 * An exercise whose broken machine passes its own check, or whose solution
 * does not make it pass, is not proven.
 */
import PQueue from "p-queue";
import { rm } from "node:fs/promises";
import { VmlabError } from "../errors.ts";
import { adopt } from "../handson/index.ts";
import { chooseAccel, type AccelChoice } from "../host/kvm.ts";
import { ConsoleShell } from "../vm/console-shell.ts";
import { findKept } from "../vm/kept.ts";
import { sshRun } from "../vm/ssh.ts";
import { consoleLines, exerciseHash, loadExercise } from "./exercise.ts";
import { brokenMismatch, checkSession, ensureBroken, judgeCheck, rescueSession, sessionTerminals, startSession, stopSession, sessionsDir } from "./session.ts";
import type { BootSummary, CheckAttempt, Exercise } from "./types.ts";
import { join } from "node:path";

export interface ProofResult {
  exercise: string;
  /** The hash of the exercise's folder that was proven (exerciseHash). */
  exerciseHash?: string;
  proven: boolean;
  broken?: CheckAttempt;
  solved?: CheckAttempt;
  /** The broken state: made now or reused, and how long making it took. */
  made?: { reused: boolean; ms: number };
  error?: string;
  lines: string[];
  durationMs: number;
}

/** Apply the reference solution to a session's machine, the way the exercise says. */
export async function applySolution(ex: Exercise, sessionId: string, accel: AccelChoice): Promise<string> {
  if (ex.solve.where === "rescue") await rescueSession(sessionId, { accel });
  const t = await sessionTerminals(sessionId);
  if (ex.solve.where === "console") {
    const e = await findKept(t.machine);
    const vm = await adopt(e);
    const sh = new ConsoleShell(vm);
    try {
      // Right after a fork resumes, the guest's serial line may drop what is typed: press Enter until it answers.
      for (let i = 0; ; i++) {
        const from = await vm.logOffset();
        await vm.type("\n");
        try {
          await sh.waitFor(from, /(?:#|\$|:)\s*$/, 5000, "a prompt after Enter");
          break;
        } catch (err) {
          if (i >= 5) throw err;
        }
      }
      let typed = "";
      for (const line of consoleLines(ex.solve.script)) {
        const from = await vm.logOffset();
        await vm.type(`${line}\n`);
        // The next prompt: a shell's (`# `) or a password question.
        await sh.waitFor(from, /(?:#|\$|:)\s*$/, 10 * 60_000, `the prompt after \`${line}\``);
        typed += `${line}\n`;
      }
      return typed;
    } finally {
      vm.detach();
    }
  }
  const r = await sshRun(t.ssh, "bash -es", { input: ex.solve.script, timeoutMs: 30 * 60_000, connectTimeoutS: 20 });
  if (r.exitCode !== 0) {
    throw new VmlabError(`${ex.solve.file} failed with exit code ${r.exitCode} ${ex.solve.where === "rescue" ? "in the rescue system" : "on the machine"}`, {
      output: `${r.stdout}\n${r.stderr}`.trim(),
      where: ex.solve.file,
    });
  }
  return r.stdout;
}

async function forget(id: string): Promise<void> {
  await stopSession(id).catch(() => undefined);
  await rm(join(sessionsDir(), id), { recursive: true, force: true });
  await rm(join(sessionsDir(), `${id}.json`), { force: true });
}

function attemptLines(what: string, a: CheckAttempt): string[] {
  const lines = [`${what}: ${a.summary}${a.judgedFrom ? ` (judged from ${a.judgedFrom})` : ""}`];
  if (a.boot) lines.push(`  boot: ${a.boot.outcome}${a.boot.detail ? ` (${a.boot.detail})` : ""} via ${a.boot.via}`, ...a.boot.evidence.slice(0, 6).map((l) => `    evidence: ${l}`));
  if (a.root) lines.push(`  /: ${a.root.device} (${a.root.fstype})`);
  if (a.data) lines.push(`  data set: ${a.data.summary.split("\n")[0]}`);
  for (const c of a.commands) lines.push(`  ${c.ok ? "ok" : "not yet"}: ${c.says}`);
  return lines;
}

/** The check of a broken machine judged from the boot recorded when its broken state was made. */
export function judgeRecorded(ex: Exercise, boot: BootSummary): CheckAttempt {
  const a: CheckAttempt = {
    at: new Date().toISOString(),
    pass: false,
    boot,
    commands: ex.check.commands.map((c) => ({ ...c, ok: false, output: "not run: the machine does not answer" })),
    reasons: [],
    summary: "",
    judgedFrom: "the firmware boot recorded when the broken state was made",
  };
  a.reasons = judgeCheck(ex, a);
  a.pass = a.reasons.length === 0;
  a.summary = a.pass ? "passed" : `not yet: ${a.reasons[0]}`;
  return a;
}

/** Prove exercises: broken fails its check for the declared reason; solved passes it. */
export async function proveExercises(names: string[], o: { jobs?: number; onProgress?: (l: string) => void; accel?: AccelChoice } = {}): Promise<ProofResult[]> {
  const accel = o.accel ?? (await chooseAccel());
  const log = o.onProgress ?? (() => undefined);
  const queue = new PQueue({ concurrency: o.jobs ?? 1 });
  const results: ProofResult[] = [];
  await Promise.all(
    names.map(async (name) => {
      const started = Date.now();
      const r: ProofResult = { exercise: name, proven: false, lines: [], durationMs: 0 };
      results.push(r);
      try {
        const ex = await loadExercise(name);
        r.exerciseHash = await exerciseHash(ex.dir);
        const broken = await queue.add(() => ensureBroken(ex, accel, (l) => log(`${name}: ${l}`)));
        r.made = { reused: broken.reused, ms: broken.madeMs };
        const half = async (kind: "broken" | "solved"): Promise<void> => {
          const s = await startSession(name, { accel });
          try {
            if (kind === "solved") {
              log(`${name}: applying the solution (${ex.solve.where})`);
              await applySolution(ex, s.id, accel);
            }
            log(`${name}: checking the ${kind} machine`);
            const a = await checkSession(s.id, { accel });
            r[kind] = a;
          } finally {
            await forget(s.id);
          }
        };
        // A broken machine whose boot fails is judged from the boot made when its broken state was made: the same
        // disks, rebooted through the same firmware, as the check would. One whose boot succeeds is checked anew.
        const fromRecording = ex.rebootAfterBreak && ex.broken.outcome !== ex.check.outcome;
        if (fromRecording) r.broken = judgeRecorded(ex, broken.boot);
        await Promise.all([fromRecording ? undefined : queue.add(() => half("broken")), queue.add(() => half("solved"))]);
        const wrong = r.broken?.boot ? brokenMismatch(ex, r.broken.boot) : "the broken machine's check made no boot";
        r.lines.push(...attemptLines("broken", r.broken!), ...attemptLines("solved", r.solved!));
        if (r.broken!.pass) r.lines.push("the broken machine PASSED its check: the check cannot tell broken from fixed");
        else if (wrong) r.lines.push(`the broken machine failed its check, but ${wrong}`);
        if (!r.solved!.pass) r.lines.push("the reference solution did not make the check pass");
        // A broken machine that boots like a fixed one must fail on what the check declares (a command, the root),
        // not on something else that went wrong.
        const declared = ex.broken.outcome !== ex.check.outcome || r.broken!.commands.some((c) => !c.ok) || Boolean(ex.check.root && r.broken!.root && r.broken!.root.device !== ex.check.root);
        if (!declared) r.lines.push("the broken machine boots like a fixed one and none of the check's commands or its root failed on it");
        r.proven = !r.broken!.pass && !wrong && declared && r.solved!.pass;
      } catch (err) {
        r.error = err instanceof Error ? `${err.message}${err instanceof VmlabError && err.output ? `\n${err.output}` : ""}` : String(err);
        r.lines.push(`error: ${r.error}`);
      }
      r.durationMs = Date.now() - started;
      log(`${name}: ${r.proven ? "proven" : "NOT proven"} in ${(r.durationMs / 1000).toFixed(1)} s`);
    }),
  );
  return names.map((n) => results.find((r) => r.exercise === n)!);
}
