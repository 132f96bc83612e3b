import type { ScenarioReport, StepRecord } from "./types.ts";

export function xmlEscape(s: string): string {
  return s
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

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

/**
 * JUnit XML: one <testsuite> per scenario, one <testcase> per step, and a
 * final "verdict" testcase. A test case fails only when its scenario's
 * verdict is fail: a step that failed in a passing scenario (a twin's
 * predicted failure, a refusal the scenario checks for) is reported as
 * passed, with its error in <system-out>.
 */
export function junitXml(reports: ScenarioReport[]): string {
  let tests = 0;
  let failures = 0;
  const suites = reports.map((r) => {
    const failing = r.verdict === "fail";
    let suiteFailures = 0;
    const cases = r.steps.map((st) => {
      let body = "";
      if (st.status === "failed" && failing) {
        suiteFailures++;
        body = `<failure message="${xmlEscape(st.error?.split("\n")[0] ?? "failed")}">${xmlEscape([stepFailureText(st), ...st.log].join("\n"))}</failure>`;
      } else if (st.status === "failed") {
        body = `<system-out>${xmlEscape(["failed as the scenario expects (the verdict is pass):", stepFailureText(st), ...st.log].join("\n"))}</system-out>`;
      } else if (st.status === "skipped") body = "<skipped/>";
      return `    <testcase classname="${xmlEscape(r.scenario)}" name="${xmlEscape(st.name)}" time="${secs(st.durationMs)}">${body}</testcase>`;
    });
    const head = reportHead(r).join("\n");
    const verdictBody = failing
      ? `<failure message="${xmlEscape(r.judgement?.reasons[0] ?? r.error?.message ?? "scenario failed")}">${xmlEscape(
          [head, r.error?.where, r.error?.output, r.error?.consoleTail].filter(Boolean).join("\n\n"),
        )}</failure>`
      : `<system-out>${xmlEscape(head)}</system-out>`;
    if (failing) suiteFailures++;
    cases.push(`    <testcase classname="${xmlEscape(r.scenario)}" name="verdict" time="${secs(r.durationMs)}">${verdictBody}</testcase>`);
    tests += cases.length;
    failures += suiteFailures;
    return `  <testsuite name="${xmlEscape(r.scenario)}" tests="${cases.length}" failures="${suiteFailures}" errors="0" time="${secs(r.durationMs)}" timestamp="${r.startedAt}">\n${cases.join("\n")}\n  </testsuite>`;
  });
  const time = secs(reports.reduce((n, r) => n + r.durationMs, 0));
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="vmlab" tests="${tests}" failures="${failures}" errors="0" time="${time}">\n${suites.join("\n")}\n</testsuites>\n`;
}
