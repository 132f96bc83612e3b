import type { ScenarioReport } from "./types.ts";

export function xmlEscape(s: string): string {
  return s
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

const secs = (ms: number) => (ms / 1000).toFixed(3);

/**
 * JUnit XML: one <testsuite> per scenario, one <testcase> per step, and a
 * final "verdict" testcase that fails when the scenario failed.
 */
export function junitXml(reports: ScenarioReport[]): string {
  const suites = reports.map((r) => {
    const cases = r.steps.map((st) => {
      const body =
        st.status === "failed"
          ? `<failure message="${xmlEscape(st.error ?? "failed")}">${xmlEscape([st.error, ...st.log].filter(Boolean).join("\n"))}</failure>`
          : st.status === "skipped"
            ? "<skipped/>"
            : "";
      return `    <testcase classname="${xmlEscape(r.scenario)}" name="${xmlEscape(st.name)}" time="${secs(st.durationMs)}">${body}</testcase>`;
    });
    const verdictFail =
      r.verdict === "fail"
        ? `<failure message="${xmlEscape(r.error?.message ?? "scenario failed")}">${xmlEscape(
            [r.error?.where, r.error?.output, r.error?.consoleTail].filter(Boolean).join("\n\n"),
          )}</failure>`
        : "";
    cases.push(`    <testcase classname="${xmlEscape(r.scenario)}" name="verdict" time="${secs(r.durationMs)}">${verdictFail}</testcase>`);
    const failures = r.steps.filter((s) => s.status === "failed").length + (r.verdict === "fail" ? 1 : 0);
    return `  <testsuite name="${xmlEscape(r.scenario)}" tests="${cases.length}" failures="${failures}" errors="0" time="${secs(r.durationMs)}" timestamp="${r.startedAt}">\n${cases.join("\n")}\n  </testsuite>`;
  });
  const tests = reports.reduce((n, r) => n + r.steps.length + 1, 0);
  const failures = reports.reduce((n, r) => n + r.steps.filter((s) => s.status === "failed").length + (r.verdict === "fail" ? 1 : 0), 0);
  const time = secs(reports.reduce((n, r) => n + r.durationMs, 0));
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="vmlab" tests="${tests}" failures="${failures}" errors="0" time="${time}">\n${suites.join("\n")}\n</testsuites>\n`;
}
