/**
 * The fault sweep: one run of a scenario per step boundary, with a fault
 * injected there, and a table of what became of the machine after each. The
 * map of a procedure's danger window.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import type { FaultName } from "../faults/index.ts";
import type { InjectSpec } from "../faults/types.ts";
import { defaultReportsDir } from "../paths.ts";
import { runScenario } from "../scenario/runner.ts";
import { writeSweepHtml } from "../report/files.ts";
import { chooseAccel, type AccelChoice } from "../host/kvm.ts";
import PQueue from "p-queue";
import { alignColumns, columnWidths } from "../util/table.ts";
import { FINAL_REBOOT_STEP } from "../runbook/scenario.ts";
import type { ForkSource } from "../scenario/share.ts";
import { removeCheckpoint, type Checkpoint } from "../vm/checkpoint.ts";
import type { ProbeResult, RunEvent, Scenario, ScenarioContext, ScenarioReport } from "../scenario/types.ts";

class PlanEnd extends Error {}

/**
 * The scenario's top-level step names, without running anything: run() is
 * called with a context whose step() records the name and skips the body, and
 * whose machine throws on first use. `complete` is false when the scenario
 * used the machine or a step's result between steps, which ends the plan.
 */
export async function planSteps(s: Scenario): Promise<{ steps: string[]; complete: boolean }> {
  const steps: string[] = [];
  const stop = (): never => {
    throw new PlanEnd();
  };
  const unusable = new Proxy({}, { get: stop, apply: stop }) as never;
  const ctx: ScenarioContext = {
    vm: unusable,
    data: unusable,
    image: unusable,
    runDir: "/nonexistent",
    step: async (name) => {
      steps.push(name);
      return undefined as never;
    },
    log: () => undefined,
    record: () => undefined,
    injected: stop,
    addMachine: stop,
  };
  try {
    await s.run(ctx);
    return { steps, complete: true };
  } catch {
    return { steps, complete: false };
  }
}

/** A step that reboots or powers the machine: the procedure is over after it. */
const REBOOT_STEP = /^(reboot|power|boot)\b/i;

/**
 * The step that ends a procedure: a runbook's blocks may reboot on the way
 * (a reboot into a degraded array) and go on, so a runbook ends at the lab's
 * own final reboot; a scenario at its first reboot step.
 */
function endsProcedure(name: string, steps: readonly string[]): boolean {
  return steps.includes(FINAL_REBOOT_STEP) ? name === FINAL_REBOOT_STEP : REBOOT_STEP.test(name);
}

/**
 * The boundaries a sweep covers by default: before each step of the
 * procedure, up to and including the boundary before the first reboot (after
 * which the procedure is over and the scenario only verifies).
 */
export function defaultBoundaries(steps: string[]): number[] {
  const reboot = steps.findIndex((n) => endsProcedure(n, steps));
  const last = reboot >= 0 ? reboot + 1 : steps.length + 1;
  return Array.from({ length: last }, (_, i) => i + 1);
}

/**
 * Parse `--at 1,3,5-7` against a scenario of `steps` steps (boundaries
 * 1..steps+1). With an incomplete plan only the lower bound is checked here;
 * a boundary the run never reaches is reported by the run.
 */
export function parseBoundaries(spec: string, steps: number, o: { complete?: boolean; hint?: string } = {}): number[] {
  const complete = o.complete ?? true;
  const out = new Set<number>();
  for (const part of spec.split(",").map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new UsageError(`bad step list "${spec}": use numbers and ranges like 1,3,5-7`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a < 1 || (complete && b > steps + 1) || a > b) {
      throw new UsageError(`step ${a > b ? `${a}-${b}` : a < 1 ? a : b} is out of range: this scenario has steps 1-${steps} (and ${steps + 1}: after the last)`, {
        hint: o.hint ?? "`vmlab sweep <scenario> --fault <fault> --plan` lists the steps",
      });
    }
    for (let k = a; k <= b; k++) out.add(k);
  }
  if (out.size === 0) throw new UsageError(`bad step list "${spec}": it names no step`);
  return [...out].sort((x, y) => x - y);
}

export interface SweepOptions {
  fault: FaultName;
  /**
   * The boundaries to sweep, or "default": before each step up to and
   * including the first reboot (see defaultBoundaries), decided while the
   * recording run goes, for a scenario whose steps only a run can number.
   */
  boundaries: number[] | "default";
  afterMs?: number;
  /** Inject once step K has written this many bytes to disk (see InjectSpec). */
  afterWrittenBytes?: number;
  rescue?: boolean;
  jobs: number;
  /** False: every row does the steps before its own (the old way, for comparison). Default true. */
  fork?: boolean;
  reportDir?: string;
  disk?: string;
  /**
   * pulled-disk: one row per boundary and disk, each pulling its own disk,
   * all forked from the one recording run (when can the machine boot from
   * either disk). Overrides `disk`.
   */
  disks?: string[];
  device?: string;
  /** The accelerator, chosen before anything is written. */
  accel?: AccelChoice;
  onEvent?: (e: RunEvent) => void;
  onRow?: (row: ProbeResult, report: ScenarioReport) => void;
}

export interface SweepResult {
  scenario: string;
  fault: FaultName;
  /** `forked`: the row resumed the recording run's checkpoint before its step instead of doing the steps before it. */
  rows: (ProbeResult & { verdict: "pass" | "fail"; error?: string; report: string; forked?: boolean; disk?: string })[];
  /** The run that did the procedure once, without a fault, and was checkpointed for the rows. */
  recording?: { report: string; verdict: "pass" | "fail"; steps: number };
  wallMs: number;
  dir: string;
}

/**
 * The sweep in O(N): one run does the procedure once, without a fault, and
 * is checkpointed before each swept step; each row forks the checkpoint
 * before its step (src/scenario/share.ts), injects the fault there,
 * power-cycles and observes. Rows start as soon as their checkpoint exists,
 * `jobs` runs at a time counting the recording run. A row whose checkpoint
 * never came (the recording run failed before its step) runs the whole
 * procedure itself. sweep.json, sweep.txt and sweep.html are written in the sweep's
 * directory, the recording run's report beside the rows'.
 */
export async function sweep(s: Scenario, o: SweepOptions): Promise<SweepResult> {
  o = { ...o, accel: o.accel ?? (await chooseAccel()) };
  const started = Date.now();
  const t = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  const dir = join(o.reportDir ?? defaultReportsDir(), `sweep-${s.name}-${o.fault}-${t}`);
  await mkdir(dir, { recursive: true });
  const rows: SweepResult["rows"] = [];
  const queue = new PQueue({ concurrency: o.jobs });
  const given = new Set<number>();
  // With "default", every step up to and including the first that reboots or powers the machine.
  let pastReboot = false;
  const wanted = (name: string, index: number): boolean => {
    if (o.boundaries !== "default") return o.boundaries.includes(index);
    if (pastReboot) return false;
    if (s.tags?.includes("runbook") ? name === FINAL_REBOOT_STEP : REBOOT_STEP.test(name)) pastReboot = true;
    return true;
  };
  const pending: Promise<unknown>[] = [];
  const checkpoints: Checkpoint[] = [];
  const disks = o.disks?.length ? o.disks : [o.disk];
  const row = (at: number, forkFrom?: ForkSource) => {
    given.add(at);
    for (const disk of disks) {
      const spec: InjectSpec = { fault: o.fault, at, afterMs: o.afterMs, afterWrittenBytes: o.afterWrittenBytes, rescue: o.rescue, disk, device: o.device };
      const job = queue.add(
        async () => {
          const r = await runScenario(s, { reportDir: dir, onEvent: o.onEvent, inject: spec, accel: o.accel, forkFrom });
          const probe = r.probe ?? { fault: o.fault, at, before: "?", procedure: "completed" as const, boot: { outcome: "not reached" }, root: { which: "none" as const }, data: { state: "unknown" as const } };
          rows.push({ ...probe, verdict: r.verdict, error: r.error?.message, report: join(r.runDir, "report.json"), ...(r.forkedFrom ? { forked: true } : {}), ...(disk && disks.length > 1 ? { disk } : {}) });
          o.onRow?.(probe, r);
        },
        { priority: 1 },
      );
      pending.push(job);
    }
  };
  let recording: ScenarioReport | undefined;
  if (o.fork === false) {
    if (o.boundaries === "default") throw new UsageError("a sweep without forks needs its boundaries numbered");
    for (const at of o.boundaries) row(at);
  } else await queue.add(async () => {
    recording = await runScenario(s, {
      reportDir: dir,
      onEvent: o.onEvent,
      accel: o.accel,
      share: {
        before: (name, index) => wanted(name, index) && !given.has(index),
        onCheckpoint: (src) => {
          checkpoints.push(src.checkpoint);
          row(src.beforeStep.index, src);
        },
        onEnd: () => {
          if (o.boundaries !== "default") for (const at of o.boundaries) if (!given.has(at)) row(at);
        },
        // The procedure after the last swept step is no row's: the recording run stops there.
        done: () => (o.boundaries === "default" ? pastReboot : o.boundaries.every((at) => given.has(at))),
      },
    });
  });
  await queue.onIdle();
  await Promise.all(pending);
  for (const cp of checkpoints) await removeCheckpoint(cp);
  rows.sort((a, b) => a.at - b.at || (a.disk ?? "").localeCompare(b.disk ?? ""));
  const result: SweepResult = {
    scenario: s.name,
    fault: o.fault,
    rows,
    wallMs: Date.now() - started,
    dir,
    ...(recording ? { recording: { report: join(recording.runDir, "report.json"), verdict: recording.verdict, steps: recording.steps.length } } : {}),
  };
  await writeFile(join(dir, "sweep.json"), JSON.stringify(result, null, 2) + "\n");
  await writeFile(join(dir, "sweep.txt"), sweepTable(result).join("\n") + "\n");
  await writeSweepHtml(result).catch((err: Error) => o.onEvent?.({ type: "log", scenario: s.name, message: `could not write sweep.html: ${err.message}` }));
  return result;
}

const outcome = (b: { outcome: string; detail?: string }) => (b.outcome === "ssh" ? "boots" : `${b.outcome}${b.detail ? ` (${b.detail})` : ""}`);
const rootText = (r: ProbeResult["root"]) => (r.which === "none" ? "-" : `${r.which} ${r.device ?? ""}`.trim());
const dataText = (d: ProbeResult["data"]) => (d.state === "lost" ? `LOST: ${d.summary?.split("\n")[0] ?? ""}` : d.state === "intact" ? "intact" : "-");

/** The sweep as aligned text rows, a header line first. */
export function sweepTable(r: SweepResult): string[] {
  // A sweep over several disks names each row's disk.
  const byDisk = r.rows.some((x) => x.disk);
  const rows = [["step", ...(byDisk ? ["disk pulled"] : []), "fault before", "procedure", "firmware boot", "root", "data", "rescue"]];
  for (const x of r.rows) {
    const rescue = x.rescue
      ? x.rescue.error
        ? `failed: ${x.rescue.error.split("\n")[0]}`
        : `${outcome(x.rescue.boot)}${x.rescue.root.which !== "none" ? `, ${rootText(x.rescue.root)}, data ${dataText(x.rescue.data)}` : ""}`
      : x.boot.outcome === "ssh"
        ? "not needed"
        : "-";
    rows.push([
      String(x.at),
      ...(byDisk ? [x.disk ?? "-"] : []),
      x.before,
      x.verdict === "pass" ? (x.procedure.startsWith("failed") ? "failed" : x.procedure) : `lab error: ${x.error ?? "?"}`,
      outcome(x.boot),
      rootText(x.root),
      dataText(x.data),
      rescue,
    ]);
  }
  const widths = columnWidths(rows);
  const lines = alignColumns(rows, widths);
  lines.splice(1, 0, widths.map((w, i) => "-".repeat(i === widths.length - 1 ? 6 : w)).join("  "));
  lines.push("", `${r.scenario}, fault ${r.fault}: ${r.rows.length} runs in ${(r.wallMs / 1000).toFixed(0)} s wall time`);
  return lines;
}
