/**
 * vmlab benchmark: medians over several runs, taken side by side in one
 * invocation, printed as a table (or one JSON object with --json).
 *
 *   npm run bench                     # 5 runs of each figure
 *   npm run bench -- --runs 7 --json
 *   npm run bench -- --scenario-runs 1 # fewer full root-to-lvm runs (they take minutes each under TCG)
 *   npm run bench -- --sweep-baseline  # also the sweep the old way, every row doing its own prefix (about 25 min under TCG)
 *
 * Figures:
 *   coldBootMs          power-on → SeaBIOS → GRUB → kernel → initramfs → systemd → first SSH command
 *   warmStartMs         resume of the saved running state → first SSH command
 *   diskCloneMs         per-run qcow2 overlay over the 8 GiB base image
 *   imageBuildCachedMs  `ensureImage` when the recipe is unchanged (the cold build time is the image's recorded buildMs)
 *   scenarioRootToLvmMs the whole root-to-lvm scenario
 *   labOverheadRatio    lab cold boot / bare qemu-system-x86_64 doing the same boot
 *   checkpointMs        checkpoint of a running guest (disks frozen, state written, guest running again)
 *   forkToSshMs         fork of that checkpoint → first SSH command
 *   twinExtraRatio      (root-to-lvm and its twin in one `run --jobs 2`, the twin forked) − root-to-lvm alone, over root-to-lvm alone
 *   sweepMs, sweepRows  `vmlab sweep root-to-lvm --fault power-cut`, every default row, forked from one run of the procedure
 *   imageBuildColdMs    the three images built together from nothing (recorded in their meta.json when they were built)
 *   ciSuiteMs           the last `.ci/run`, by its own timer (it writes ci-suite.json in the cache)
 */
import { execa } from "execa";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { dir } from "tmp-promise";
import { createOverlay } from "../src/disk/qemu-img.ts";
import { chooseAccel } from "../src/host/kvm.ts";
import { ensureImage } from "../src/image/build.ts";
import { labKey } from "../src/image/keys.ts";
import { loadRecipe, loadScenario } from "../src/scenario/registry.ts";
import { runScenario } from "../src/scenario/runner.ts";
import { buildQemuArgs } from "../src/vm/qemu-args.ts";
import { freePort, Machine } from "../src/vm/machine.ts";
import { registerPid, unregisterPid } from "../src/vm/reaper.ts";
import { sshRun } from "../src/vm/ssh.ts";
import { DEFAULT_PROFILE, ensureWarmState } from "../src/vm/warm.ts";
import { median } from "./stats.ts";
import { existsSync, readFileSync } from "node:fs";
import { cacheDir } from "../src/paths.ts";
import { fork, takeCheckpoint } from "../src/vm/checkpoint.ts";
import { defaultBoundaries, planSteps, sweep } from "../src/suite/sweep.ts";
import { runMany } from "../src/suite/variants.ts";
import { listImages } from "../src/image/build.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    "scenario-runs": { type: "string" },
    json: { type: "boolean" },
    "sweep-baseline": { type: "boolean" },
  },
});
const runs = Number(values.runs);
const scenarioRuns = Number(values["scenario-runs"] ?? values.runs);

const note = (m: string) => process.stderr.write(`bench: ${m}\n`);

const recipe = await loadRecipe("debian12-bios");
const image = await ensureImage(recipe, { progress: (m) => note(`image: ${m}`) });
const accel = await chooseAccel();
const { privateKey } = await labKey();
const warm = await ensureWarmState(image, DEFAULT_PROFILE, accel, privateKey, note);
const tmp = await dir({ unsafeCleanup: true });

async function fresh(name: string, backing: string): Promise<{ runDir: string; disk: string }> {
  const runDir = join(tmp.path, name);
  await mkdir(runDir, { recursive: true });
  const disk = join(runDir, "sda.qcow2");
  await createOverlay(disk, backing, { backingFormat: "qcow2" });
  return { runDir, disk };
}

async function labCold(i: number): Promise<number> {
  const { runDir, disk } = await fresh(`cold-${i}`, image.disk);
  const m = new Machine({ name: "vm", runDir, disks: [{ path: disk, format: "qcow2", id: "sda" }], accel, sshKey: privateKey });
  const t = Date.now();
  try {
    // The boot ends with the first SSH command that succeeds (`true`), as the bare loop below does.
    const b = await m.boot();
    if (b.outcome !== "ssh") throw new Error(`cold boot ended as ${b.outcome}`);
    return Date.now() - t;
  } finally {
    await m.kill();
    await rm(runDir, { recursive: true, force: true });
  }
}

async function labWarm(i: number): Promise<number> {
  const { runDir, disk } = await fresh(`warm-${i}`, warm.disk);
  const m = new Machine({ name: "vm", runDir, disks: [{ path: disk, format: "qcow2", id: "sda" }], accel, sshKey: privateKey, incomingState: warm.state });
  const t = Date.now();
  try {
    const b = await m.resume();
    if (b.outcome !== "ssh") throw new Error(`warm start ended as ${b.outcome}`);
    return Date.now() - t;
  } finally {
    await m.kill();
    await rm(runDir, { recursive: true, force: true });
  }
}

/** The same boot with a hand-written command line: QEMU started directly, SSH polled the same way. */
async function bareCold(i: number): Promise<number> {
  const { runDir, disk } = await fresh(`bare-${i}`, image.disk);
  const port = await freePort();
  const args = buildQemuArgs({
    name: "bare",
    accel,
    memoryMiB: 1024,
    smp: 2,
    disks: [{ path: disk, format: "qcow2", id: "sda" }],
    serialSocket: join(runDir, "s.sock"),
    serialLog: join(runDir, "console.log"),
    qmpSocket: join(runDir, "q.sock"),
    sshPort: port,
  });
  const t = Date.now();
  const p = execa("qemu-system-x86_64", args, { reject: false, stdin: "ignore" });
  registerPid(p.pid!, "bench bare qemu");
  try {
    for (;;) {
      const r = await sshRun({ host: "127.0.0.1", port, user: "root", keyPath: privateKey }, "true", { timeoutMs: 15_000, connectTimeoutS: 5 });
      if (r.exitCode === 0) return Date.now() - t;
      if (Date.now() - t > 300_000) throw new Error("bare boot did not reach SSH");
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    p.kill("SIGKILL");
    await p;
    unregisterPid(p.pid!);
    await rm(runDir, { recursive: true, force: true });
  }
}

/** A warm guest checkpointed while it runs, then a fork of the checkpoint up to its first SSH command. */
async function checkpointAndFork(i: number): Promise<{ checkpoint: number; fork: number }> {
  const { runDir, disk } = await fresh(`cp-${i}`, warm.disk);
  const m = new Machine({ name: "vm", runDir, disks: [{ path: disk, format: "qcow2", id: "sda" }], accel, sshKey: privateKey, incomingState: warm.state });
  let f: Machine | undefined;
  try {
    if ((await m.resume()).outcome !== "ssh") throw new Error("warm start failed");
    let t = Date.now();
    const cp = await takeCheckpoint(m, join(runDir, "cp"), "bench");
    const checkpoint = Date.now() - t;
    t = Date.now();
    const forked = await fork(cp, { name: "fork", runDir: join(runDir, "fork"), accel, sshKey: privateKey });
    f = forked.vm;
    if (forked.boot.outcome !== "ssh") throw new Error("fork did not answer SSH");
    return { checkpoint, fork: Date.now() - t };
  } finally {
    await f?.kill();
    await m.kill();
    await rm(runDir, { recursive: true, force: true });
  }
}

async function clone(i: number): Promise<number> {
  const path = join(tmp.path, `clone-${i}.qcow2`);
  const t = performance.now();
  await createOverlay(path, image.disk, { backingFormat: "qcow2" });
  const ms = performance.now() - t;
  await rm(path);
  return ms;
}

async function cachedBuild(): Promise<number> {
  const t = performance.now();
  await ensureImage(recipe);
  return performance.now() - t;
}

const s = { cold: [] as number[], bare: [] as number[], warm: [] as number[], clone: [] as number[], cached: [] as number[], scenario: [] as number[], checkpoint: [] as number[], fork: [] as number[], pair: [] as number[] };
// Side by side: each round takes one sample of every figure, so drift on the host hits all alike.
for (let i = 0; i < runs; i++) {
  note(`round ${i + 1}/${runs}`);
  s.clone.push(await clone(i));
  s.cached.push(await cachedBuild());
  s.warm.push(await labWarm(i));
  s.cold.push(await labCold(i));
  s.bare.push(await bareCold(i));
  const cf = await checkpointAndFork(i);
  s.checkpoint.push(cf.checkpoint);
  s.fork.push(cf.fork);
  note(`round ${i + 1}: cold ${s.cold.at(-1)} ms, bare ${s.bare.at(-1)} ms, warm ${s.warm.at(-1)} ms, checkpoint ${cf.checkpoint} ms, fork to ssh ${cf.fork} ms`);
}
const scenario = await loadScenario("root-to-lvm");
for (let i = 0; i < scenarioRuns; i++) {
  note(`root-to-lvm ${i + 1}/${scenarioRuns}`);
  const t = Date.now();
  const r = await runScenario(scenario, { reportDir: join(tmp.path, "reports") });
  if (r.verdict !== "pass") throw new Error(`root-to-lvm failed during the benchmark: ${r.error?.message}`);
  s.scenario.push(Date.now() - t);
  note(`root-to-lvm alone: ${s.scenario.at(-1)} ms`);
  // The same flagship with its twin beside it, forked from its checkpoint: what the twin adds.
  note(`root-to-lvm and its twin ${i + 1}/${scenarioRuns}`);
  const t2 = Date.now();
  const pair = await runMany([scenario, await loadScenario("root-to-lvm-no-relabel")], { jobs: 2, reportDir: join(tmp.path, "pairs"), accel });
  if (pair.some((r) => r.verdict !== "pass")) throw new Error(`the pair failed during the benchmark: ${pair.map((r) => `${r.scenario} ${r.verdict}`).join(", ")}`);
  s.pair.push(Date.now() - t2);
  note(`root-to-lvm + its forked twin, jobs 2: ${s.pair.at(-1)} ms`);
}

// The sweep: all default rows of root-to-lvm × power-cut, forked from one run; and, if asked, the old way.
const plan = await planSteps(scenario);
const boundaries = defaultBoundaries(plan.steps);
note(`sweep root-to-lvm --fault power-cut: ${boundaries.length} rows`);
const sw = await sweep(scenario, { fault: "power-cut", boundaries, jobs: 2, reportDir: join(tmp.path, "sweep"), accel });
if (sw.rows.some((r) => r.verdict !== "pass")) throw new Error("a sweep row failed during the benchmark");
note(`sweep, ${sw.rows.length} rows forked: ${sw.wallMs} ms: ${sw.rows.map((r) => `${r.at}:${r.root.which}/${r.data.state}`).join(" ")}`);
const sweepTable = sw.rows.map((r) => `${r.at}:${r.root.which}/${r.data.state}`).join(" ");
let sweepBaselineMs: number | null = null;
if (values["sweep-baseline"]) {
  note("sweep, the old way: every row does its own prefix");
  const old = await sweep(scenario, { fault: "power-cut", boundaries, jobs: 2, reportDir: join(tmp.path, "sweep-old"), accel, fork: false });
  sweepBaselineMs = old.wallMs;
}
await tmp.cleanup();

/** The three images' cold build, when they were built together: from the first start to the last finish. */
function coldImageBuild(metas: Awaited<ReturnType<typeof listImages>>): number | null {
  if (new Set(metas.map((m) => m.name)).size < 3) return null;
  const start = Math.min(...metas.map((m) => Date.parse(m.builtAt) - m.buildMs));
  const end = Math.max(...metas.map((m) => Date.parse(m.builtAt)));
  return end - start;
}
// The builds of the images in use: the cache may also hold older ones.
const current = new Set((await Promise.all(["debian12-bios", "debian12-bootdisk", "rescue"].map(async (n) => (await ensureImage(await loadRecipe(n))).hash))));
const metas = (await listImages()).filter((m) => current.has(m.hash));
const ciFile = join(cacheDir(), "ci-suite.json");
const ciSuiteMs = existsSync(ciFile) ? (JSON.parse(readFileSync(ciFile, "utf8")) as { ms: number }).ms : null;

const result = {
  coldBootMs: median(s.cold),
  warmStartMs: median(s.warm),
  diskCloneMs: median(s.clone),
  imageBuildCachedMs: median(s.cached),
  scenarioRootToLvmMs: scenarioRuns > 0 ? median(s.scenario) : null,
  labOverheadRatio: median(s.cold) / median(s.bare),
  checkpointMs: median(s.checkpoint),
  forkToSshMs: median(s.fork),
  twinExtraRatio: scenarioRuns > 0 ? (median(s.pair) - median(s.scenario)) / median(s.scenario) : null,
  sweepMs: sw.wallMs,
  sweepRows: sw.rows.length,
  sweepBaselineMs,
  imageBuildColdMs: coldImageBuild(metas),
  ciSuiteMs,
};
if (values.json) {
  process.stdout.write(JSON.stringify(result) + "\n");
} else {
  const rows: [string, string][] = [
    ["accelerator", `${accel.accel} (${accel.reason})`],
    ["runs (scenario runs)", `${runs} (${scenarioRuns})`],
    ["cold boot to first SSH command", `${(result.coldBootMs / 1000).toFixed(2)} s`],
    ["warm start to first SSH command", `${(result.warmStartMs / 1000).toFixed(2)} s`],
    ["warm / cold", `${(result.warmStartMs / result.coldBootMs).toFixed(3)}`],
    ["per-run disk clone (8 GiB base)", `${result.diskCloneMs.toFixed(1)} ms`],
    ["image build, cold (recorded)", `${(image.meta.buildMs / 1000).toFixed(1)} s`],
    ["image build, cached", `${result.imageBuildCachedMs.toFixed(1)} ms`],
    ["root-to-lvm scenario", result.scenarioRootToLvmMs === null ? "not run" : `${(result.scenarioRootToLvmMs / 1000).toFixed(1)} s`],
    ["bare QEMU cold boot", `${(median(s.bare) / 1000).toFixed(2)} s`],
    ["lab / bare", `${result.labOverheadRatio.toFixed(3)}`],
    ["checkpoint of a running guest", `${(result.checkpointMs / 1000).toFixed(2)} s`],
    ["fork to first SSH command", `${(result.forkToSshMs / 1000).toFixed(2)} s`],
    ["root-to-lvm + twin (forked), jobs 2", scenarioRuns > 0 ? `${(median(s.pair) / 1000).toFixed(1)} s` : "not run"],
    ["twin's extra / root-to-lvm alone", result.twinExtraRatio === null ? "not run" : result.twinExtraRatio.toFixed(3)],
    [`sweep, ${result.sweepRows} rows, forked`, `${(result.sweepMs / 1000).toFixed(1)} s  (${sweepTable})`],
    ["sweep, the old way", sweepBaselineMs === null ? "not run (--sweep-baseline)" : `${(sweepBaselineMs / 1000).toFixed(1)} s, ratio ${(result.sweepMs / sweepBaselineMs).toFixed(3)}`],
    ["image build, cold, all three", result.imageBuildColdMs === null ? "not recorded" : `${(result.imageBuildColdMs / 1000).toFixed(1)} s (recorded)`],
    ["ci suite (.ci/run, last)", ciSuiteMs === null ? "not recorded" : `${(ciSuiteMs / 60000).toFixed(1)} min`],
  ];
  process.stdout.write("median over runs\n");
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(34)} ${v}\n`);
}

