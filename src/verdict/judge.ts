/**
 * The verdict: a scenario's declared expectation and what the lab observed
 * in, pass or fail with reasons out. Pure: no machine, no files. The runner
 * collects the observations (steps, boots, facts, faults, the final state)
 * into report.json, so any report can be judged again, and the unit tests
 * judge real recorded reports.
 */
import { describeExpectation, type BootExpectation, type Expectation, type FailureAlternative, type FactExpectation, type FinalExpectation } from "./expect.ts";

/** How the lab knows a boot is a new one, not a login to the system that was there before. */
export interface NewBootProof {
  /** The firmware's banner (or for a direct kernel boot, the kernel's) is in this boot's slice of the console. */
  banner: boolean;
  /** /proc/sys/kernel/random/boot_id after the boot (when SSH answered) and before it. */
  bootId?: string;
  previousBootId?: string;
  proven: boolean;
  /** In words: why it is or is not proven. */
  why: string;
}

export interface BootObservation {
  machine: string;
  via: string;
  reason: string;
  outcome: string;
  detail?: string;
  evidence: string[];
  newBoot?: NewBootProof;
}

export interface StepObservation {
  name: string;
  status: "passed" | "failed" | "skipped";
  error?: string;
  /** For a step that failed on a guest command: the command, its exit code, the last lines of its output. */
  failure?: { command?: string; exitCode?: number; stdout?: string; stderr?: string };
}

export interface FaultObservation {
  fault: string;
  step?: string;
  details: Record<string, unknown>;
  observed: string[];
}

/** The machine as the run left it, looked at by the runner after the scenario's last step. */
export interface FinalObservation {
  machine: string;
  running: boolean;
  lastBoot?: { via: string; reason: string; outcome: string; detail?: string; newBootProven: boolean };
  root?: { device: string; fstype: string };
  data?: { intact: boolean; summary: string; reused?: boolean };
  /** Why the final state could not be looked at. */
  unobserved?: string;
}

export interface ProbeObservation {
  procedure: string;
  boot: { outcome: string; detail?: string };
  root: { which: "old" | "new" | "none"; device?: string };
  data: { state: "intact" | "lost" | "unknown"; summary?: string };
}

export interface Observations {
  kind: "rehearsal" | "twin";
  steps: StepObservation[];
  boots: BootObservation[];
  facts: Record<string, unknown>;
  faults?: FaultObservation[];
  probe?: ProbeObservation;
  final?: FinalObservation;
  /** The run stopped with an error (a step threw and the scenario did not catch it). */
  error?: { message: string; step?: string };
}

export interface Verdict {
  verdict: "pass" | "fail";
  /** What was expected, one line each. */
  expected: string[];
  /** What the lab observed, one line each. */
  observed: string[];
  /** Why it passed (the alternative that held) or why it failed. */
  reasons: string[];
}

const firstLine = (s: string) => s.split("\n")[0]!;

export function describeBoot(b: BootObservation): string {
  const proof = b.via === "saved-state" ? "" : b.newBoot ? (b.newBoot.proven ? ", new boot proven" : `, NOT a proven new boot: ${b.newBoot.why}`) : ", new boot not checked";
  return `boot of ${b.machine} via ${b.via} (${b.reason}): ${b.outcome}${b.detail ? ` (${b.detail})` : ""}${proof}`;
}

/** One line each: the boots, failed steps, faults and the final state. */
export function describeObservations(o: Observations): string[] {
  const lines = o.boots.map(describeBoot);
  for (const s of o.steps.filter((s) => s.status === "failed")) lines.push(`step "${s.name}" failed: ${firstLine(s.error ?? "")}${s.failure?.exitCode !== undefined ? ` (exit ${s.failure.exitCode})` : ""}`);
  for (const f of o.faults ?? []) {
    const d = f.details.duringStep as { writtenBytes?: number } | undefined;
    const stop = f.details.stoppedProcedure;
    lines.push(`fault ${f.fault}${f.step ? ` at "${f.step}"` : ""}${d?.writtenBytes !== undefined ? `, ${d.writtenBytes} bytes written in the step` : ""}${stop === undefined ? "" : stop ? ", the procedure stopped" : ", the procedure went on"}`);
  }
  if (o.probe) lines.push(`after the fault: procedure ${o.probe.procedure}; boot ${o.probe.boot.outcome}${o.probe.boot.detail ? ` (${o.probe.boot.detail})` : ""}; root ${o.probe.root.device ?? o.probe.root.which}; data ${o.probe.data.state}`);
  const f = o.final;
  if (f) {
    if (f.unobserved) lines.push(`final state not observed: ${f.unobserved}`);
    else lines.push(`final: ${f.root ? `/ on ${f.root.device} (${f.root.fstype})` : "root unknown"}, data ${f.data ? (f.data.intact ? "intact" : `NOT intact: ${firstLine(f.data.summary)}`) : "not checked"}`);
  }
  if (o.error) lines.push(`error${o.error.step ? ` in step "${o.error.step}"` : ""}: ${firstLine(o.error.message)}`);
  return lines;
}

function re(source: string): RegExp {
  return new RegExp(source, "m");
}

/** Why a boot expectation does not hold, or null when some boot satisfies it. */
function bootMiss(want: BootExpectation, o: Observations): string | null {
  const machine = want.machine ?? "vm";
  const boots = o.boots.filter((b) => b.machine === machine && b.via !== "saved-state");
  const same = boots.filter((b) => b.outcome === want.outcome);
  const details = want.detail === undefined ? undefined : [want.detail].flat();
  if (same.length === 0) return `no boot of ${machine} ended as ${want.outcome} (seen: ${boots.map((b) => b.outcome + (b.detail ? ` (${b.detail})` : "")).join(", ") || "no boot"})`;
  const why: string[] = [];
  for (const b of same) {
    if (!b.newBoot?.proven) {
      why.push(`the ${b.outcome} boot is not a proven new boot${b.newBoot ? `: ${b.newBoot.why}` : ""}`);
      continue;
    }
    if (details && !details.includes(b.detail ?? "")) {
      why.push(`the ${b.outcome} boot's detail is ${b.detail ?? "(none)"}, not ${details.join(" or ")}`);
      continue;
    }
    if (want.evidence && !b.evidence.some((l) => re(want.evidence!).test(l))) {
      why.push(`the ${b.outcome} boot's evidence does not match /${want.evidence}/`);
      continue;
    }
    return null;
  }
  return why.join("; ");
}

/** A dotted path into the facts ("observedFailure.kind", "rootIdentity.sameUuid"). */
export function factAt(facts: Record<string, unknown>, path: string): unknown {
  let v: unknown = facts;
  for (const k of path.split(".")) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

function factMiss(f: FactExpectation, facts: Record<string, unknown>): string | null {
  const v = factAt(facts, f.path);
  if (v === undefined) return `no fact ${f.path} was recorded`;
  const shown = JSON.stringify(v)?.slice(0, 200);
  if (f.equals !== undefined && v !== f.equals) return `fact ${f.path} is ${shown}, not ${JSON.stringify(f.equals)}`;
  if (f.oneOf !== undefined && !f.oneOf.includes(v as string)) return `fact ${f.path} is ${shown}, not one of ${JSON.stringify(f.oneOf)}`;
  if (f.matches !== undefined && !re(f.matches).test(typeof v === "string" ? v : JSON.stringify(v))) return `fact ${f.path} (${shown}) does not match /${f.matches}/`;
  if (f.minItems !== undefined && !(Array.isArray(v) && v.length >= f.minItems)) return `fact ${f.path} (${shown}) does not have ${f.minItems} items`;
  return null;
}

function stepText(s: StepObservation): string {
  return [s.error, s.failure?.command, s.failure?.stdout, s.failure?.stderr].filter(Boolean).join("\n");
}

/** Why an alternative does not hold, or an empty list when it does. */
function alternativeMisses(a: FailureAlternative, o: Observations): string[] {
  const miss: string[] = [];
  if (a.boot) {
    const m = bootMiss(a.boot, o);
    if (m) miss.push(m);
  }
  if (a.step) {
    const name = re(a.step.name);
    const failed = o.steps.filter((s) => s.status === "failed" && name.test(s.name));
    if (failed.length === 0) miss.push(`no step matching /${a.step.name}/ failed`);
    else if (!failed.some((s) => re(a.step!.error).test(stepText(s)))) miss.push(`step "${failed[0]!.name}" failed, but not with /${a.step.error}/: ${firstLine(failed[0]!.error ?? "")}`);
  }
  for (const f of a.facts ?? []) {
    const m = factMiss(f, o.facts);
    if (m) miss.push(m);
  }
  if (a.fault) {
    const rec = (o.faults ?? []).find((f) => f.fault === a.fault!.name);
    if (!rec) miss.push(`no ${a.fault.name} fault was injected`);
    else {
      if (a.fault.stoppedProcedure && rec.details.stoppedProcedure !== true) miss.push(`the ${a.fault.name} fault did not stop the procedure: ${rec.details.stopObservation ?? "nothing was seen to stop"}`);
      if (a.fault.writtenBelowFact) {
        const written = (rec.details.duringStep as { writtenBytes?: number } | undefined)?.writtenBytes;
        const total = factAt(o.facts, a.fault.writtenBelowFact);
        if (typeof written !== "number" || typeof total !== "number") miss.push(`the bytes written at the ${a.fault.name} (${written}) or the copy's size (${a.fault.writtenBelowFact}: ${total}) were not recorded`);
        else if (!(written > 0 && written < total)) miss.push(`the ${a.fault.name} came ${written} bytes into a copy of ${total}: not inside it`);
      }
    }
  }
  if (a.root) {
    const seen = o.probe?.root ?? (o.final?.root ? { device: o.final.root.device, which: undefined } : undefined);
    if (!seen) miss.push("the root was not observed");
    else if ((a.root.device && seen.device !== a.root.device) || (a.root.which && seen.which !== a.root.which)) miss.push(`/ was ${seen.device ?? seen.which}, not ${a.root.device ?? a.root.which}`);
  }
  if (a.data) {
    const intact = o.probe ? o.probe.data.state === "intact" : o.final?.data?.intact;
    if (!intact) miss.push(`the data set was ${o.probe?.data.state ?? (o.final?.data ? "not intact" : "not checked")}`);
  }
  return miss;
}

function finalMisses(want: FinalExpectation, o: Observations): string[] {
  const f = o.final;
  if (!f || f.unobserved) return [`the final state was not observed${f?.unobserved ? `: ${f.unobserved}` : ""}`];
  const miss: string[] = [];
  if (want.boot === "ssh") {
    const b = f.lastBoot;
    if (!b) miss.push("the machine never booted");
    else if (b.outcome !== "ssh") miss.push(`the last boot ended as ${b.outcome}${b.detail ? ` (${b.detail})` : ""}, not ssh`);
    else if (b.via !== "firmware") miss.push(`the last boot came via ${b.via} (${b.reason}), not through the machine's own firmware`);
    else if (!b.newBootProven) miss.push("the last boot to ssh is not a proven new boot (no firmware banner in its console, or the same boot_id as before)");
  } else if (!f.running || f.lastBoot?.outcome !== "ssh") miss.push("the machine is not up on ssh");
  if (want.root && f.root?.device !== want.root) miss.push(`/ is on ${f.root?.device ?? "(unknown)"}, expected ${want.root}`);
  if (want.fstype && f.root?.fstype !== want.fstype) miss.push(`/ is ${f.root?.fstype ?? "(unknown)"}, expected ${want.fstype}`);
  if (want.data === "intact") {
    if (!f.data) miss.push("the data set was not checked");
    else if (!f.data.intact) miss.push(`the data set is not intact: ${f.data.summary.replace(/\n/g, "; ")}`);
  }
  return miss;
}

/** Judge a run: the declared expectation against the observations. */
export function judge(expect: Expectation | undefined, o: Observations): Verdict {
  const expected = describeExpectation(expect);
  const observed = describeObservations(o);
  const reasons: string[] = [];
  if (o.error) reasons.push(`the run stopped with an error${o.error.step ? ` in step "${o.error.step}"` : ""}: ${firstLine(o.error.message)}`);
  if (!expect) reasons.push("the scenario declares no expectation");
  let failed = reasons.length > 0;
  if (expect?.failure?.length && !o.error) {
    const misses = expect.failure.map((a) => ({ a, miss: alternativeMisses(a, o) }));
    const held = misses.find((m) => m.miss.length === 0);
    if (held) reasons.push(`the predicted failure was observed: ${held.a.says}`);
    else {
      failed = true;
      reasons.push("the predicted failure was not observed");
      for (const m of misses) reasons.push(`  ${m.a.says}: ${m.miss.join("; ")}`);
    }
  } else if (o.kind === "twin" && !o.error && expect && !expect.failure?.length) {
    failed = true;
    reasons.push("a twin must declare the failure it predicts");
  }
  if (expect?.final && !o.error) {
    const miss = finalMisses(expect.final, o);
    if (miss.length) {
      failed = true;
      reasons.push(...miss);
    } else reasons.push(`the machine came back: ${observed.find((l) => l.startsWith("final:"))?.slice(7) ?? ""}`);
  }
  return { verdict: failed ? "fail" : "pass", expected, observed, reasons };
}
