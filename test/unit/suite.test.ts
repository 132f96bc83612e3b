/**
 * Running the scenarios as a CI suite: tag selection, shards (on the real
 * scenario list), balancing by recorded durations, the durations file, and
 * merging shard report directories into one JUnit XML.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { UsageError } from "../../src/errors.ts";
import { loadScenario, scenarioNames } from "../../src/scenario/registry.ts";
import { junitXml } from "../../src/scenario/report.ts";
import type { ScenarioReport } from "../../src/scenario/types.ts";
import { mergeDurations, readDurations, recordDurations } from "../../src/suite/durations.ts";
import { mergeReports } from "../../src/suite/merge.ts";
import { filterByTags, parseShard, shardOf, splitShards } from "../../src/suite/select.ts";
import { vmlab } from "../vm/helpers.ts";

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true, prefix: "vmlab-suite-" });
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("shards", () => {
  it("--shard 1/2 and 2/2 cover the real scenario list exactly once, and list prints the same split", async () => {
    const names = await scenarioNames();
    expect(names.length).toBeGreaterThanOrEqual(3);
    const a = shardOf(names, parseShard("1/2"));
    const b = shardOf(names, parseShard("2/2"));
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
    expect([...a, ...b].sort()).toEqual([...names].sort());
    expect(a.filter((n) => b.includes(n))).toEqual([]);
    // The command line gives the same split, one name a line. An empty durations
    // file makes the split by count, whatever this host recorded before.
    const none = join(tmp.path, "no-durations.json");
    const l1 = await vmlab(["list", "--shard", "1/2", "--durations", none]);
    const l2 = await vmlab(["list", "--shard", "2/2", "--durations", none]);
    expect(l1.exitCode, l1.stderr).toBe(0);
    expect(l2.exitCode, l2.stderr).toBe(0);
    expect(l1.stdout.split("\n").filter(Boolean)).toEqual(a);
    expect(l2.stdout.split("\n").filter(Boolean)).toEqual(b);
  });

  it("every shard count from 1 to n+1 covers the list exactly once, and the same input gives the same split", async () => {
    const names = await scenarioNames();
    for (let n = 1; n <= names.length + 1; n++) {
      const shards = splitShards(names, n);
      expect(shards).toHaveLength(n);
      expect(shards.flat().sort()).toEqual([...names].sort());
      // Balanced by count when no durations are known.
      const sizes = shards.map((s) => s.length);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      // Order of the input does not matter.
      expect(splitShards([...names].reverse(), n)).toEqual(shards);
    }
  });

  it("balances by recorded durations: the long scenario gets a shard of its own", () => {
    const names = ["a", "b", "c", "d", "e"];
    const durations = { a: 600_000, b: 100_000, c: 100_000, d: 100_000, e: 100_000 };
    const [s1, s2] = splitShards(names, 2, durations);
    expect(s1).toEqual(["a"]);
    expect(s2).toEqual(["b", "c", "d", "e"]);
    // By count alone the split would be 3 + 2.
    expect(splitShards(names, 2).map((s) => s.length)).toEqual([3, 2]);
    // A scenario with no record weighs the mean of the recorded ones (200 s here).
    const [t1, t2, t3] = splitShards(["x", "long", "short"], 3, { long: 300_000, short: 100_000 });
    expect([t1, t2, t3]).toEqual([["long"], ["x"], ["short"]]);
  });

  it("bad shard specs are usage errors (exit 2) on run and list, and start nothing", async () => {
    for (const spec of ["0/2", "3/2", "x", "1/0", "1/", "-1/2", "1.5/2", ""]) expect(() => parseShard(spec), spec).toThrow(UsageError);
    for (const spec of ["0/2", "3/2", "x"]) {
      const reports = join(tmp.path, `r-${spec.replace(/\W/g, "_")}`);
      const run = await vmlab(["run", "--all", `--shard=${spec}`, "--report-dir", reports]);
      expect(run.exitCode, `${spec}: ${run.stderr}`).toBe(2);
      expect(run.stderr).toContain(`bad --shard "${spec}"`);
      expect(existsSync(reports)).toBe(false);
      const list = await vmlab(["list", `--shard=${spec}`]);
      expect(list.exitCode, spec).toBe(2);
    }
    expect(parseShard("2/3")).toEqual({ index: 2, count: 3 });
  });
});

describe("tags", () => {
  it("--tag keeps scenarios with any of the tags, --exclude-tag drops them; an unknown tag is an error", async () => {
    const all = await Promise.all((await scenarioNames()).map((n) => loadScenario(n)));
    const lvm = filterByTags(all, { tags: ["lvm"] }).map((s) => s.name);
    expect(lvm).toContain("root-to-lvm");
    expect(lvm).toContain("root-to-lvm-no-relabel");
    expect(lvm).not.toContain("smoke");
    expect(filterByTags(all, { tags: ["lvm"], excludeTags: ["twin"] }).map((s) => s.name)).toContain("root-to-lvm");
    expect(filterByTags(all, { tags: ["lvm"], excludeTags: ["twin"] }).map((s) => s.name)).not.toContain("root-to-lvm-no-relabel");
    expect(filterByTags(all, { excludeTags: ["slow"] }).every((s) => !s.tags?.includes("slow"))).toBe(true);
    expect(() => filterByTags(all, { tags: ["lvmm"] })).toThrow(/no scenario has the tag "lvmm"/);

    const r = await vmlab(["list", "--tag", "lvm", "--exclude-tag", "twin", "--names"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.split("\n").filter(Boolean)).toEqual(filterByTags(all, { tags: ["lvm"], excludeTags: ["twin"] }).map((s) => s.name));
    const bad = await vmlab(["run", "--tag", "lvmm", "--report-dir", join(tmp.path, "r-tag")]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('no scenario has the tag "lvmm"');
    expect(bad.stderr).toContain("known tags:");
    expect(existsSync(join(tmp.path, "r-tag"))).toBe(false);
  });

  it("list --json gives each scenario's name, kind and tags", async () => {
    const r = await vmlab(["list", "--json"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as { name: string; kind: string; tags: string[] }[];
    expect(list.map((s) => s.name)).toEqual(await scenarioNames());
    expect(list.find((s) => s.name === "root-to-lvm-no-relabel")).toMatchObject({ kind: "twin" });
    expect(list.find((s) => s.name === "smoke")?.tags).toEqual(["smoke"]);
  });
});

describe("durations file", () => {
  it("records the newest duration per scenario, and a broken file reads as empty with a warning", async () => {
    const f = join(tmp.path, "d", "durations.json");
    await recordDurations(f, [{ scenario: "a", durationMs: 1000, startedAt: "2026-01-01T00:00:00Z", verdict: "pass" }]);
    await recordDurations(f, [
      { scenario: "a", durationMs: 2000, startedAt: "2026-01-02T00:00:00Z", verdict: "fail" },
      { scenario: "b", durationMs: 500, startedAt: "2026-01-02T00:00:00Z" },
    ]);
    expect((await readDurations(f)).scenarios).toMatchObject({ a: { durationMs: 2000 }, b: { durationMs: 500 } });
    // An older record does not replace a newer one.
    expect(mergeDurations(await readDurations(f), [{ scenario: "a", durationMs: 9, startedAt: "2025-01-01T00:00:00Z" }]).scenarios.a!.durationMs).toBe(2000);
    const broken = join(tmp.path, "broken.json");
    await writeFile(broken, "{not json");
    const warnings: string[] = [];
    expect((await readDurations(broken, (m) => warnings.push(m))).scenarios).toEqual({});
    expect(warnings[0]).toContain(broken);
  });
});

function fakeReport(scenario: string, verdict: "pass" | "fail", runDir: string, startedAt: string): ScenarioReport {
  return {
    scenario,
    description: `${scenario} for the merge test`,
    kind: "rehearsal",
    verdict,
    startedAt,
    durationMs: verdict === "pass" ? 42_000 : 17_000,
    steps: [
      { name: "start from the saved state", status: "passed", durationMs: 2000, startedAtMs: 0, log: [] },
      verdict === "pass"
        ? { name: "check <data> & \"quotes\"", status: "passed", durationMs: 1000, startedAtMs: 2000, log: [] }
        : { name: "pivot_root", status: "failed", durationMs: 1000, startedAtMs: 2000, error: "pivot_root: Invalid argument <&>", log: ["$ pivot_root . oldroot"] },
    ],
    boots: [],
    facts: {},
    error: verdict === "fail" ? { message: "pivot_root: Invalid argument <&>", step: "pivot_root", consoleTail: "login: \u001b[0m" } : undefined,
    runDir,
    consoleLogs: [join(runDir, "vm.console.log")],
    machines: [],
  };
}

async function writeRun(shardDir: string, r: ScenarioReport): Promise<void> {
  const d = join(shardDir, r.runDir);
  await mkdir(d, { recursive: true });
  // As on a CI runner: the recorded paths are those of the machine that ran it.
  await writeFile(join(d, "report.json"), JSON.stringify({ ...r, runDir: `/home/runner/work/reports/${r.runDir}` }, null, 2));
  await writeFile(join(d, "junit.xml"), junitXml([r]));
  await writeFile(join(d, "vm.console.log"), `console of ${r.scenario}\nvmlab login: \n`);
  await writeFile(join(d, "vm.qemu.log"), "");
}

describe("report merge", () => {
  it("merges two shard directories into one valid JUnit XML and a summary, and keeps the failing run's logs", async () => {
    const s1 = join(tmp.path, "shard-1");
    const s2 = join(tmp.path, "shard-2", "reports"); // downloaded artifacts nest a level deeper
    await writeRun(s1, fakeReport("alpha", "pass", "alpha-20260101T000000-aaaaaa", "2026-01-01T00:00:00.000Z"));
    await writeRun(s1, fakeReport("beta", "fail", "beta-20260101T000000-bbbbbb", "2026-01-01T00:01:00.000Z"));
    await writeRun(s2, fakeReport("gamma", "pass", "gamma-20260101T000000-cccccc", "2026-01-01T00:00:30.000Z"));
    const out = join(tmp.path, "merged");
    const r = await vmlab(["report", "merge", s1, join(tmp.path, "shard-2"), "--out", out]);
    // A failing scenario in any shard makes the merge exit 1.
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stdout).toContain("3 scenario runs: 2 passed, 1 failed");
    expect(r.stdout).toMatch(/^2 passed, 1 failed$/m);

    const xml = await readFile(join(out, "junit.xml"), "utf8");
    expect(XMLValidator.validate(xml)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "", isArray: (n) => n === "testsuite" || n === "testcase" }).parse(xml);
    const suites = doc.testsuites.testsuite as { name: string; tests: string; failures: string; testcase: { name: string; failure?: unknown }[] }[];
    expect(suites.map((s) => s.name)).toEqual(["alpha", "beta", "gamma"]);
    expect(suites.map((s) => s.testcase.length)).toEqual([3, 3, 3]);
    expect(Number(doc.testsuites.tests)).toBe(9);
    expect(Number(doc.testsuites.failures)).toBe(2);
    const beta = suites.find((s) => s.name === "beta")!;
    expect(beta.failures).toBe("2");
    expect(beta.testcase.filter((c) => c.failure !== undefined).map((c) => c.name)).toEqual(["pivot_root", "verdict"]);
    expect(suites.find((s) => s.name === "alpha")!.testcase.map((c) => c.name)).toContain('check <data> & "quotes"');

    const summary = JSON.parse(await readFile(join(out, "summary.json"), "utf8"));
    expect(summary).toMatchObject({ total: 3, passed: 2, failed: 1 });
    expect(summary.scenarios.find((s: { scenario: string }) => s.scenario === "beta")).toMatchObject({ verdict: "fail", failedStep: "pivot_root", artifacts: "failures/beta-20260101T000000-bbbbbb" });
    expect(await readFile(join(out, "summary.txt"), "utf8")).toContain("FAIL  beta");
    // The failing run's logs and report are kept; passing runs are not copied.
    expect((await readdir(join(out, "failures"))).sort()).toEqual(["beta-20260101T000000-bbbbbb"]);
    expect((await readdir(join(out, "failures", "beta-20260101T000000-bbbbbb"))).sort()).toEqual(["junit.xml", "report.html", "report.json", "vm.console.log", "vm.qemu.log"]);
    expect(await readFile(join(out, "failures", "beta-20260101T000000-bbbbbb", "vm.console.log"), "utf8")).toContain("console of beta");
    // The failing run's page, with its console, and an index of every run linking to it.
    const page = await readFile(join(out, "failures", "beta-20260101T000000-bbbbbb", "report.html"), "utf8");
    expect(page).toContain("pivot_root: Invalid argument &lt;&amp;&gt;");
    expect(page).toContain("console of beta");
    const index = await readFile(join(out, "index.html"), "utf8");
    expect(XMLValidator.validate(index)).toBe(true);
    expect(index.match(/<tr class="run /g)).toHaveLength(3);
    expect(index).toContain('<a href="failures/beta-20260101T000000-bbbbbb/report.html">beta</a>');
    // Durations of every shard, for balancing the next run.
    expect((await readDurations(join(out, "durations.json"))).scenarios).toMatchObject({ alpha: { durationMs: 42_000 }, beta: { durationMs: 17_000 }, gamma: { durationMs: 42_000 } });

    // Merging again into the same output does not read its own output.
    const again = await mergeReports([s1, join(tmp.path, "shard-2"), out], out);
    expect(again.total).toBe(3);
  });

  it("bad input: a missing directory, no reports, or a file that is not a report: exit 2, writes nothing", async () => {
    const out = join(tmp.path, "merged-bad");
    const missing = await vmlab(["report", "merge", join(tmp.path, "no-such-dir"), "--out", out]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain("does not exist");
    const empty = join(tmp.path, "empty");
    await mkdir(empty);
    const none = await vmlab(["report", "merge", empty, "--out", out]);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain("no report.json");
    const junk = join(tmp.path, "junk", "run");
    await mkdir(junk, { recursive: true });
    await writeFile(join(junk, "report.json"), JSON.stringify({ hello: 1 }));
    const bad = await vmlab(["report", "merge", join(tmp.path, "junk"), "--out", out]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain("is not a vmlab report");
    expect(existsSync(out)).toBe(false);
    expect((await vmlab(["report", "frobnicate"])).exitCode).toBe(2);
  });
});
