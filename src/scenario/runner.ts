import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { removeSocketLink } from "../vm/socket-dir.ts";
import { VmlabError } from "../errors.ts";
import { chooseAccel, type AccelChoice } from "../host/kvm.ts";
import { defaultReportsDir } from "../paths.ts";
import { keepMachine } from "../vm/kept.ts";
import { ownRun } from "../vm/orphans.ts";
import { Machine, type MachineOptions } from "../vm/machine.ts";
import { fork, takeCheckpoint } from "../vm/checkpoint.ts";
import { labKey } from "../image/keys.ts";
import type { BuiltImage } from "../image/build.ts";
import { recordPlan } from "../suite/plans.ts";
import { CallLog, recording, replaying, type ForkSource, type ReplayState } from "./share.ts";
import type { FaultRecord } from "../faults/index.ts";
import { observeAfterFault } from "../faults/inject.ts";
import { FaultInjector, FaultStop } from "../faults/during.ts";
import type { InjectSpec } from "../faults/types.ts";
import { formatSize } from "../disk/size.ts";
import { judge } from "../verdict/judge.ts";
import { DataSet, DATASET_FILE } from "./dataset.ts";
import { observeFinal } from "./final.ts";
import { prepareMachine, startMachine } from "./prepare.ts";
import { junitXml } from "./report.ts";
import { writeRunHtml } from "../report/files.ts";
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
  /**
   * Record this run's calls on its machine and checkpoint it before the
   * top-level steps of the scenario that `before` picks (by name and 1-based
   * number), for other runs to fork (src/scenario/share.ts). The checkpoints'
   * files stay after the run; whoever asked removes them once its forks are
   * done (`removeCheckpoint`).
   */
  share?: {
    before(name: string, index: number): boolean;
    onCheckpoint(src: ForkSource): void;
    /** Called once at the end of the run: `missed` says why a wanted checkpoint was not taken. */
    onEnd(missed?: string): void;
    /**
     * Asked after each checkpoint: true when no later one is wanted, and the
     * run stops there (a sweep's recording run has no more to give). The
     * machine is not kept, and the verdict says what was recorded.
     */
    done?(): boolean;
  };
  /** Start from another run's checkpoint instead of booting, replaying that run's prefix. */
  forkFrom?: ForkSource;
  /**
   * Stop at the boundary before top-level step `stopBefore` (1-based, as
   * `vmlab sweep --plan` numbers them) and leave the machine there for a
   * person to take over: the run keeps it whatever `keep` says.
   */
  stopBefore?: number;
}

/** Thrown at the boundary a run was asked to stop before; every later step is refused too. */
class StopBefore extends Error {
  constructor(readonly index: number, readonly step: string) {
    super(`stopped before step ${index} (${step}) as asked`);
  }
}

function runId(name: string): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  return `${name}-${t}-${randomBytes(3).toString("hex")}`;
}

/**
 * Run one scenario: build or reuse its image, boot a machine on a private
 * overlay, seed the data set, run the steps, observe the final state, judge
 * the verdict against the scenario's declared expectation, and write
 * report.json, junit.xml, report.html and the console logs. The QEMU process is ended on
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
  // Only a machine that may be kept outlives this process; every other QEMU dies with it.
  const keepable = opts.keep !== undefined || opts.stopBefore !== undefined;
  // Until the run ends, its directory is registered with this process as owner (src/vm/orphans.ts).
  const owned = await ownRun(runDir);
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

  let vm: Machine;
  let replay: ReplayState | undefined;
  let callLog: CallLog | undefined;
  let shareMissed: string | undefined;
  let backing = "";
  /** Files of checkpoints taken for others: finish() leaves them for whoever forks them. */
  const retained = new Set<string>();
  const src = opts.forkFrom;
  try {
    const { privateKey } = await labKey();
    let image: BuiltImage;
    if (src) {
      // The prefix was done in another run: resume its checkpoint and replay its calls.
      image = src.image;
      report.image = { name: image.name, hash: image.hash, firmware: image.efiVars ? "uefi" : "bios" };
      const forked = await step(`fork: ${src.from.scenario}'s checkpoint before step ${src.beforeStep.index}, ${src.beforeStep.name}`, () =>
        fork(src.checkpoint, { name: "vm", runDir, accel, sshKey: privateKey, onEvent: onMachine("vm"), keepable }),
      );
      const live = forked.vm;
      machines.push(live);
      report.consoleLogs.push(live.serialLog);
      backing = src.backing;
      report.machines.push({ name: "vm", sshPort: live.sshPort, qmpSocket: live.qmpSocket, serialSocket: live.serialSocket, disks: live.disks.map((d) => d.path), backing });
      if (forked.boot.outcome !== "ssh") throw new VmlabError(`the fork of ${src.checkpoint.dir} did not answer SSH (${forked.boot.outcome})`, { hint: "the checkpoint may be damaged; run the scenario alone" });
      // The shared history comes first: the recording run's boots before the checkpoint.
      report.boots.unshift(...src.boots);
      report.forkedFrom = { scenario: src.from.scenario, runDir: src.from.runDir, beforeStep: src.beforeStep, checkpoint: src.checkpoint.dir, pausedMs: src.checkpoint.pausedMs, replayedCalls: 0 };
      const r = replaying(live, src.calls, `${s.name}, forked from ${src.from.scenario} before step ${src.beforeStep.index} (${src.beforeStep.name})`);
      vm = r.vm;
      replay = r.state;
    } else {
      const prepared = await prepareMachine(s, { runDir, accel, step, log, onMachineEvent: onMachine("vm"), keepable });
      image = prepared.image;
      backing = prepared.backing;
      report.image = { name: image.name, hash: image.hash, firmware: image.efiVars ? "uefi" : "bios" };
      vm = prepared.vm;
      machines.push(vm);
      report.consoleLogs.push(vm.serialLog);
      await startMachine(prepared, step, log);
      report.machines.push({
        name: vm.opts.name,
        sshPort: vm.sshPort,
        qmpSocket: vm.qmpSocket,
        serialSocket: vm.serialSocket,
        disks: vm.disks.map((d) => d.path),
        backing: prepared.backing,
      });
      if (opts.share) {
        callLog = new CallLog();
        vm = recording(vm, callLog);
      }
    }
    data = new DataSet();
    if (s.seedData !== false) {
      await step("seed data set", async () => {
        const manifest = await data!.seed(vm);
        log(`${Object.keys(manifest).length} entries`);
        // For `vmlab check` on a kept machine: the checksums the data set must still have.
        await writeFile(join(runDir, DATASET_FILE), JSON.stringify(manifest, null, 1) + "\n");
      });
      // In a fork the seeding was the recording run's: its checksums came from the replay.
      if (replay && replay.live === 0) report.steps.at(-1)!.replayed = true;
    }
    // Taken in every run, so that a run recorded for forks and the runs forked from it make the same calls.
    const rootBefore = (await vm.succeed("findmnt -no SOURCE /")).trim().replace(/\[.*\]$/, "");
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
        const m = new Machine({ ...o, runDir, accel, sshKey: privateKey, onEvent: onMachine(o.name), keepable });
        machines.push(m);
        report.consoleLogs.push(m.serialLog);
        return m;
      },
    };
    const scenarioSteps: string[] = [];
    let stopped: StopBefore | undefined;
    // --stop-before K: the run ends at that boundary, and refuses every step after it (a scenario's own abort too).
    const stopAt = (name: string) => {
      if (stopped) throw stopped;
      if (opts.stopBefore !== undefined && scenarioSteps.length === opts.stopBefore) {
        stopped = new StopBefore(opts.stopBefore, name);
        report.stoppedBefore = { index: opts.stopBefore, step: name };
        throw stopped;
      }
    };
    if (opts.share) {
      const share = opts.share;
      const real = machines[0]!;
      const checkpoint = async (name: string, index: number) => {
        if (machines.length > 1) {
          shareMissed ??= `no checkpoint before step ${index} (${name}): another machine was started before it`;
          return;
        }
        try {
          const cp = await takeCheckpoint(real, join(runDir, `checkpoint-${index}`), `before step ${index}: ${name}`);
          for (const d of cp.disks) retained.add(d.path);
          (report.checkpoints ??= []).push({ beforeStep: { name, index }, dir: cp.dir, pausedMs: cp.pausedMs });
          log(`checkpoint before step ${index} (${name}) for forks: the guest paused ${cp.pausedMs} ms`);
          share.onCheckpoint({
            checkpoint: cp,
            calls: callLog!.calls.slice(),
            from: { scenario: s.name, runDir },
            beforeStep: { name, index },
            stepsBefore: scenarioSteps.slice(),
            steps: report.steps.map((x) => ({ ...x })),
            boots: report.boots.map((b) => ({ ...b })),
            image,
            backing,
          });
        } catch (err) {
          shareMissed ??= `no checkpoint before step ${index} (${name}): ${(err as Error).message}`;
        }
      };
      steps.beforeTopLevel = async (name) => {
        scenarioSteps.push(name);
        const index = scenarioSteps.length;
        if (share.before(name, index)) {
          await checkpoint(name, index);
          if (share.done?.() && !stopped) {
            // Nothing more is wanted of this run: it ends here, and refuses every later step.
            stopped = new StopBefore(index, name);
            report.stoppedBefore = { index, step: name, forForks: true };
          }
        }
        stopAt(name);
      };
      try {
        if (!spec) await s.run(ctx);
        else await runWithFault(s, ctx, spec, steps, rootBefore, report, !opts.inject);
        if (share.before("(end)", scenarioSteps.length + 1)) await checkpoint("(end)", scenarioSteps.length + 1);
      } finally {
        steps.beforeTopLevel = undefined;
        callLog!.closed = true;
      }
    } else if (src && replay) {
      // A forked run takes the recorded steps, replaying them, up to the one it was forked before.
      const r = replay;
      steps.beforeTopLevel = async (name) => {
        scenarioSteps.push(name);
        const index = scenarioSteps.length;
        stopAt(name);
        const where = `${s.name}, forked from ${src.from.scenario} before step ${src.beforeStep.index} (${src.beforeStep.name})`;
        if (index < src.beforeStep.index) {
          if (src.stepsBefore[index - 1] !== name) {
            throw new VmlabError(`the forked run's step ${index} is "${name}", but the run it was forked from took "${src.stepsBefore[index - 1]}"`, {
              where,
              hint: "a variant must take the same steps as its good path before `variantOf.fromStep`",
            });
          }
          return r.live === 0 ? { replayed: true } : undefined;
        }
        if (index === src.beforeStep.index && r.pending > 0) {
          throw new VmlabError(`the forked run reached step ${index} (${name}) with ${r.pending} of the recorded run's calls not made`, {
            where,
            hint: "the variant did less than its good path before `variantOf.fromStep`",
          });
        }
      };
      try {
        if (!spec) await s.run(ctx);
        else await runWithFault(s, ctx, spec, steps, rootBefore, report, !opts.inject);
      } finally {
        steps.beforeTopLevel = undefined;
        report.forkedFrom!.replayedCalls = r.replayed;
      }
      if (r.pending > 0) throw new VmlabError(`the forked run ended with ${r.pending} of the recorded run's calls not made`, { hint: "the variant did less than its good path before `variantOf.fromStep`" });
    } else {
      steps.beforeTopLevel = async (name) => {
        scenarioSteps.push(name);
        stopAt(name);
      };
      try {
        if (!spec) await s.run(ctx);
        else await runWithFault(s, ctx, spec, steps, rootBefore, report, !opts.inject);
      } finally {
        steps.beforeTopLevel = undefined;
      }
    }
    if (opts.stopBefore !== undefined && !stopped) {
      if (opts.stopBefore !== scenarioSteps.length + 1) {
        throw new VmlabError(`step ${opts.stopBefore} was never reached: ${s.name} ran ${scenarioSteps.length} steps`, {
          hint: `\`vmlab sweep ${s.name} --fault power-cut --plan\` numbers the steps; ${scenarioSteps.length + 1} stops after the last`,
        });
      }
      report.stoppedBefore = { index: opts.stopBefore, step: "(end)" };
    }
    // The steps as this run took them: `vmlab sweep --plan` numbers them from here.
    if (!spec) await recordPlan({ scenario: s.name, steps: scenarioSteps, recordedAt: new Date().toISOString(), runDir }).catch(() => undefined);
    // The runner looks at the final state itself: the verdict must not depend on a scenario remembering to.
    report.final = await step("observe the final state", () => observeFinal(vm, data));
  } catch (err) {
    if (err instanceof StopBefore || report.stoppedBefore) {
      log(`stopped before step ${report.stoppedBefore!.index} (${report.stoppedBefore!.step}) as asked`);
    } else {
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
  }
  // A fault from the command line is an observation: the run passes when it completed, whatever it found.
  report.judgement = report.stoppedBefore?.forForks
    ? report.error
      ? { verdict: "fail", expected: ["checkpoints for the forks"], observed: [], reasons: [report.error.message] }
      : { verdict: "pass", expected: ["checkpoints for the forks"], observed: [], reasons: [`recorded the procedure up to step ${report.stoppedBefore.index} (${report.stoppedBefore.step}) and checkpointed it for the forks; nothing after it was wanted`] }
    : report.stoppedBefore
    ? report.error
      ? { verdict: "fail", expected: [`stop before step ${opts.stopBefore}`], observed: [], reasons: [report.error.message] }
      : { verdict: "pass", expected: [`stop before step ${report.stoppedBefore.index}`], observed: [], reasons: [`stopped before step ${report.stoppedBefore.index} (${report.stoppedBefore.step}) as asked; the machine is left there`] }
    : opts.stopBefore !== undefined
      ? { verdict: "fail", expected: [`stop before step ${opts.stopBefore}`], observed: [], reasons: [report.error?.message ?? "the run did not reach the step"] }
      : opts.inject
    ? { verdict: report.error ? "fail" : "pass", expected: [`observe the machine after ${opts.inject.fault} at step ${opts.inject.at}`], observed: [], reasons: report.error ? [report.error.message] : ["the observation completed"] }
    : judge(s.expect, { ...report, kind: report.kind });
  report.verdict = report.judgement.verdict;
  opts.share?.onEnd(shareMissed);
  try {
    // A run stopped at a boundary leaves its machine there for a person to take over.
    await finish(report, machines, runDir, report.stoppedBefore && !report.stoppedBefore.forForks ? "always" : opts.keep, retained);
  } finally {
    report.durationMs = Date.now() - started;
    await writeFile(join(runDir, "report.json"), JSON.stringify(report, null, 2) + "\n");
    await writeFile(join(runDir, "junit.xml"), junitXml([report]));
    // The page is for people; a page that cannot be rendered never fails the run.
    await writeRunHtml(report, runDir).catch((err: Error) => emit({ type: "log", scenario: s.name, message: `could not write report.html: ${err.message}` }));
    await owned.release();
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
async function finish(report: ScenarioReport, machines: Machine[], runDir: string, keepOpt: RunOptions["keep"], retained: Set<string>): Promise<void> {
  const keep = keepOpt === "always" || (keepOpt === "on-failure" && report.verdict !== "pass");
  for (const m of machines) {
    if (keep && m.running) (report.kept ??= []).push(await keepMachine(m, report));
    else {
      await m.kill();
      removeSocketLink(runDir, dirname(m.qmpSocket));
    }
  }
  // Overlays hold gigabytes after a migration; the report keeps logs, not disks.
  const keptDisks = new Set([...(report.kept?.flatMap((k) => k.overlays) ?? []), ...retained]);
  for (const f of await readdir(runDir)) {
    if ((f.endsWith(".qcow2") || f.endsWith(".raw")) && !keptDisks.has(join(runDir, f))) await rm(join(runDir, f), { force: true });
  }
}
