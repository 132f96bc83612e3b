/**
 * What a scenario declares it must observe: its pass condition as data the
 * runner checks, never as code that may forget.
 *
 * A rehearsal expects the machine to come back: a new firmware boot to SSH,
 * the root it names, the data set intact (`final`).
 *
 * A twin declares the failure it predicts (`failure`): a short list of
 * alternatives, each of them specific. An alternative holds when every
 * condition in it holds: a classified boot with its detail and an evidence
 * pattern, a failed step with an error pattern, a recorded fact, a fault the
 * lab saw take effect. `timeout`, "anything but ssh" and "some error was
 * thrown" are never acceptable, and `validateExpectation` refuses them when
 * the scenario is loaded. A twin that also recovers (a rescue, a restore)
 * declares `final` too.
 */
import type { BootOutcome } from "../boot/classify.ts";

/** A classified boot the lab must have seen. Only a proven new boot counts (see BootRecord.newBoot). */
export interface BootExpectation {
  outcome: BootOutcome;
  /** The classifier's detail, when the outcome alone is not specific enough. */
  detail?: string | string[];
  /** A regular expression (source) that one of the boot's evidence lines must match. */
  evidence?: string;
  /** Which machine of the run (default "vm", the machine under test). */
  machine?: string;
}

/** A step that failed, caught by the scenario: its name and its error (message, command, stderr). */
export interface StepFailureExpectation {
  /** A regular expression (source) for the step's name. */
  name: string;
  /** A regular expression (source) for the step's error text, command output included. */
  error: string;
}

/** A fact the scenario recorded (`record(key, value)`), by dotted path into report.facts. */
export interface FactExpectation {
  path: string;
  equals?: string | number | boolean;
  /** One of these values. */
  oneOf?: (string | number | boolean)[];
  /** A regular expression (source) for the value (JSON text unless it is a string). */
  matches?: string;
  /** An array with at least this many items. */
  minItems?: number;
}

/** A fault the lab injected and saw take effect. */
export interface FaultExpectation {
  name: string;
  /** The lab saw the procedure stop at the fault: QEMU exited, the disk was gone, or the guest stopped answering. */
  stoppedProcedure?: boolean;
  /**
   * A fault during a step counted in bytes: the bytes written at the fault
   * must be more than 0 and less than the number recorded as this fact (the
   * whole copy), so the fault fell inside it.
   */
  writtenBelowFact?: string;
}

/** What must hold of the machine when the scenario has ended. */
export interface FinalExpectation {
  /**
   * "ssh": the machine's last boot was a new boot through its own firmware
   * that reached SSH. "no-reboot": the scenario does not reboot; the state is
   * checked on the running machine.
   */
  boot: "ssh" | "no-reboot";
  /** Where `/` must be: a device path. */
  root?: string;
  fstype?: string;
  /** The seeded data set, compared with its checksums from before. */
  data?: "intact";
}

/** One way a twin's predicted failure can show. Every condition given must hold. */
export interface FailureAlternative {
  /** In words, for the report: what this alternative means. */
  says: string;
  boot?: BootExpectation;
  step?: StepFailureExpectation;
  facts?: FactExpectation[];
  fault?: FaultExpectation;
  /** After the fault (a `fault` scenario): the root the lab found. */
  root?: { which?: "old" | "new"; device?: string };
  /** After the fault: the data set. */
  data?: "intact";
}

export interface Expectation {
  final?: FinalExpectation;
  /** A twin: the failure it must observe, any one of these. */
  failure?: FailureAlternative[];
}

/** Outcomes that say nothing specific about a failure: never a twin's prediction on their own. */
const VAGUE: ReadonlySet<string> = new Set(["timeout", "login-prompt"]);

/** Problems with a declared expectation, in words; empty when it is sound. */
export function expectationProblems(kind: "rehearsal" | "twin", e: Expectation | undefined): string[] {
  const p: string[] = [];
  if (!e) return [kind === "twin" ? "a twin must declare `expect.failure`: the specific failure it predicts" : "a rehearsal must declare `expect.final`: the boot, root and data set it must leave"];
  if (kind === "rehearsal" && !e.final) p.push("a rehearsal must declare `expect.final`");
  if (kind === "rehearsal" && e.failure?.length) p.push("a rehearsal predicts no failure: `expect.failure` is for twins");
  if (kind === "twin" && !e.failure?.length) p.push("a twin must declare `expect.failure`: the specific failure it predicts");
  if (e.final) {
    if (e.final.boot !== "ssh" && e.final.boot !== "no-reboot") p.push(`expect.final.boot must be "ssh" or "no-reboot", not ${JSON.stringify(e.final.boot)}`);
    if (e.final.root !== undefined && !e.final.root.startsWith("/dev/")) p.push(`expect.final.root must be a device path, not ${JSON.stringify(e.final.root)}`);
  }
  for (const [i, a] of (e.failure ?? []).entries()) {
    const at = `expect.failure[${i}]`;
    if (!a.says) p.push(`${at} needs \`says\`: what the alternative means, in words`);
    if (!a.boot && !a.step && !a.facts?.length && !a.fault) p.push(`${at} names nothing to observe: give a boot, a step, facts or a fault`);
    if (a.boot) {
      if (VAGUE.has(a.boot.outcome)) p.push(`${at}: a boot ending as "${a.boot.outcome}" is not a specific failure`);
      if (a.boot.outcome === "ssh" && !a.root && !a.facts?.length) p.push(`${at}: a boot to ssh is a failure only with the wrong root or a recorded fact`);
      if (a.boot.outcome !== "ssh" && !a.boot.evidence) p.push(`${at}: a failed boot needs an evidence pattern`);
    }
    for (const re of [a.boot?.evidence, a.step?.name, a.step?.error, ...(a.facts ?? []).map((f) => f.matches)]) {
      if (re === undefined) continue;
      try {
        new RegExp(re);
      } catch (err) {
        p.push(`${at}: bad regular expression ${JSON.stringify(re)}: ${(err as Error).message}`);
      }
      if (re === "" || re === ".*" || re === ".") p.push(`${at}: the pattern ${JSON.stringify(re)} matches anything`);
    }
    if (a.step && (!a.step.error || !a.step.name)) p.push(`${at}: a step failure needs both a name and an error pattern`);
    for (const f of a.facts ?? []) {
      if (f.equals === undefined && f.oneOf === undefined && f.matches === undefined && f.minItems === undefined) p.push(`${at}: fact ${f.path} needs equals, oneOf, matches or minItems`);
    }
  }
  return p;
}

/** One line per expectation, for the report's head and `vmlab list`. */
export function describeExpectation(e: Expectation | undefined): string[] {
  if (!e) return ["(nothing declared)"];
  const lines: string[] = [];
  for (const a of e.failure ?? []) lines.push(`${e.failure!.length > 1 ? "either: " : "failure: "}${a.says}${describeAlternative(a)}`);
  if (e.final) lines.push(`${e.failure?.length ? "then: " : ""}${describeFinal(e.final)}`);
  return lines;
}

export function describeFinal(f: FinalExpectation): string {
  const parts = [f.boot === "ssh" ? "a new firmware boot to ssh" : "no reboot"];
  if (f.root) parts.push(`/ on ${f.root}${f.fstype ? ` (${f.fstype})` : ""}`);
  else if (f.fstype) parts.push(`/ is ${f.fstype}`);
  if (f.data) parts.push("data set intact");
  return parts.join(", ");
}

function describeAlternative(a: FailureAlternative): string {
  const c: string[] = [];
  if (a.boot) c.push(`boot ${a.boot.outcome}${a.boot.detail ? ` (${[a.boot.detail].flat().join("|")})` : ""}${a.boot.evidence ? ` with evidence /${a.boot.evidence}/` : ""}`);
  if (a.step) c.push(`step /${a.step.name}/ failed with /${a.step.error}/`);
  for (const f of a.facts ?? []) c.push(`fact ${f.path}${f.equals !== undefined ? ` = ${JSON.stringify(f.equals)}` : ""}${f.oneOf ? ` in ${JSON.stringify(f.oneOf)}` : ""}${f.matches ? ` ~ /${f.matches}/` : ""}${f.minItems !== undefined ? ` has >= ${f.minItems} items` : ""}`);
  if (a.fault) c.push(`fault ${a.fault.name}${a.fault.stoppedProcedure ? " stopped the procedure" : ""}${a.fault.writtenBelowFact ? ` inside the copy (< ${a.fault.writtenBelowFact})` : ""}`);
  if (a.root) c.push(`root ${a.root.device ?? a.root.which}`);
  if (a.data) c.push(`data ${a.data}`);
  return c.length ? ` [${c.join("; ")}]` : "";
}
