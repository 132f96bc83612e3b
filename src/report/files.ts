/**
 * The HTML reports on disk: report.html beside a run's report.json (with its
 * console logs), sweep.html beside sweep.json, and `vmlab report html`, which
 * renders them again for directories already written.
 */
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { UsageError } from "../errors.ts";
import { checkReport } from "../suite/merge.ts";
import type { ScenarioReport } from "../scenario/types.ts";
import { renderRunHtml, renderSweepHtml, type SweepLike } from "./html.ts";

/**
 * A run's console logs, by file name. Each is read from the run directory
 * first (a directory that was moved or downloaded keeps its logs beside
 * report.json), else from the path the report recorded; with none recorded,
 * every *.console.log in the directory. A log that cannot be read is left out.
 */
export async function readRunConsoles(report: ScenarioReport, runDir: string): Promise<{ name: string; text: string }[]> {
  let paths = report.consoleLogs ?? [];
  if (paths.length === 0) {
    const files = await readdir(runDir).catch(() => [] as string[]);
    paths = files.filter((f) => f.endsWith(".console.log")).sort();
  }
  const out: { name: string; text: string }[] = [];
  for (const p of paths) {
    const name = basename(p);
    for (const candidate of [join(runDir, name), p]) {
      const text = await readFile(candidate, "utf8").catch(() => undefined);
      if (text !== undefined) {
        out.push({ name, text });
        break;
      }
    }
  }
  return out;
}

/** Write report.html into `runDir` from the report and the run's console logs; returns its path. */
export async function writeRunHtml(report: ScenarioReport, runDir: string): Promise<string> {
  const html = renderRunHtml(report, await readRunConsoles(report, runDir));
  const file = join(runDir, "report.html");
  await writeFile(file, html);
  return file;
}

/** Write sweep.html into the sweep's directory; returns its path. */
export async function writeSweepHtml(result: SweepLike, dir = result.dir): Promise<string> {
  const file = join(dir, "sweep.html");
  await writeFile(file, renderSweepHtml(result));
  return file;
}

function checkSweep(x: unknown, file: string): SweepLike {
  const s = x as SweepLike;
  const problems: string[] = [];
  if (!s || typeof s !== "object") problems.push("not an object");
  else {
    if (typeof s.scenario !== "string") problems.push("no scenario name");
    if (typeof s.fault !== "string") problems.push("no fault");
    if (!Array.isArray(s.rows)) problems.push("no rows");
    else if (s.rows.some((r) => !r || typeof r.at !== "number" || !r.boot || !r.root || !r.data)) problems.push("a row without its step, boot, root or data");
  }
  if (problems.length) throw new UsageError(`${file} is not a vmlab sweep`, { output: problems.join("\n"), hint: "pass sweep directories written by `vmlab sweep`" });
  return s;
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    throw new UsageError(`${file} is not valid JSON: ${(err as Error).message}`, { hint: "a run that was cut off leaves no complete report" });
  }
}

const isFile = (p: string) => stat(p).then((s) => s.isFile(), () => false);

type Job = { kind: "run"; dir: string; report: ScenarioReport } | { kind: "sweep"; dir: string; sweep: SweepLike; runs: { dir: string; report: ScenarioReport }[] };

/**
 * `vmlab report html DIR...`: report.html for each run directory (one with a
 * report.json), sweep.html for each sweep directory (one with a sweep.json)
 * and report.html for the runs of that sweep. Every input is read and checked
 * before anything is written. Returns the files written.
 */
export async function renderHtmlReports(dirs: string[]): Promise<string[]> {
  if (dirs.length === 0) throw new UsageError("vmlab report html needs at least one run or sweep directory", { hint: "vmlab report html reports/root-to-lvm-20260101T000000-abcdef" });
  const jobs: Job[] = [];
  for (const d of dirs) {
    const dir = resolve(d);
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new UsageError(`${d} is not a directory`, { hint: "give run directories (each holds a report.json) or sweep directories (each holds a sweep.json)" });
    if (await isFile(join(dir, "report.json"))) {
      const file = join(dir, "report.json");
      jobs.push({ kind: "run", dir, report: checkReport(await readJson(file), file) });
    } else if (await isFile(join(dir, "sweep.json"))) {
      const file = join(dir, "sweep.json");
      const sweep = checkSweep(await readJson(file), file);
      const runs: { dir: string; report: ScenarioReport }[] = [];
      // The runs' directories beside sweep.json, found by name (the sweep may have been moved since).
      const reports = [...sweep.rows.map((r) => r.report), sweep.recording?.report].filter((p): p is string => !!p);
      for (const p of reports) {
        const runFile = join(dir, basename(dirname(p)), "report.json");
        if (await isFile(runFile)) runs.push({ dir: dirname(runFile), report: checkReport(await readJson(runFile), runFile) });
      }
      jobs.push({ kind: "sweep", dir, sweep, runs });
    } else {
      throw new UsageError(`${d} holds no report.json and no sweep.json`, { hint: "`vmlab run` writes a report.json in each run directory, `vmlab sweep` a sweep.json in its directory" });
    }
  }
  const written: string[] = [];
  for (const j of jobs) {
    if (j.kind === "run") written.push(await writeRunHtml(j.report, j.dir));
    else {
      for (const r of j.runs) written.push(await writeRunHtml(r.report, r.dir));
      written.push(await writeSweepHtml(j.sweep, j.dir));
    }
  }
  return written;
}
