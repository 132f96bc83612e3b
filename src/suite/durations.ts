/**
 * Recorded scenario durations, used to balance shards. Every `vmlab run`
 * records the duration of each scenario it ran; `vmlab report merge` writes
 * the durations of all shards of a CI run to `durations.json` in its output,
 * which CI can keep for the next run (see the README).
 *
 * File: { "version": 1, "scenarios": { "<name>": { "durationMs", "at", "verdict" } } }
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { cacheDir } from "../paths.ts";

export interface DurationRecord {
  durationMs: number;
  at: string;
  verdict?: "pass" | "fail";
}

export interface DurationsFile {
  version: 1;
  scenarios: Record<string, DurationRecord>;
}

/** $VMLAB_DURATIONS, or durations.json in the cache directory. */
export function defaultDurationsPath(): string {
  return process.env.VMLAB_DURATIONS ? resolve(process.env.VMLAB_DURATIONS) : join(cacheDir(), "durations.json");
}

/**
 * Read a durations file. A missing file is empty; a file that is not a
 * durations file is reported through `warn` and read as empty, so that every
 * shard falls back to the same even split.
 */
export async function readDurations(path = defaultDurationsPath(), warn: (m: string) => void = () => undefined): Promise<DurationsFile> {
  if (!existsSync(path)) return { version: 1, scenarios: {} };
  try {
    const f = JSON.parse(await readFile(path, "utf8")) as DurationsFile;
    if (f?.version !== 1 || typeof f.scenarios !== "object" || !f.scenarios) throw new Error("not a version 1 durations file");
    const scenarios: Record<string, DurationRecord> = {};
    for (const [name, r] of Object.entries(f.scenarios)) {
      if (r && typeof r.durationMs === "number" && Number.isFinite(r.durationMs) && r.durationMs > 0) scenarios[name] = r;
    }
    return { version: 1, scenarios };
  } catch (err) {
    warn(`ignoring durations file ${path}: ${(err as Error).message}; shards are split by count`);
    return { version: 1, scenarios: {} };
  }
}

/** Name → milliseconds, as splitShards takes them. */
export function durationMap(f: DurationsFile): Record<string, number> {
  return Object.fromEntries(Object.entries(f.scenarios).map(([n, r]) => [n, r.durationMs]));
}

/** Newer records replace older ones of the same scenario. */
export function mergeDurations(base: DurationsFile, runs: { scenario: string; durationMs: number; startedAt: string; verdict?: "pass" | "fail" }[]): DurationsFile {
  const scenarios = { ...base.scenarios };
  for (const r of runs) {
    if (!(r.durationMs > 0)) continue;
    const old = scenarios[r.scenario];
    if (!old || old.at <= r.startedAt) scenarios[r.scenario] = { durationMs: r.durationMs, at: r.startedAt, verdict: r.verdict };
  }
  return { version: 1, scenarios: Object.fromEntries(Object.entries(scenarios).sort(([a], [b]) => (a < b ? -1 : 1))) };
}

export async function writeDurations(path: string, f: DurationsFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(f, null, 2) + "\n");
  await rename(tmp, path);
}

/** Add runs to the durations file at `path`. */
export async function recordDurations(path: string, runs: Parameters<typeof mergeDurations>[1]): Promise<void> {
  await writeDurations(path, mergeDurations(await readDurations(path), runs));
}
