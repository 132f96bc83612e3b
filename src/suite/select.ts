/**
 * Choosing which scenarios run: by tag, and by shard (one CI runner's share
 * of the selection). Pure functions, unit-tested without a guest.
 */
import { UsageError } from "../errors.ts";

export interface Selectable {
  name: string;
  tags?: string[];
}

export interface TagFilter {
  /** Keep scenarios with at least one of these tags (none given: keep all). */
  tags?: string[];
  /** Then drop scenarios with any of these tags. */
  excludeTags?: string[];
}

/**
 * Filter by tags. A tag that no scenario carries is a usage error (most
 * likely a typo), so a CI job never silently runs nothing.
 */
export function filterByTags<T extends Selectable>(all: T[], f: TagFilter): T[] {
  const known = new Set(all.flatMap((s) => s.tags ?? []));
  const unknown = [...(f.tags ?? []), ...(f.excludeTags ?? [])].filter((t) => !known.has(t));
  if (unknown.length) {
    throw new UsageError(`no scenario has the tag${unknown.length > 1 ? "s" : ""} ${unknown.map((t) => `"${t}"`).join(", ")}`, {
      hint: `known tags: ${[...known].sort().join(", ") || "none"} (\`vmlab list\` shows each scenario's tags)`,
    });
  }
  const want = new Set(f.tags ?? []);
  const drop = new Set(f.excludeTags ?? []);
  return all.filter((s) => {
    const tags = s.tags ?? [];
    if (want.size && !tags.some((t) => want.has(t))) return false;
    return !tags.some((t) => drop.has(t));
  });
}

export interface ShardSpec {
  /** 1-based index of this shard. */
  index: number;
  count: number;
}

/** Parse "k/n" with 1 <= k <= n. */
export function parseShard(spec: string): ShardSpec {
  const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) {
    throw new UsageError(`bad --shard "${spec}": use k/n with 1 <= k <= n, e.g. --shard 1/3`, {
      hint: "in a CI matrix of N jobs, job k runs --shard k/N; together they run every selected scenario once",
    });
  }
  return { index, count };
}

/**
 * Split names into `count` shards, deterministically: the same names and
 * durations give the same split on every machine. Longest processing time
 * first: scenarios sorted by expected duration (longest first, then by name)
 * each go to the shard with the least work so far (lowest index on a tie).
 * A scenario without a recorded duration weighs the mean of the recorded ones,
 * or 1 when none is recorded (an even split by count).
 */
export function splitShards(names: string[], count: number, durationsMs: Record<string, number> = {}): string[][] {
  const unique = [...new Set(names)].sort();
  const known = unique.map((n) => durationsMs[n]).filter((d): d is number => typeof d === "number" && Number.isFinite(d) && d > 0);
  const fallback = known.length ? known.reduce((a, b) => a + b, 0) / known.length : 1;
  const weight = (n: string) => {
    const d = durationsMs[n];
    return typeof d === "number" && Number.isFinite(d) && d > 0 ? d : fallback;
  };
  const order = unique.map((n) => ({ n, w: weight(n) })).sort((a, b) => b.w - a.w || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
  const shards = Array.from({ length: count }, () => ({ load: 0, names: [] as string[] }));
  for (const { n, w } of order) {
    let best = 0;
    for (let i = 1; i < count; i++) if (shards[i]!.load < shards[best]!.load) best = i;
    shards[best]!.load += w;
    shards[best]!.names.push(n);
  }
  return shards.map((s) => s.names.sort());
}

/** This shard's share of the names. */
export function shardOf(names: string[], shard: ShardSpec, durationsMs: Record<string, number> = {}): string[] {
  return splitShards(names, shard.count, durationsMs)[shard.index - 1]!;
}
