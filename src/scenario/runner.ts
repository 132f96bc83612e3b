import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { removeSocketLink } from "../vm/socket-dir.ts";
import { VmlabError } from "../errors.ts";
import { chooseAccel } from "../host/kvm.ts";
import { ensureImage, type BuiltImage } from "../image/build.ts";
import { labKey } from "../image/keys.ts";
import { defaultReportsDir } from "../paths.ts";
import { keepMachine } from "../vm/kept.ts";
import { expectBoot, Machine, type MachineOptions } from "../vm/machine.ts";
import type { FaultRecord } from "../faults/index.ts";
import { FaultStop, injectGeneric, observeAfterFault, STOPS_PROCEDURE, untilWritten, writtenBytes, type InjectSpec } from "../faults/inject.ts";
import { formatSize } from "../disk/size.ts";
import { ensureWarmState, machineDisks, profileFor } from "../vm/warm.ts";
import { DataSet } from "./dataset.ts";
import { loadRecipe } from "./registry.ts";
import { junitXml } from "./report.ts";
import type { ProbeResult, RunEvent, Scenario, ScenarioContext, ScenarioReport, StepRecord } from "./types.ts";

export interface RunOptions {
  /** Parent directory for this run's report directory. */
  reportDir?: string;
  onEvent?: (e: RunEvent) => void;
  /** Leave the machine running after the run, always or only when the scenario failed (see src/vm/kept.ts). */
  keep?: "always" | "on-failure";
  /**
   * Inject a fault before scenario step `inject.at` and observe the machine
   * after it (src/faults/inject.ts). The report's verdict is then "pass" when
   * the observation completed, whatever it found: the finding is report.probe.
   */
  inject?: InjectSpec;
}

function runId(name: string): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  return `${name}-${t}-${randomBytes(3).toString("hex")}`;
}

/**
 * Run one scenario: build or reuse its image, boot a machine on a private
 * overlay, seed the data set, run the steps, and write report.json, junit.xml
 * and the console logs. The QEMU process is ended on every path.
 */
export async function runScenario(s: Scenario, opts: RunOptions = {}): Promise<ScenarioReport> {
  const emit = opts.onEvent ?? (() => undefined);
  const started = Date.now();
  const runDir = join(opts.reportDir ?? defaultReportsDir(), runId(s.name));
  await mkdir(runDir, { recursive: true });
  const report: ScenarioReport = {
    scenario: s.name,
    description: s.description,
    kind: s.kind ?? "rehearsal",
    verdict: "fail",
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    steps: [],
    boots: [],
    facts: {},
    runDir,
    consoleLogs: [],
    machines: [],
    faults: [],
  };
  const machines: Machine[] = [];
  let current: StepRecord | undefined;
  // Step boundaries for an injected fault: top-level steps inside the scenario's run().
  let inScenario = false;
  let scenarioSteps = 0;
  let injectedAt: string | undefined;
  let ctxRef: ScenarioContext | undefined;
  // A fault from the command line, or the one the scenario itself is about.
  const spec: InjectSpec | undefined = opts.inject ?? s.fault?.inject;
  const inject = async (before: string) => {
    injectedAt = before;
    const vm = machines[0]!;
    await step(`fault: ${spec!.fault} before step ${spec!.at} (${before})`, async () => {
      const rec = ctxRef!.injected(await injectGeneric(vm, spec!));
      rec.step = before;
    });
    if (STOPS_PROCEDURE.has(spec!.fault)) throw new FaultStop(spec!.fault);
  };
  /** The fault `afterMs` into step `name`, or once it has written `afterWrittenBytes`, while the step runs. */
  const injectDuring = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    injectedAt = name;
    const vm = machines[0]!;
    let stepEnded = false;
    const t0 = Date.now();
    const bytes = spec!.afterWrittenBytes;
    // What the step had written to disk when the fault came goes in the report either way.
    const base = writtenBytes(await vm.qmpExecute("query-blockstats"));
    const trigger: Promise<Record<string, unknown>> =
      bytes === undefined
        ? new Promise<void>((r) => setTimeout(r, spec!.afterMs)).then(async () => ({
            afterMs: spec!.afterMs,
            writtenBytes: writtenBytes(await vm.qmpExecute("query-blockstats")) - base,
          }))
        : untilWritten(vm, base, bytes, () => stepEnded).then((written) => ({ afterWrittenBytes: bytes, writtenBytes: written, afterMs: Date.now() - t0 }));
    const timer = trigger.then(async (when) => {
      const ended = stepEnded;
      const rec = ctxRef!.injected(await injectGeneric(vm, spec!));
      rec.step = name;
      rec.details.duringStep = { ...when, stepEndedFirst: ended };
    });
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      await timer;
      // The step failed because the machine went away under it: that is the fault, not the procedure.
      if (STOPS_PROCEDURE.has(spec!.fault)) throw new FaultStop(spec!.fault);
      throw err;
    } finally {
      stepEnded = true;
    }
    await timer;
    if (STOPS_PROCEDURE.has(spec!.fault)) throw new FaultStop(spec!.fault);
    return result;
  };
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    if (inScenario && current === undefined && spec) {
      scenarioSteps++;
      if (scenarioSteps === spec.at && injectedAt === undefined) {
        if (spec.afterMs === undefined && spec.afterWrittenBytes === undefined) await inject(name);
        else {
          const body = fn;
          fn = () => injectDuring(name, body);
        }
      }
    }
    const rec: StepRecord = { name, status: "passed", durationMs: 0, startedAtMs: Date.now() - started, log: [] };
    const outer = current;
    current = rec;
    report.steps.push(rec);
    emit({ type: "step-start", scenario: s.name, step: name });
    const t = Date.now();
    try {
      return await fn();
    } catch (err) {
      rec.status = "failed";
      rec.error = err instanceof Error ? err.message : String(err);
      (err as { vmlabStep?: string }).vmlabStep ??= name;
      throw err;
    } finally {
      rec.durationMs = Date.now() - t;
      current = outer;
      emit({ type: "step-end", scenario: s.name, step: rec });
    }
  };
  const log = (message: string) => {
    current?.log.push(message);
    emit({ type: "log", scenario: s.name, message });
  };

  let image: BuiltImage | undefined;
  try {
    const recipe = await loadRecipe(s.image);
    image = await step(`image ${s.image}`, () => ensureImage(recipe, { progress: (m) => log(m) }));
    report.image = { name: image.name, hash: image.hash };
    const accel = await chooseAccel();
    report.accel = { accel: accel.accel, reason: accel.reason };
    const { privateKey } = await labKey();
    const profile = profileFor(s.hardware);
    const cold = s.coldStart || process.env.VMLAB_WARM === "0";
    const warm = cold
      ? undefined
      : await step("warm state", () => ensureWarmState(image!, profile, accel, privateKey, log));
    const disks = await machineDisks(runDir, image, profile, warm);
    const vm = new Machine({
      incomingState: warm?.state,
      memoryMiB: profile.memoryMiB,
      smp: profile.smp,
      name: "vm",
      runDir,
      disks,
      accel,
      sshKey: privateKey,
      onEvent: (e) => {
        if (e.type === "boot") {
          report.boots.push({ ...e.boot, machine: "vm" });
          emit({ type: "boot", scenario: s.name, machine: "vm", boot: e.boot });
        } else log(e.message);
      },
    });
    machines.push(vm);
    report.consoleLogs.push(vm.serialLog);
    await step(warm ? "start from the saved state" : "boot from disk", async () => {
      const boot = warm ? await vm.resume() : await vm.boot();
      await expectBoot(vm, boot, "ssh");
      log(`up via ${boot.via} in ${(boot.durationMs / 1000).toFixed(1)} s`);
    });
    report.machines.push({
      name: vm.opts.name,
      sshPort: vm.sshPort,
      qmpSocket: vm.qmpSocket,
      serialSocket: vm.serialSocket,
      disks: vm.opts.disks.map((d) => d.path),
      backing: warm?.disk ?? image.disk,
    });
    const data = new DataSet();
    if (s.seedData !== false) await step("seed data set", async () => log(`${Object.keys(await data.seed(vm)).length} entries`));
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
        const rec: FaultRecord = { ...inj, atMs: Date.now() - started, step: current?.name, observed: [] };
        (report.faults ??= []).push(rec);
        log(`fault injected: ${inj.fault} (${inj.how})`);
        return rec;
      },
      addMachine: (o: Omit<MachineOptions, "runDir" | "accel" | "sshKey" | "onEvent">) => {
        const m = new Machine({
          ...o,
          runDir,
          accel,
          sshKey: privateKey,
          onEvent: (e) => {
            if (e.type === "boot") {
              report.boots.push({ ...e.boot, machine: o.name });
              emit({ type: "boot", scenario: s.name, machine: o.name, boot: e.boot });
            } else log(e.message);
          },
        });
        machines.push(m);
        report.consoleLogs.push(m.serialLog);
        return m;
      },
    };
    ctxRef = ctx;
    if (!spec) {
      await s.run(ctx);
    } else {
      const row: ProbeResult = { fault: spec.fault, at: spec.at, before: "", procedure: "completed", boot: { outcome: "not reached" }, root: { which: "none" }, data: { state: "unknown" } };
      report.probe = row;
      inScenario = true;
      try {
        await s.run(ctx);
        if (injectedAt === undefined && spec.at === scenarioSteps + 1) await inject("(end)");
      } catch (err) {
        if (!(err instanceof FaultStop)) {
          const e = err as Error & { vmlabStep?: string };
          row.procedure = `failed: ${e.vmlabStep ?? "?"}: ${e.message.split("\n")[0]}`;
        } else row.procedure = "stopped";
      } finally {
        inScenario = false;
      }
      if (injectedAt === undefined) {
        throw new VmlabError(`step ${spec.at} was never reached: ${s.name} ran ${scenarioSteps} steps`, {
          hint: `\`vmlab sweep ${s.name} --fault ${spec.fault} --plan\` lists the steps`,
        });
      }
      row.before =
        spec.afterWrittenBytes !== undefined
          ? `${injectedAt} (${formatSize(spec.afterWrittenBytes)} written)`
          : spec.afterMs === undefined
            ? injectedAt
            : `${injectedAt} (${(spec.afterMs / 1000).toFixed(1)} s in)`;
      await observeAfterFault(ctx, spec, rootBefore, row);
      // A scenario about this fault says what the lab must have seen; a fault from the command line is an observation.
      if (!opts.inject && s.fault) await step("expected after the fault", async () => s.fault!.expect(row, ctx));
    }
    report.verdict = "pass";
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
  } finally {
    const keep = opts.keep === "always" || (opts.keep === "on-failure" && report.verdict !== "pass");
    for (const m of machines) {
      if (keep && m.running) (report.kept ??= []).push(await keepMachine(m, report));
      else {
        await m.kill();
        removeSocketLink(runDir, dirname(m.qmpSocket));
      }
    }
    // Overlays hold gigabytes after a migration; the report keeps logs, not disks (a kept machine keeps its own).
    const keptDisks = new Set(report.kept?.flatMap((k) => k.overlays));
    for (const f of await readdir(runDir)) {
      if ((f.endsWith(".qcow2") || f.endsWith(".raw")) && !keptDisks.has(join(runDir, f))) await rm(join(runDir, f), { force: true });
    }
    report.durationMs = Date.now() - started;
    await writeFile(join(runDir, "report.json"), JSON.stringify(report, null, 2) + "\n");
    await writeFile(join(runDir, "junit.xml"), junitXml([report]));
    emit({ type: "done", report });
  }
  return report;
}
