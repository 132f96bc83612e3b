/**
 * The pass conditions of every scenario as a Markdown table, made from the
 * declarations the runner enforces. The README carries this table between
 * markers, and a unit test checks it is the one the declarations make now.
 */
import { describeExpectation, type Expectation } from "./expect.ts";

export const TABLE_BEGIN = "<!-- pass-conditions:begin (made by `vmlab list --markdown`; a test checks it) -->";
export const TABLE_END = "<!-- pass-conditions:end -->";

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

export function expectationTable(scenarios: { name: string; kind?: string; expect?: Expectation }[]): string {
  const rows = [...scenarios]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((s) => `| \`${s.name}\` | ${s.kind ?? "rehearsal"} | ${describeExpectation(s.expect).map(cell).join("<br>")} |`);
  return ["| scenario | kind | passes only when the lab observes |", "| --- | --- | --- |", ...rows].join("\n");
}

/** The table as it stands between the markers of a README, or null when the markers are missing. */
export function tableInReadme(readme: string): string | null {
  const a = readme.indexOf(TABLE_BEGIN);
  const b = readme.indexOf(TABLE_END);
  if (a < 0 || b < a) return null;
  return readme.slice(a + TABLE_BEGIN.length, b).trim();
}
