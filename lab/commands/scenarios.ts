/** Scenarios: `vmlab list`, `run`, `sweep` and `faults`, with the progress display and the run summary. */
import { join, resolve } from "node:path";
import { availableParallelism, freemem } from "node:os";
import ora, { type Ora } from "ora";
import { UsageError } from "../../src/errors.ts";
import { chooseAccel } from "../../src/host/kvm.ts";
import { requireTool } from "../../src/host/tools.ts";
import { ensureImage, imagesDir } from "../../src/image/build.ts";
import { loadRecipe } from "../../src/image/recipes.ts";
import { parseSize } from "../../src/disk/size.ts";
import { faultByName, FAULTS } from "../../src/faults/index.ts";
import type { InjectSpec } from "../../src/faults/types.ts";
import { reportHead } from "../../src/scenario/report.ts";
import { loadScenario, scenarioFiles, scenarioNames } from "../../src/scenario/registry.ts";
import { describeDirs, findNamed, listNamed } from "../../src/project.ts";
import { runMany } from "../../src/suite/variants.ts";
import type { RunEvent, Scenario, ScenarioReport, StepRecord } from "../../src/scenario/types.ts";
import { defaultDurationsPath, durationMap, readDurations, recordDurations } from "../../src/suite/durations.ts";
import { filterByTags, parseShard, shardOf, type ShardSpec } from "../../src/suite/select.ts";
import { readPlan } from "../../src/suite/plans.ts";
import { defaultBoundaries, parseBoundaries, planSteps, sweep, sweepTable } from "../../src/suite/sweep.ts";
import { expectationTable, TABLE_BEGIN, TABLE_END } from "../../src/verdict/table.ts";
import { DETACH_KEY } from "../../src/vm/console.ts";
import { out, table } from "../output.ts";
import { describeCleanup, sweepDeadBuilds, sweepOrphans } from "../../src/vm/orphans.ts";
import { treesDir } from "../../src/image/tree.ts";

/** Before machines start: end what runs of dead vmlab processes left behind, and say so in one line. */
export async function cleanOrphans(): Promise<void> {
  const line = describeCleanup(await sweepOrphans());
  if (line) process.stderr.write(`vmlab: ${line}\n`);
  const builds = await sweepDeadBuilds([treesDir(), imagesDir()]);
  if (builds.length) process.stderr.write(`vmlab: removed ${builds.length} build director${builds.length === 1 ? "y" : "ies"} of image builds whose process died: ${builds.join(", ")}\n`);
}

/** Selection options shared by `run` and `list`. */
export interface SelectOptions {
  tag?: string[];
  excludeTag?: string[];
  shard?: string;
  durations?: string;
}

/** Fault options shared by `run` and `sweep`. */
export interface FaultOptions {
  fault?: string;
  at?: string;
  after?: string;
  afterWritten?: string;
  rescue?: boolean;
  disk?: string;
  device?: string;
}

/**
 * The scenarios a command works on: the named ones (or all), filtered by tag,
 * then this shard's share. Everything is checked before anything starts.
 */
async function selectScenarios(names: string[], v: SelectOptions): Promise<{ scenarios: Scenario[]; shard?: ShardSpec; selected: number }> {
  const shard = v.shard === undefined ? undefined : parseShard(v.shard);
  const loaded: Scenario[] = [];
  for (const n of names) loaded.push(await loadScenario(n));
  let scenarios = filterByTags(loaded, { tags: v.tag, excludeTags: v.excludeTag });
  const selected = scenarios.length;
  if (shard) {
    const durations = durationMap(await readDurations(v.durations ?? defaultDurationsPath(), (m) => process.stderr.write(`vmlab: ${m}\n`)));
    const mine = new Set(shardOf(scenarios.map((s) => s.name), shard, durations));
    scenarios = scenarios.filter((s) => mine.delete(s.name));
  }
  return { scenarios, shard, selected };
}

export async function cmdList(o: SelectOptions & { names?: boolean; json?: boolean; markdown?: boolean }): Promise<number> {
  const files = await scenarioFiles();
  const origin = new Map(files.map((f) => [f.name, f.origin]));
  const { scenarios } = await selectScenarios(files.map((f) => f.name), o);
  // Where each comes from: the project's own scenarios/ (which wins a shared name) or vmlab's built-in ones.
  const from = (s: Scenario) => (origin.get(s.name) === "project" ? "project" : "built-in");
  if (o.markdown) {
    out(TABLE_BEGIN);
    out(expectationTable(scenarios));
    out(TABLE_END);
  } else if (o.json) {
    out(JSON.stringify(scenarios.map((s) => ({ name: s.name, description: s.description, kind: s.kind ?? "rehearsal", image: s.image, tags: s.tags ?? [], expect: s.expect, ...(s.variantOf ? { variantOf: s.variantOf } : {}), origin: from(s) })), null, 2));
  } else if (o.names || o.shard !== undefined) {
    for (const s of scenarios) out(s.name);
  } else {
    // In a project with scenarios of its own, a column says which are the project's and which are built in.
    const mixed = files.some((f) => f.origin === "project");
    table(scenarios.map((s) => [s.name, ...(mixed ? [from(s)] : []), (s.tags ?? []).join(","), s.description]));
  }
  return 0;
}

/** What explains a failed step on the terminal: the command, its exit code, the last lines of its output. */
function stepFailureLines(st: StepRecord): string[] {
  const f = st.failure;
  if (!f) return [];
  const lines: string[] = [];
  if (f.command) lines.push(`$ ${f.command.split("\n")[0]}${f.command.includes("\n") ? " ..." : ""}`);
  if (f.exitCode !== undefined) lines.push(`exit code ${f.exitCode}`);
  for (const [k, v] of [["stdout", f.stdout], ["stderr", f.stderr]] as const) for (const l of (v ?? "").split("\n").filter(Boolean).slice(-8)) lines.push(`${k}: ${l}`);
  if (f.note) lines.push(f.note);
  return lines;
}

/** The progress display: spinners for one run on a terminal; plain lines for CI logs and parallel runs. */
function renderer(parallel = false): (e: RunEvent) => void {
  const interactive = Boolean(process.stderr.isTTY) && !process.env.CI && !parallel;
  let spinner: Ora | undefined;
  return (e) => {
    switch (e.type) {
      case "step-start":
        spinner = ora({ text: `${e.scenario}: ${e.step}`, isEnabled: interactive }).start();
        if (!interactive) process.stderr.write(`… ${e.scenario}: ${e.step}\n`);
        break;
      case "step-end": {
        const t = `${e.scenario}: ${e.step.name} (${(e.step.durationMs / 1000).toFixed(1)} s)`;
        if (!spinner) break;
        if (e.step.status === "passed") spinner.succeed(t);
        else {
          spinner.fail(`${t}: ${e.step.error?.split("\n")[0]}`);
          for (const l of stepFailureLines(e.step)) process.stderr.write(`    ${l}\n`);
        }
        break;
      }
      case "log":
        if (spinner && interactive) spinner.text = `${e.scenario}: ${e.message}`;
        else process.stderr.write(`    ${e.message}\n`);
        break;
      case "boot":
        process.stderr.write(`    boot via ${e.boot.via}: ${e.boot.outcome}${e.boot.detail ? ` (${e.boot.detail})` : ""} after ${(e.boot.durationMs / 1000).toFixed(1)} s\n`);
        break;
    }
  };
}

function summarize(r: ScenarioReport): void {
  out("");
  out(`${r.scenario}: ${r.verdict.toUpperCase()} in ${(r.durationMs / 1000).toFixed(1)} s`);
  for (const l of reportHead(r)) out(`  ${l}`);
  if (r.forkedFrom) out(`  forked from ${r.forkedFrom.scenario}'s checkpoint before step ${r.forkedFrom.beforeStep.index} (${r.forkedFrom.beforeStep.name}), ${r.forkedFrom.replayedCalls} calls replayed: ${r.forkedFrom.runDir}`);
  for (const c of r.checkpoints ?? []) out(`  checkpoint before step ${c.beforeStep.index} (${c.beforeStep.name}) for forks; the guest paused ${(c.pausedMs / 1000).toFixed(1)} s`);
  if (r.stoppedBefore) out(`  stopped before step ${r.stoppedBefore.index}: ${r.stoppedBefore.step}`);
  if (r.error) {
    out(`  failed step: ${r.error.step ?? "(setup)"}`);
    out(`  error: ${r.error.message}`);
    if (r.error.where) out(`  where: ${r.error.where}`);
    if (r.error.output) out(r.error.output.split("\n").map((l) => `    ${l}`).join("\n"));
    if (r.error.hint) out(`  try: ${r.error.hint}`);
    if (r.error.consoleTail) {
      out("  console tail:");
      out(r.error.consoleTail.split("\n").map((l) => `    | ${l}`).join("\n"));
    }
  }
  out(`  report: ${r.runDir}/report.json (and report.html)`);
}

function printKept(r: ScenarioReport): void {
  for (const k of r.kept ?? []) {
    out(`  kept: ${k.id} (QEMU pid ${k.pid}, SSH on 127.0.0.1:${k.sshPort}); the machine goes on running`);
    out(`    vmlab ssh ${k.id}        a root shell on the guest (lab key)`);
    out(`    vmlab console ${k.id}    its serial console (root / vmlab); ${DETACH_KEY} detaches`);
    out(`    vmlab stop ${k.id}       end it and remove its disks`);
  }
}

/** Default parallel runs: a TCG guest keeps two cores busy and wants about 1.5 GiB of host memory. */
export function defaultJobs(cores = availableParallelism(), memBytes = freemem()): number {
  return Math.max(1, Math.min(Math.floor(cores / 2), Math.floor(memBytes / (1.5 * 2 ** 30))));
}

function jobsOf(v: string | undefined): number {
  const jobs = v === undefined ? defaultJobs() : Number(v);
  if (!/^\d+$/.test(v ?? "1") || !Number.isInteger(jobs) || jobs < 1) throw new UsageError(`bad --jobs "${v}": use a whole number of 1 or more`);
  return jobs;
}

/** `--after S`: seconds into the step, a number >= 0. */
function afterMs(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !Number.isFinite(n)) throw new UsageError(`bad --after "${v}": use seconds, like 4 or 2.5`);
  return Math.round(n * 1000);
}

/**
 * When in step K the fault goes in: `--after S` seconds into it, or
 * `--after-written SIZE` once the guest has written that much to its disks
 * since it started (the same point of a copy on any host). Not both.
 */
function during(v: FaultOptions): Pick<InjectSpec, "afterMs" | "afterWrittenBytes"> {
  if (v.after !== undefined && v.afterWritten !== undefined) {
    throw new UsageError("--after and --after-written both say when the fault goes in: give one", { hint: "--after-written 16M cuts at the same point of a copy however fast the host is" });
  }
  return { afterMs: afterMs(v.after), afterWrittenBytes: v.afterWritten === undefined ? undefined : parseSize(v.afterWritten, "--after-written") };
}

/** Check --fault and a one-boundary --at against the scenario's steps (exit 2 before anything runs). */
async function injectSpec(s: Scenario, v: FaultOptions, at: string): Promise<InjectSpec> {
  const fault = faultByName(v.fault!);
  const plan = await planSteps(s);
  const list = parseBoundaries(at, plan.steps.length, { complete: plan.complete, hint: `\`vmlab sweep ${s.name} --fault ${fault} --plan\` lists the steps` });
  if (list.length !== 1) throw new UsageError(`--at takes one step for vmlab run, not "${at}"`, { hint: `\`vmlab sweep ${s.name} --fault ${fault} --at ${at}\` runs several` });
  if (v.disk?.includes(",")) throw new UsageError(`--disk takes one disk for vmlab run, not "${v.disk}"`, { hint: `\`vmlab sweep ${s.name} --fault pulled-disk --disk ${v.disk}\` pulls each in turn` });
  return { fault, at: list[0]!, ...during(v), rescue: v.rescue, disk: v.disk, device: v.device };
}

/** The command-line names of the fault options given without --fault. */
const FAULT_ONLY: [keyof FaultOptions, string][] = [
  ["at", "--at"],
  ["after", "--after"],
  ["afterWritten", "--after-written"],
  ["rescue", "--rescue"],
  ["disk", "--disk"],
  ["device", "--device"],
];

export async function cmdFaults(): Promise<number> {
  table(Object.entries(FAULTS).map(([k, v]) => [k, v]));
  return 0;
}

export interface RunOptions extends SelectOptions, FaultOptions {
  /** Rehearse on a machine built from this layout.json instead of each runbook's image. */
  layout?: string;
  reportDir?: string;
  jobs?: string;
  all?: boolean;
  keep?: string | boolean;
  stopBefore?: string;
}

export async function cmdRun(names: string[], o: RunOptions): Promise<number> {
  const byTag = Boolean(o.tag?.length);
  if (o.all && names.length) throw new UsageError("vmlab run takes scenario names or --all, not both", { hint: "use --tag or --exclude-tag to narrow --all" });
  if (o.all || (byTag && names.length === 0)) names = await scenarioNames();
  if (names.length === 0) throw new UsageError("vmlab run needs a scenario name or file, --all, or --tag", { hint: "`vmlab list` shows the scenarios" });
  const jobs = jobsOf(o.jobs);
  // Bare --keep means always.
  const keep = o.keep === true ? "always" : o.keep;
  if (keep !== undefined && keep !== "always" && keep !== "on-failure") {
    throw new UsageError(`bad --keep "${keep}": use --keep (always), --keep=always or --keep=on-failure`);
  }
  // Resolve every scenario and check the host before anything starts.
  const { scenarios, shard, selected } = await selectScenarios(names, o);
  if (o.layout !== undefined) {
    const image = `layout:${resolve(o.layout)}`;
    await loadRecipe(image); // checks the layout: exit 2 naming the file
    for (const s of scenarios) (s as { image: string }).image = image;
  }
  // Every fault option needs --fault: none of them is ever ignored.
  const faultOnly = FAULT_ONLY.filter(([k]) => o[k] !== undefined).map(([, flag]) => flag);
  if (o.fault === undefined && faultOnly.length) {
    throw new UsageError(`${faultOnly.join(", ")} ${faultOnly.length > 1 ? "need" : "needs"} --fault NAME --at K`, { hint: "`vmlab faults` lists the faults; `vmlab sweep <scenario> --fault NAME --plan` numbers the steps" });
  }
  let inject: InjectSpec | undefined;
  if (o.fault !== undefined) {
    if (o.at === undefined) throw new UsageError("--fault and --at go together: --fault NAME --at K", { hint: "`vmlab faults` lists the faults; `vmlab sweep <scenario> --fault NAME --plan` numbers the steps" });
    if (scenarios.length !== 1) throw new UsageError("--fault needs exactly one scenario");
    inject = await injectSpec(scenarios[0]!, o, o.at);
  }
  let stopBefore: number | undefined;
  if (o.stopBefore !== undefined) {
    if (!/^\d+$/.test(o.stopBefore) || Number(o.stopBefore) < 1) throw new UsageError(`bad --stop-before "${o.stopBefore}": use a step number of 1 or more`, { hint: "`vmlab sweep <scenario> --fault power-cut --plan` numbers the steps" });
    if (scenarios.length !== 1) throw new UsageError("--stop-before needs exactly one scenario");
    if (o.fault !== undefined) throw new UsageError("--stop-before and --fault do not go together", { hint: "stop before the step, then inject the fault by hand in the kept machine" });
    if (keep === "on-failure") throw new UsageError("--stop-before keeps the machine; --keep=on-failure contradicts it");
    stopBefore = Number(o.stopBefore);
  }
  if (scenarios.length === 0) {
    // Only a shard can come out empty (more shards than scenarios): nothing to do is not a failure.
    out(`shard ${shard?.index}/${shard?.count}: none of the ${selected} selected scenarios falls to this shard; nothing to run`);
    return 0;
  }
  if (shard) process.stderr.write(`shard ${shard.index}/${shard.count}: ${scenarios.map((s) => s.name).join(", ")} (of ${selected} selected)\n`);
  requireTool("qemu-system-x86_64");
  requireTool("qemu-img");
  requireTool("setpriv");
  await cleanOrphans();
  // The accelerator is chosen before anything is written: a forced KVM that does not work is exit 2, nothing made.
  const accel = await chooseAccel();
  // Build each image once before runs start in parallel.
  for (const image of new Set(scenarios.map((s) => s.image))) {
    await ensureImage(await loadRecipe(image), { progress: (m) => process.stderr.write(`image ${image}: ${m}\n`) });
  }
  const onEvent = renderer(jobs > 1);
  // A twin declared as a variant of a good path in this run forks from the good path's checkpoint.
  const reports = await runMany(scenarios, {
    jobs,
    reportDir: o.reportDir,
    onEvent,
    keep,
    inject,
    accel,
    stopBefore,
    onNote: (m) => process.stderr.write(`vmlab: ${m}\n`),
    onReport: (r) => {
      summarize(r);
      if (r.probe) for (const l of sweepTable({ scenario: r.scenario, fault: r.probe.fault as InjectSpec["fault"], rows: [{ ...r.probe, verdict: r.verdict, error: r.error?.message, report: "" }], wallMs: r.durationMs, dir: r.runDir })) out(l);
      printKept(r);
    },
  });
  // The durations balance later shards; failing to record them does not fail the run.
  const durationsPath = o.durations ?? defaultDurationsPath();
  await recordDurations(durationsPath, reports).catch((err) => process.stderr.write(`vmlab: could not record durations in ${durationsPath}: ${(err as Error).message}\n`));
  const failed = reports.filter((r) => r.verdict !== "pass");
  if (reports.length > 1) out(`\n${reports.length - failed.length} passed, ${failed.length} failed${failed.length ? `: ${failed.map((r) => r.scenario).join(", ")}` : ""}`);
  return failed.length ? 1 : 0;
}

/**
 * `vmlab rehearse`: runbooks by path, or by name from runbooks/, run as
 * scenarios (the same reports, forks, --keep and --stop-before).
 */
export async function cmdRehearse(names: string[], o: Pick<RunOptions, "jobs" | "reportDir" | "keep" | "stopBefore" | "layout">): Promise<number> {
  const files: string[] = [];
  for (const n of names) files.push(await runbookPath(n));
  return cmdRun(files, o);
}

/** A runbook by path, or by name: runbooks/NAME.md or NAME.sh in the project, else vmlab's own. */
export async function runbookPath(nameOrFile: string, cwd = process.cwd()): Promise<string> {
  if (nameOrFile.includes("/") || /\.[A-Za-z]+$/.test(nameOrFile)) return resolve(cwd, nameOrFile);
  const found = findNamed("runbooks", nameOrFile, [".md", ".sh"], { cwd });
  if (found) return found.file;
  const known = listNamed("runbooks", [".md", ".sh"], { cwd, skip: ["README.md"] }).map((f) => f.name);
  throw new UsageError(`no runbook "${nameOrFile}" in ${describeDirs("runbooks", cwd)}`, { hint: `give the path of a Markdown or shell runbook${known.length ? `, or one of: ${known.join(", ")}` : ""}` });
}

export interface SweepOptions extends FaultOptions {
  jobs?: string;
  reportDir?: string;
  plan?: boolean;
}

export async function cmdSweep(name: string, o: SweepOptions): Promise<number> {
  if (o.fault === undefined) throw new UsageError("vmlab sweep needs --fault NAME", { hint: `the faults are: ${Object.keys(FAULTS).join(", ")}` });
  const fault = faultByName(o.fault);
  const s = await loadScenario(name);
  // The steps from a stand-in run; for a scenario that reads the machine between steps, from its last real run.
  const standIn = await planSteps(s);
  const recorded = standIn.complete ? undefined : await readPlan(s.name);
  const fromRun = recorded && standIn.steps.every((n, i) => recorded.steps[i] === n) ? recorded : undefined;
  const plan = fromRun ? { steps: fromRun.steps, complete: true } : standIn;
  const planHint = `\`vmlab sweep ${s.name} --fault ${fault} --plan\` lists the steps`;
  const boundaries: number[] | "default" =
    o.at !== undefined
      ? parseBoundaries(o.at, plan.steps.length, { complete: plan.complete, hint: planHint })
      : plan.complete
        ? defaultBoundaries(plan.steps)
        : "default";
  if (plan.complete && plan.steps.length === 0) throw new UsageError(`${s.name} has no steps a fault can go between`);
  const jobs = jobsOf(o.jobs);
  const when = during(o);
  // --disk sda,sdb: a row per boundary and disk, from one recording run.
  const disks = (o.disk ?? "").split(",").filter(Boolean);
  if (disks.length > 1 && fault !== "pulled-disk") throw new UsageError(`--disk ${o.disk}: several disks go with --fault pulled-disk`);
  if (disks.some((d) => !/^sd[a-z]$/.test(d)) || new Set(disks).size !== disks.length) throw new UsageError(`--disk ${o.disk}: name the lab's disks, like sda or sda,sdb`);
  if (o.plan) {
    if (plan.steps.length === 0) {
      throw new UsageError(`${s.name} looks at the machine before its first step, so only a run can number its steps, and none is recorded on this machine`, {
        hint: `\`vmlab run ${s.name}\` (or a sweep of it) records them; then --plan lists them`,
      });
    }
    const on = new Set(boundaries === "default" ? [] : boundaries);
    plan.steps.forEach((n, i) => out(`${on.has(i + 1) ? "*" : " "} ${String(i + 1).padStart(2)}  ${n}`));
    out(`${on.has(plan.steps.length + 1) ? "*" : " "} ${String(plan.steps.length + 1).padStart(2)}  (after the last step)`);
    if (fromRun) out(`(steps as the run of ${fromRun.recordedAt} took them: ${fromRun.runDir})`);
    if (!plan.complete) out("(the list may go on: the scenario looks at the machine between steps, so its later steps show only in a run)");
    out(`* = swept by default with --fault ${fault}`);
    return 0;
  }
  requireTool("qemu-system-x86_64");
  requireTool("qemu-img");
  requireTool("setpriv");
  await cleanOrphans();
  const accel = await chooseAccel();
  await ensureImage(await loadRecipe(s.image), { progress: (m) => process.stderr.write(`image ${s.image}: ${m}\n`) });
  if (o.rescue) await ensureImage(await loadRecipe("rescue"), { progress: (m) => process.stderr.write(`image rescue: ${m}\n`) });
  process.stderr.write(
    `sweep ${s.name} --fault ${fault}: ${boundaries === "default" ? "a row before each step up to the first reboot" : `${boundaries.length} rows (steps ${boundaries.join(", ")})`}, forked from one run of the procedure; ${jobs} runs at a time\n`,
  );
  const result = await sweep(s, {
    fault,
    boundaries,
    ...when,
    rescue: o.rescue,
    jobs,
    reportDir: o.reportDir,
    ...(disks.length > 1 ? { disks } : { disk: o.disk }),
    device: o.device,
    accel,
    onEvent: renderer(true),
    onRow: (row) => process.stderr.write(`sweep: step ${row.at} done: ${row.boot.outcome}, root ${row.root.which}, data ${row.data.state}\n`),
  });
  out("");
  for (const l of sweepTable(result)) out(l);
  out(`table: ${join(result.dir, "sweep.txt")} (and sweep.json, sweep.html)`);
  return result.rows.some((r) => r.verdict !== "pass") ? 1 : 0;
}
