import { XMLBuilder } from "fast-xml-parser";
import type { ScenarioReport, StepRecord } from "./types.ts";

const secs = (ms: number) => (ms / 1000).toFixed(3);

/** A step's error with what explains it: the command, its exit code, the last lines of its output. */
export function stepFailureText(st: StepRecord): string {
  const f = st.failure;
  const parts = [st.error ?? "failed"];
  if (f?.command) parts.push(`$ ${f.command}`);
  if (f?.exitCode !== undefined) parts.push(`exit code: ${f.exitCode}`);
  if (f?.stdout) parts.push(`stdout:\n${f.stdout}`);
  if (f?.stderr) parts.push(`stderr:\n${f.stderr}`);
  if (f?.note) parts.push(f.note);
  return parts.join("\n");
}

/**
 * The first lines of a report: the verdict's reasons, then what was expected
 * and what was observed, side by side.
 */
export function reportHead(r: ScenarioReport): string[] {
  const j = r.judgement;
  if (!j) return r.boots.map((b) => `boot ${b.reason} via ${b.via}: ${b.outcome}${b.detail ? ` (${b.detail})` : ""}`);
  return [
    ...j.reasons.map((l) => (l.startsWith("  ") ? `   ${l}` : `${r.verdict === "pass" ? "why" : "why not"}: ${l}`)),
    "expected:",
    ...j.expected.map((l) => `  ${l}`),
    "observed:",
    ...j.observed.map((l) => `  ${l}`),
  ];
}

/** Characters XML 1.0 cannot carry at all (a guest's console prints some): dropped. */
const notXml = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;
const text = (s: string) => s.replace(notXml, "");

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  textNodeName: "#text",
  format: true,
  indentBy: "  ",
  // <skipped/> stands alone; a testcase with nothing in it is still <testcase ...></testcase>.
  unpairedTags: ["skipped"],
  suppressUnpairedNode: false,
  suppressEmptyNode: false,
  processEntities: true,
});

type Node = Record<string, unknown>;

/**
 * JUnit XML: one <testsuite> per scenario, one <testcase> per step, and a
 * final "verdict" testcase. A test case fails only when its scenario's
 * verdict is fail: a step that failed in a passing scenario (a twin's
 * predicted failure, a refusal the scenario checks for) is reported as
 * passed, with its error in <system-out>. Built with fast-xml-parser's
 * XMLBuilder, which escapes every attribute and text.
 */
export function junitXml(reports: ScenarioReport[]): string {
  let tests = 0;
  let failures = 0;
  const testcase = (r: ScenarioReport, name: string, ms: number, body: Node = {}): Node => ({ "@classname": text(r.scenario), "@name": text(name), "@time": secs(ms), ...body });
  const failure = (message: string, details: string): Node => ({ failure: { "@message": text(message), "#text": text(details) } });
  const systemOut = (details: string): Node => ({ "system-out": text(details) });
  const suites = reports.map((r) => {
    const failing = r.verdict === "fail";
    let suiteFailures = 0;
    const cases = r.steps.map((st) => {
      if (st.status === "failed" && failing) {
        suiteFailures++;
        return testcase(r, st.name, st.durationMs, failure(st.error?.split("\n")[0] ?? "failed", [stepFailureText(st), ...st.log].join("\n")));
      }
      if (st.status === "failed") return testcase(r, st.name, st.durationMs, systemOut(["failed as the scenario expects (the verdict is pass):", stepFailureText(st), ...st.log].join("\n")));
      if (st.status === "skipped") return testcase(r, st.name, st.durationMs, { skipped: "" });
      return testcase(r, st.name, st.durationMs);
    });
    const head = reportHead(r).join("\n");
    if (failing) suiteFailures++;
    cases.push(
      testcase(
        r,
        "verdict",
        r.durationMs,
        failing ? failure(r.judgement?.reasons[0] ?? r.error?.message ?? "scenario failed", [head, r.error?.where, r.error?.output, r.error?.consoleTail].filter(Boolean).join("\n\n")) : systemOut(head),
      ),
    );
    tests += cases.length;
    failures += suiteFailures;
    return { "@name": text(r.scenario), "@tests": cases.length, "@failures": suiteFailures, "@errors": 0, "@time": secs(r.durationMs), "@timestamp": r.startedAt, testcase: cases };
  });
  const time = secs(reports.reduce((n, r) => n + r.durationMs, 0));
  return builder.build({
    "?xml": { "@version": "1.0", "@encoding": "UTF-8" },
    testsuites: { "@name": "vmlab", "@tests": tests, "@failures": failures, "@errors": 0, "@time": time, testsuite: suites },
  }) as string;
}
