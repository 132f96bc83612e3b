import type { BuiltImage } from "../image/build.ts";
import type { KeptVm } from "../vm/kept.ts";
import type { FaultRecord, Injection } from "../faults/index.ts";
import type { InjectSpec } from "../faults/types.ts";
import type { BootRecord, Machine, MachineOptions } from "../vm/machine.ts";
import type { DataCheck, DataSet } from "./dataset.ts";
import type { Expectation } from "../verdict/expect.ts";
import type { FinalObservation, Verdict } from "../verdict/judge.ts";

export interface ScenarioContext {
  /** The machine under test, booted from its own disk and answering SSH. */
  vm: Machine;
  /** The data set, seeded before `run` is called. */
  data: DataSet;
  image: BuiltImage;
  /** This run's directory: overlays, sockets, console logs, report. */
  runDir: string;
  /** A named, timed step. A throw fails the step and the scenario. */
  step<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** A line in the step's log and the progress display. */
  log(message: string): void;
  /** A fact for report.json (final root device, observed failure, ...). */
  record(key: string, value: unknown): void;
  /** Record an injected fault (src/faults) in the report, with the current step; returns the record to add observations to. */
  injected(inj: Injection): FaultRecord;
  /**
   * Another machine for this run (the rescue system): same accelerator and
   * SSH key, its console log and boots in the report, ended with the run.
   */
  addMachine(opts: Omit<MachineOptions, "runDir" | "accel" | "sshKey" | "onEvent">): Machine;
}

export interface Scenario {
  name: string;
  /** One line for `vmlab list`. */
  description: string;
  /** Image recipe name under images/. */
  image: string;
  tags?: string[];
  /** The runbook it rehearses, under shared/runbooks. */
  runbook?: string;
  /**
   * "rehearsal": the procedure done right must leave a good machine.
   * "twin": a step is deliberately forgotten; the scenario passes only when the lab observes the failure.
   */
  kind?: "rehearsal" | "twin";
  /** Seed the data set before `run` (default true). */
  seedData?: boolean;
  /**
   * Boot the first time through the firmware instead of resuming the saved
   * warm state. Only for scenarios whose first boot is the thing under test.
   */
  coldStart?: boolean;
  /**
   * Hardware beyond the default one-disk machine: blank extra disks (sdb,
   * sdc, ...) by size, and memory. Each combination gets its own warm state.
   */
  hardware?: { extraDisks?: string[]; memoryMiB?: number };
  /**
   * What the lab must observe for the scenario to pass, as data the runner
   * checks (src/verdict/expect.ts): a rehearsal's final state (`final`), a
   * twin's predicted failure (`failure`, alternatives each of them specific).
   */
  expect?: Expectation;
  /**
   * A twin that is its good path except from one step on: `fromStep` is the
   * name of the good path's first top-level step the twin does not share.
   * When both run in one `vmlab run`, the good path is checkpointed before
   * that step and the twin forks from it, replaying the shared prefix
   * instead of doing it again (src/scenario/share.ts). Run alone, the twin
   * does the whole procedure itself.
   */
  variantOf?: { scenario: string; fromStep: string };
  /**
   * A scenario about a fault: the lab injects it at a step boundary (or
   * during a step), power-cycles the machine and observes it; `expect` judges
   * what was seen. `observe` may look further and record facts for it.
   */
  fault?: { inject: InjectSpec; observe?(probe: ProbeResult, ctx: ScenarioContext): Promise<void> | void };
  run(ctx: ScenarioContext): Promise<void>;
}

export function scenario(s: Scenario): Scenario {
  return { kind: "rehearsal", seedData: true, tags: [], ...s };
}

export interface StepRecord {
  name: string;
  status: "passed" | "failed" | "skipped";
  durationMs: number;
  startedAtMs: number;
  error?: string;
  /** Done in the run this one was forked from: its calls were answered from that run's recording (src/scenario/share.ts). */
  replayed?: boolean;
  /** A step that failed on a guest command: the command, its exit code, and the last lines of its output. */
  failure?: { command?: string; exitCode?: number; stdout?: string; stderr?: string; note?: string };
  log: string[];
}

export interface ScenarioReport {
  scenario: string;
  description: string;
  kind: "rehearsal" | "twin";
  verdict: "pass" | "fail";
  /** The declared expectation, what was observed, and the reasons for the verdict (src/verdict). */
  judgement?: Verdict;
  /** The declared expectation, as data. */
  expect?: Expectation;
  /** The machine as the run left it: its last boot, root and data set. */
  final?: FinalObservation;
  startedAt: string;
  durationMs: number;
  /** The image the run started from, and the firmware its machine boots through. */
  image?: { name: string; hash: string; firmware?: "bios" | "uefi" };
  accel?: { accel: string; reason: string };
  steps: StepRecord[];
  boots: (BootRecord & { machine: string })[];
  facts: Record<string, unknown>;
  data?: DataCheck;
  error?: { message: string; step?: string; where?: string; output?: string; hint?: string; consoleTail?: string };
  runDir: string;
  consoleLogs: string[];
  /** What each machine of the run used on the host: no two runs share any of it. */
  machines: { name: string; sshPort: number; qmpSocket: string; serialSocket: string; disks: string[]; backing?: string }[];
  /** Faults injected during the run, with what the lab observed afterwards. */
  faults?: FaultRecord[];
  /** For a run with a fault injected at a step boundary (`vmlab run --fault`, `vmlab sweep`): what became of the machine. */
  probe?: ProbeResult;
  /**
   * A run forked from another run's checkpoint: which run, before which of
   * its steps, and how much of it was replayed rather than done again.
   */
  forkedFrom?: { scenario: string; runDir: string; beforeStep: { name: string; index: number }; checkpoint: string; pausedMs: number; replayedCalls: number };
  /** `vmlab run --stop-before K`: the boundary the run stopped at, its machine kept there. */
  stoppedBefore?: { index: number; step: string; forForks?: boolean };
  /** Checkpoints this run took for others to fork (a twin, the rows of a sweep). */
  checkpoints?: { beforeStep: { name: string; index: number }; dir: string; pausedMs: number }[];
  /** Machines left running after the run (`vmlab run --keep`), reached with `vmlab ssh|console|stop <id>`. */
  kept?: KeptVm[];
}

/** One row of a fault sweep: a fault injected before step `at`, and what the lab saw after. */
export interface ProbeResult {
  fault: string;
  /** 1-based step boundary: the fault went in before step `at` (steps + 1: after the last). */
  at: number;
  /** The step it went in before ("(end)" after the last). */
  before: string;
  /** How the procedure ended: stopped by the fault, completed, or failed at a step. */
  procedure: "stopped" | "completed" | `failed: ${string}`;
  /** The firmware boot after the fault (after a power cycle). */
  boot: { outcome: string; detail?: string };
  /** Which root the machine came up on: the one it had before the procedure, another one, or none. */
  root: { which: "old" | "new" | "none"; device?: string };
  /** The data set after the boot: intact, what was lost, or unknown (no boot). */
  data: { state: "intact" | "lost" | "unknown"; summary?: string };
  /** The rescue route, when asked for and the boot failed. */
  rescue?: { boot: { outcome: string; detail?: string }; root: { which: "old" | "new" | "none"; device?: string }; data: { state: "intact" | "lost" | "unknown"; summary?: string }; error?: string };
}

export type RunEvent =
  | { type: "image"; message: string }
  | { type: "step-start"; scenario: string; step: string }
  | { type: "step-end"; scenario: string; step: StepRecord }
  | { type: "boot"; scenario: string; machine: string; boot: BootRecord }
  | { type: "log"; scenario: string; message: string }
  | { type: "done"; report: ScenarioReport };
