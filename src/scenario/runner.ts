import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { removeSocketLink } from "../vm/socket-dir.ts";
import { VmlabError } from "../errors.ts";
import { chooseAccel, type AccelChoice } from "../host/kvm.ts";
import { defaultReportsDir } from "../paths.ts";
import { keepMachine } from "../vm/kept.ts";
import { Machine, type MachineOptions } from "../vm/machine.ts";
import type { FaultRecord } from "../faults/index.ts";
import { observeAfterFault } from "../faults/inject.ts";
import { FaultInjector, FaultStop } from "../faults/during.ts";
import type { InjectSpec } from "../faults/types.ts";
import { formatSize } from "../disk/size.ts";
import { judge } from "../verdict/judge.ts";
import { DataSet } from "./dataset.ts";
import { observeFinal } from "./final.ts";
import { prepareMachine, startMachine } from "./prepare.ts";
import { junitXml } from "./report.ts";
import { StepRecorder } from "./steps.ts";
import type { ProbeResult, RunEvent, Scenario, ScenarioContext, ScenarioReport } from "./types.ts";

export interface RunOptions {
  /** Parent directory for this run's report directory. */
  reportDir?: string;
  onEvent?: (e: RunEvent) => void;
  /** Leave the machine running after the run, always or only when the scenario failed (see src/vm/kept.ts). */
  keep?: "always" | "on-failure";
  /**
   * Inject a fault before scenario step `inject.at` and observe the machine
   * after it (src/faults/during.ts). The report's verdict is then "pass" when
   * the observation completed, whatever it found: the finding is report.probe.
   */
  inject?: InjectSpec;
  /**
   * The accelerator, chosen before anything is written (`chooseAccel`): a
   * forced one that does not work is bad input, with no run directory made.
   */
  accel?: AccelChoice;
}

function runId(name: string): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  return `${name}-${t}-${randomBytes(3).toString("hex")}`;
}

/**
 * Run one scenario: build or reuse its image, boot a machine on a private
 * overlay, seed the data set, run the steps, observe the final state, judge
 * the verdict against the scenario's declared expectation, and write
 * report.json, junit.xml and the console logs. The QEMU process is ended on
 * every path.
 */
export async function runScenario(s: Scenario, opts: RunOptions = {}): Promise<ScenarioReport> {
  const emit = opts.onEvent ?? (() => undefined);
  // A forced accelerator that does not work fails here, before any directory exists.
  const accel = opts.accel ?? (await chooseAccel());
  const started = Date.now();
  const runDir = join(opts.reportDir ?? defaultReportsDir(), runId(s.name));
  await mkdir(runDir, { recursive: true });
  const report: ScenarioReport = {
    scenario: s.name,
    description: s.description,
    kind: s.kind ?? "rehearsal",
    verdict: "fail",
    // Set at the end, but first in report.json: the verdict's reasons, what was expected and what was observed.
    judgement: undefined,
    expect: s.expect,
    final: undefined,
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    accel: { accel: accel.accel, reason: accel.reason },
    steps: [],
    boots: [],
    facts: {},
    runDir,
    consoleLogs: [],
    machines: [],
    faults: [],
  };
  const machines: Machine[] = [];
  const steps = new StepRecorder(s.name, report.steps, started, emit);
  const { step, log } = steps;
  const onMachine = (name: string) => (e: Parameters<NonNullable<MachineOptions["onEvent"]>>[0]) => {
    if (e.type === "boot") {
      report.boots.push({ ...e.boot, machine: name });
      emit({ type: "boot", scenario: s.name, machine: name, boot: e.boot });
    } else log(e.message);
  };
  // A fault from the command line, or the one the scenario itself is about.
  const spec: InjectSpec | undefined = opts.inject ?? s.fault?.inject;
  let data: DataSet | undefined;

  try {
    const prepared = await prepareMachine(s, { runDir, accel, step, log, onMachineEvent: onMachine("vm") });
    const { image, vm, privateKey } = prepared;
    report.image = { name: image.name, hash: image.hash };
    machines.push(vm);
    report.consoleLogs.push(vm.serialLog);
    await startMachine(prepared, step, log);
    report.machines.push({
      name: vm.opts.name,
      sshPort: vm.sshPort,
      qmpSocket: vm.qmpSocket,
      serialSocket: vm.serialSocket,
      disks: vm.opts.disks.map((d) => d.path),
      backing: prepared.backing,
    });
    data = new DataSet();
    if (s.seedData !== false) await step("seed data set", async () => log(`${Object.keys(await data!.seed(vm)).length} entries`));
    const rootBefore = spec ? (await vm.succeed("findmnt -no SOURCE /")).trim().replace(/\[.*\]$/, "") : "";
    const ctx: ScenarioContext = {
      vm,
      data,
      image,
      runDir,
      step,
      log,
      record: (k, v) => {
        report.facts[k] = v;
      },
      injected: (inj) => {
        const rec: FaultRecord = { ...inj, atMs: Date.now() - started, step: steps.current?.name, observed: [] };
        (report.faults ??= []).push(rec);
        log(`fault injected: ${inj.fault} (${inj.how})`);
        return rec;
      },
      addMachine: (o) => {
        const m = new Machine({ ...o, runDir, accel, sshKey: privateKey, onEvent: onMachine(o.name) });
        machines.push(m);
        report.consoleLogs.push(m.serialLog);
        return m;
      },
    };
    if (!spec) await s.run(ctx);
    else await runWithFault(s, ctx, spec, steps, rootBefore, report, !opts.inject);
    // The runner looks at the final state itself: the verdict must not depend on a scenario remembering to.
    report.final = await step("observe the final state", () => observeFinal(vm, data));
  } catch (err) {
    const e = err as Error & { vmlabStep?: string };
    const v = err instanceof VmlabError ? err : undefined;
    const vm = machines[0];
    const from = vm?.boots.at(-1)?.log.from ?? 0;
    report.error = {
      message: e.message,
      step: e.vmlabStep,
      where: v?.where,
      output: v?.output,
      hint: v?.hint,
      consoleTail: vm ? await vm.consoleTail(30, from) : undefined,
    };
  }
  // A fault from the command line is an observation: the run passes when it completed, whatever it found.
  report.judgement = opts.inject
    ? { verdict: report.error ? "fail" : "pass", expected: [`observe the machine after ${opts.inject.fault} at step ${opts.inject.at}`], observed: [], reasons: report.error ? [report.error.message] : ["the observation completed"] }
    : judge(s.expect, { ...report, kind: report.kind });
  report.verdict = report.judgement.verdict;
  try {
    await finish(report, machines, runDir, opts.keep);
  } finally {
    report.durationMs = Date.now() - started;
    await writeFile(join(runDir, "report.json"), JSON.stringify(report, null, 2) + "\n");
    await writeFile(join(runDir, "junit.xml"), junitXml([report]));
    emit({ type: "done", report });
  }
  return report;
}

/** The scenario's steps with a fault injected at `spec.at`, then the power cycle and the observation (report.probe). */
async function runWithFault(s: Scenario, ctx: ScenarioContext, spec: InjectSpec, steps: StepRecorder, rootBefore: string, report: ScenarioReport, own: boolean): Promise<void> {
  const row: ProbeResult = { fault: spec.fault, at: spec.at, before: "", procedure: "completed", boot: { outcome: "not reached" }, root: { which: "none" }, data: { state: "unknown" } };
  report.probe = row;
  const injector = new FaultInjector(spec, () => ctx.vm, ctx.injected, steps.step);
  steps.wrapper = (name, fn) => injector.wrap(name, fn);
  try {
    await s.run(ctx);
    await injector.atEnd();
  } catch (err) {
    if (err instanceof FaultStop) row.procedure = "stopped";
    else {
      const e = err as Error & { vmlabStep?: string };
      row.procedure = `failed: ${e.vmlabStep ?? "?"}: ${e.message.split("\n")[0]}`;
    }
  } finally {
    steps.wrapper = undefined;
  }
  if (injector.injectedAt === undefined) {
    throw new VmlabError(`step ${spec.at} was never reached: ${s.name} ran ${injector.steps} steps`, {
      hint: `\`vmlab sweep ${s.name} --fault ${spec.fault} --plan\` lists the steps`,
    });
  }
  row.before =
    spec.afterWrittenBytes !== undefined
      ? `${injector.injectedAt} (${formatSize(spec.afterWrittenBytes)} written)`
      : spec.afterMs === undefined
        ? injector.injectedAt
        : `${injector.injectedAt} (${(spec.afterMs / 1000).toFixed(1)} s in)`;
  await observeAfterFault(ctx, spec, rootBefore, row);
  if (own && s.fault?.observe) await ctx.step("look further after the fault", async () => s.fault!.observe!(row, ctx));
}

/** End or keep each machine, and remove the run's disks (a kept machine keeps its own). */
async function finish(report: ScenarioReport, machines: Machine[], runDir: string, keepOpt: RunOptions["keep"]): Promise<void> {
  const keep = keepOpt === "always" || (keepOpt === "on-failure" && report.verdict !== "pass");
  for (const m of machines) {
    if (keep && m.running) (report.kept ??= []).push(await keepMachine(m, report));
    else {
      await m.kill();
      removeSocketLink(runDir, dirname(m.qmpSocket));
    }
  }
  // Overlays hold gigabytes after a migration; the report keeps logs, not disks.
  const keptDisks = new Set(report.kept?.flatMap((k) => k.overlays));
  for (const f of await readdir(runDir)) {
    if ((f.endsWith(".qcow2") || f.endsWith(".raw")) && !keptDisks.has(join(runDir, f))) await rm(join(runDir, f), { force: true });
  }
}
