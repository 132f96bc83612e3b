/**
 * vmlab benchmark: medians over several runs, taken side by side in one
 * invocation, printed as a table (or one JSON object with --json).
 *
 *   npm run bench                     # 5 runs of each figure
 *   npm run bench -- --runs 7 --json
 *   npm run bench -- --scenario-runs 1 # fewer full root-to-lvm runs (they take minutes each under TCG)
 *
 * Figures:
 *   coldBootMs          power-on → SeaBIOS → GRUB → kernel → initramfs → systemd → first SSH command
 *   warmStartMs         resume of the saved running state → first SSH command
 *   diskCloneMs         per-run qcow2 overlay over the 8 GiB base image
 *   imageBuildCachedMs  `ensureImage` when the recipe is unchanged (the cold build time is the image's recorded buildMs)
 *   scenarioRootToLvmMs the whole root-to-lvm scenario
 *   labOverheadRatio    lab cold boot / bare qemu-system-x86_64 doing the same boot
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

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    "scenario-runs": { type: "string" },
    json: { type: "boolean" },
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

const s = { cold: [] as number[], bare: [] as number[], warm: [] as number[], clone: [] as number[], cached: [] as number[], scenario: [] as number[] };
// Side by side: each round takes one sample of every figure, so drift on the host hits all alike.
for (let i = 0; i < runs; i++) {
  note(`round ${i + 1}/${runs}`);
  s.clone.push(await clone(i));
  s.cached.push(await cachedBuild());
  s.warm.push(await labWarm(i));
  s.cold.push(await labCold(i));
  s.bare.push(await bareCold(i));
}
const scenario = await loadScenario("root-to-lvm");
for (let i = 0; i < scenarioRuns; i++) {
  note(`root-to-lvm ${i + 1}/${scenarioRuns}`);
  const t = Date.now();
  const r = await runScenario(scenario, { reportDir: join(tmp.path, "reports") });
  if (r.verdict !== "pass") throw new Error(`root-to-lvm failed during the benchmark: ${r.error?.message}`);
  s.scenario.push(Date.now() - t);
}
await tmp.cleanup();

const result = {
  coldBootMs: median(s.cold),
  warmStartMs: median(s.warm),
  diskCloneMs: median(s.clone),
  imageBuildCachedMs: median(s.cached),
  scenarioRootToLvmMs: scenarioRuns > 0 ? median(s.scenario) : null,
  labOverheadRatio: median(s.cold) / median(s.bare),
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
  ];
  process.stdout.write("median over runs\n");
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(34)} ${v}\n`);
}

