/**
 * Merging the report directories of several shards (or several runs) into
 * one JUnit XML, one summary (text and JSON), the durations of every
 * scenario, and the logs of each failing scenario kept as artifacts.
 *
 * Output directory:
 *   junit.xml        one <testsuite> per scenario run, from every input
 *   summary.txt      one line per scenario run and the totals
 *   summary.json     { total, passed, failed, inputs, scenarios: [...] }
 *   durations.json   for balancing the next run's shards (src/suite/durations.ts)
 *   index.html       one row per run: verdict, scenario, duration, a link to its report.html
 *   failures/<run>/  report.json, report.html, junit.xml and the *.log files of each failing run
 */
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { basename, join, relative, resolve } from "node:path";
import { UsageError } from "../errors.ts";
import { readRunConsoles } from "../report/files.ts";
import { renderIndexHtml, renderRunHtml, type IndexEntry } from "../report/html.ts";
import { junitXml } from "../scenario/report.ts";
import type { ScenarioReport } from "../scenario/types.ts";
import { mergeDurations, writeDurations } from "./durations.ts";

export interface FoundReport {
  report: ScenarioReport;
  /** Where report.json was found (the run directory as it is on this host). */
  dir: string;
  /** The input directory it was found under. */
  input: string;
}

export interface MergeSummary {
  total: number;
  passed: number;
  failed: number;
  inputs: string[];
  scenarios: {
    scenario: string;
    verdict: "pass" | "fail";
    durationMs: number;
    startedAt: string;
    /** The run directory, relative to its input directory. */
    from: string;
    failedStep?: string;
    error?: string;
    /** Kept logs of a failing run, relative to the output directory. */
    artifacts?: string;
  }[];
}

const MAX_DEPTH = 6;

/** Every report.json under `dir` (not under `skip`), depth-limited. */
async function walk(dir: string, skip: string, depth: number, found: string[]): Promise<void> {
  if (depth > MAX_DEPTH || resolve(dir) === skip) return;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  if (entries.some((e) => e.isFile() && e.name === "report.json")) {
    found.push(join(dir, "report.json"));
    return;
  }
  for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name), skip, depth + 1, found);
}

/** The report, or a UsageError saying why `file` is not a vmlab report. */
export function checkReport(x: unknown, file: string): ScenarioReport {
  const r = x as ScenarioReport;
  const problems: string[] = [];
  if (!r || typeof r !== "object") problems.push("not an object");
  else {
    if (typeof r.scenario !== "string") problems.push("no scenario name");
    if (r.verdict !== "pass" && r.verdict !== "fail") problems.push(`verdict is ${JSON.stringify(r.verdict)}, not pass or fail`);
    if (!Array.isArray(r.steps)) problems.push("no steps");
    if (typeof r.durationMs !== "number") problems.push("no durationMs");
  }
  if (problems.length) throw new UsageError(`${file} is not a vmlab report`, { output: problems.join("\n"), hint: "pass report directories written by `vmlab run` (each run directory holds a report.json)" });
  return r;
}

/** Read every run's report.json under the input directories. */
export async function collectReports(inputs: string[], skip = ""): Promise<FoundReport[]> {
  if (inputs.length === 0) throw new UsageError("vmlab report merge needs at least one report directory", { hint: "vmlab report merge shard-1/ shard-2/ --out merged/" });
  const out: FoundReport[] = [];
  const seen = new Set<string>();
  for (const input of inputs) {
    const st = await stat(input).catch(() => undefined);
    if (!st?.isDirectory()) throw new UsageError(`report directory ${input} does not exist`, { hint: "give the directories that `vmlab run --report-dir` wrote (or their downloaded artifacts)" });
    const files: string[] = [];
    await walk(resolve(input), skip, 0, files);
    for (const f of files.sort()) {
      if (seen.has(f)) continue;
      seen.add(f);
      let json: unknown;
      try {
        json = JSON.parse(await readFile(f, "utf8"));
      } catch (err) {
        throw new UsageError(`${f} is not valid JSON: ${(err as Error).message}`, { hint: "a run that was cut off leaves no complete report; rerun that shard" });
      }
      out.push({ report: checkReport(json, f), dir: resolve(f, ".."), input: resolve(input) });
    }
  }
  if (out.length === 0) throw new UsageError(`no report.json under ${inputs.join(", ")}`, { hint: "each run directory of `vmlab run` holds a report.json" });
  return out.sort((a, b) => a.report.scenario.localeCompare(b.report.scenario) || a.report.startedAt.localeCompare(b.report.startedAt) || a.dir.localeCompare(b.dir));
}

/**
 * report.html of a failing run in its failures/ directory: rendered from the
 * report and its console logs, or the run's own page copied when rendering
 * fails. A page that cannot be had is a warning, not a failed merge.
 */
async function keepRunHtml(f: FoundReport, keep: string): Promise<boolean> {
  try {
    await writeFile(join(keep, "report.html"), renderRunHtml(f.report, await readRunConsoles(f.report, f.dir)));
    return true;
  } catch (err) {
    const copied = await copyFile(join(f.dir, "report.html"), join(keep, "report.html")).then(() => true, () => false);
    process.stderr.write(`vmlab: could not render report.html for ${f.dir}: ${(err as Error).message}${copied ? " (copied the run's own)" : ""}\n`);
    return copied;
  }
}

export function summaryText(s: MergeSummary): string {
  const width = Math.max(8, ...s.scenarios.map((x) => x.scenario.length));
  const lines = [`vmlab: ${s.total} scenario run${s.total === 1 ? "" : "s"}: ${s.passed} passed, ${s.failed} failed (from ${s.inputs.length} report director${s.inputs.length === 1 ? "y" : "ies"})`];
  for (const x of s.scenarios) {
    let line = `${x.verdict === "pass" ? "PASS" : "FAIL"}  ${x.scenario.padEnd(width)}  ${(x.durationMs / 1000).toFixed(1).padStart(7)} s  ${x.from}`;
    if (x.verdict === "fail") line += `\n      failed step: ${x.failedStep ?? "(setup)"}: ${x.error ?? ""}${x.artifacts ? `\n      logs: ${x.artifacts}` : ""}`;
    lines.push(line);
  }
  lines.push(`${s.passed} passed, ${s.failed} failed`);
  return lines.join("\n") + "\n";
}

/** Merge the report directories into `outDir`. Reads and checks every input before writing anything. */
export async function mergeReports(inputs: string[], outDir: string): Promise<MergeSummary> {
  const out = resolve(outDir);
  const found = await collectReports(inputs, out);
  const summary: MergeSummary = { total: found.length, passed: 0, failed: 0, inputs: inputs.map((i) => resolve(i)), scenarios: [] };
  await mkdir(out, { recursive: true });
  const usedNames = new Set<string>();
  const index: IndexEntry[] = [];
  for (const f of found) {
    const r = f.report;
    const entry: MergeSummary["scenarios"][number] = {
      scenario: r.scenario,
      verdict: r.verdict,
      durationMs: r.durationMs,
      startedAt: r.startedAt,
      from: relative(f.input, f.dir) || basename(f.dir),
    };
    // A passing run's page stays where it is: linked when it exists.
    let href: string | undefined;
    if (r.verdict === "pass") {
      summary.passed++;
      if (await stat(join(f.dir, "report.html")).then((s) => s.isFile(), () => false)) href = `${relative(out, f.dir)}/report.html`;
    } else {
      summary.failed++;
      entry.failedStep = r.error?.step;
      entry.error = r.error?.message;
      let name = basename(f.dir);
      for (let n = 2; usedNames.has(name); n++) name = `${basename(f.dir)}-${n}`;
      usedNames.add(name);
      const keep = join(out, "failures", name);
      await mkdir(keep, { recursive: true });
      for (const file of await readdir(f.dir)) {
        if (file === "report.json" || file === "junit.xml" || file.endsWith(".log")) await copyFile(join(f.dir, file), join(keep, file));
      }
      entry.artifacts = relative(out, keep);
      if (await keepRunHtml(f, keep)) href = `${entry.artifacts}/report.html`;
    }
    summary.scenarios.push(entry);
    index.push({ ...entry, href: href?.split("\\").join("/") });
  }
  await writeFile(join(out, "index.html"), renderIndexHtml(index));
  await writeFile(join(out, "junit.xml"), junitXml(found.map((f) => f.report)));
  await writeFile(join(out, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  await writeFile(join(out, "summary.txt"), summaryText(summary));
  await writeDurations(
    join(out, "durations.json"),
    mergeDurations({ version: 1, scenarios: {} }, found.map((f) => ({ scenario: f.report.scenario, durationMs: f.report.durationMs, startedAt: f.report.startedAt, verdict: f.report.verdict }))),
  );
  return summary;
}
