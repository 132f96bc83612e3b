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
import { chooseAccel, type AccelChoice } from "../host/kvm.ts";
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

/**
 * The boundaries a sweep covers by default: before each step of the
 * procedure, up to and including the boundary before the first reboot (after
 * which the procedure is over and the scenario only verifies).
 */
export function defaultBoundaries(steps: string[]): number[] {
  const reboot = steps.findIndex((n) => /^(reboot|power|boot)\b/i.test(n));
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
  boundaries: number[];
  afterMs?: number;
  /** Inject once step K has written this many bytes to disk (see InjectSpec). */
  afterWrittenBytes?: number;
  rescue?: boolean;
  jobs: number;
  reportDir?: string;
  disk?: string;
  device?: string;
  /** The accelerator, chosen before anything is written. */
  accel?: AccelChoice;
  onEvent?: (e: RunEvent) => void;
  onRow?: (row: ProbeResult, report: ScenarioReport) => void;
}

export interface SweepResult {
  scenario: string;
  fault: FaultName;
  rows: (ProbeResult & { verdict: "pass" | "fail"; error?: string; report: string })[];
  wallMs: number;
  dir: string;
}

/** Run the scenario once per boundary, `jobs` at a time, and write sweep.json and sweep.txt. */
export async function sweep(s: Scenario, o: SweepOptions): Promise<SweepResult> {
  o = { ...o, accel: o.accel ?? (await chooseAccel()) };
  const started = Date.now();
  const t = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  const dir = join(o.reportDir ?? defaultReportsDir(), `sweep-${s.name}-${o.fault}-${t}`);
  await mkdir(dir, { recursive: true });
  const rows: SweepResult["rows"] = [];
  const queue = [...o.boundaries];
  await Promise.all(
    Array.from({ length: Math.min(o.jobs, queue.length) }, async () => {
      for (let at = queue.shift(); at !== undefined; at = queue.shift()) {
        const spec: InjectSpec = { fault: o.fault, at, afterMs: o.afterMs, afterWrittenBytes: o.afterWrittenBytes, rescue: o.rescue, disk: o.disk, device: o.device };
        const r = await runScenario(s, { reportDir: dir, onEvent: o.onEvent, inject: spec, accel: o.accel });
        const probe = r.probe ?? { fault: o.fault, at, before: "?", procedure: "completed" as const, boot: { outcome: "not reached" }, root: { which: "none" as const }, data: { state: "unknown" as const } };
        const row = { ...probe, verdict: r.verdict, error: r.error?.message, report: join(r.runDir, "report.json") };
        rows.push(row);
        o.onRow?.(probe, r);
      }
    }),
  );
  rows.sort((a, b) => a.at - b.at);
  const result: SweepResult = { scenario: s.name, fault: o.fault, rows, wallMs: Date.now() - started, dir };
  await writeFile(join(dir, "sweep.json"), JSON.stringify(result, null, 2) + "\n");
  await writeFile(join(dir, "sweep.txt"), sweepTable(result).join("\n") + "\n");
  return result;
}

const outcome = (b: { outcome: string; detail?: string }) => (b.outcome === "ssh" ? "boots" : `${b.outcome}${b.detail ? ` (${b.detail})` : ""}`);
const rootText = (r: ProbeResult["root"]) => (r.which === "none" ? "-" : `${r.which} ${r.device ?? ""}`.trim());
const dataText = (d: ProbeResult["data"]) => (d.state === "lost" ? `LOST: ${d.summary?.split("\n")[0] ?? ""}` : d.state === "intact" ? "intact" : "-");

/** The sweep as aligned text rows, a header line first. */
export function sweepTable(r: SweepResult): string[] {
  const rows = [["step", "fault before", "procedure", "firmware boot", "root", "data", "rescue"]];
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
      x.before,
      x.verdict === "pass" ? (x.procedure.startsWith("failed") ? "failed" : x.procedure) : `lab error: ${x.error ?? "?"}`,
      outcome(x.boot),
      rootText(x.root),
      dataText(x.data),
      rescue,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
  lines.splice(1, 0, widths.map((w, i) => "-".repeat(i === widths.length - 1 ? 6 : w)).join("  "));
  lines.push("", `${r.scenario}, fault ${r.fault}: ${r.rows.length} runs in ${(r.wallMs / 1000).toFixed(0)} s wall time`);
  return lines;
}
