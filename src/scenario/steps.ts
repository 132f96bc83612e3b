/**
 * Named, timed steps: each one a record in the report and an event for the
 * progress display. A step that fails keeps what explains it: the error, and
 * for a guest command its command line, exit code and the last lines of its
 * output, also when the scenario catches the failure and goes on.
 */
import { SshCommandError } from "../vm/ssh.ts";
import { VmlabError } from "../errors.ts";
import type { RunEvent, StepRecord } from "./types.ts";

const TAIL_LINES = 20;

function tail(text: string | undefined, n = TAIL_LINES): string | undefined {
  const t = text?.trimEnd();
  if (!t) return undefined;
  return t.split("\n").slice(-n).join("\n");
}

/** What explains a failed step, from the error it threw. */
export function failureDetails(err: unknown): StepRecord["failure"] | undefined {
  if (err instanceof SshCommandError) {
    const r = err.result;
    return { command: r.command, exitCode: r.exitCode, stdout: tail(r.stdout), stderr: tail(r.stderr) };
  }
  if (err instanceof VmlabError && err.output) return { stdout: tail(err.output) };
  return undefined;
}

/** A hook around each top-level step of the scenario (fault injection uses it). */
export type StepWrapper = <T>(name: string, fn: () => Promise<T>) => Promise<() => Promise<T>>;

export class StepRecorder {
  /** The step running now (innermost). */
  current?: StepRecord;
  /** Wraps top-level steps while set. */
  wrapper?: StepWrapper;
  /**
   * Called before each top-level step while set, before `wrapper`: a
   * checkpoint is taken here, and a forked run checks where it stands. What it
   * returns goes into the step's record.
   */
  beforeTopLevel?: (name: string) => Promise<Partial<StepRecord> | void>;

  constructor(
    private readonly scenario: string,
    private readonly steps: StepRecord[],
    private readonly started: number,
    private readonly emit: (e: RunEvent) => void,
  ) {}

  step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const extra = this.beforeTopLevel && this.current === undefined ? await this.beforeTopLevel(name) : undefined;
    if (this.wrapper && this.current === undefined) fn = await this.wrapper(name, fn);
    const rec: StepRecord = { name, status: "passed", durationMs: 0, startedAtMs: Date.now() - this.started, log: [], ...extra };
    const outer = this.current;
    this.current = rec;
    this.steps.push(rec);
    this.emit({ type: "step-start", scenario: this.scenario, step: name });
    const t = Date.now();
    try {
      return await fn();
    } catch (err) {
      rec.status = "failed";
      rec.error = err instanceof Error ? err.message : String(err);
      const failure = failureDetails(err);
      const note = (err as { vmlabNote?: string }).vmlabNote;
      if (failure || note) rec.failure = { ...failure, ...(note ? { note } : {}) };
      (err as { vmlabStep?: string }).vmlabStep ??= name;
      throw err;
    } finally {
      rec.durationMs = Date.now() - t;
      this.current = outer;
      this.emit({ type: "step-end", scenario: this.scenario, step: rec });
    }
  };

  log = (message: string): void => {
    this.current?.log.push(message);
    this.emit({ type: "log", scenario: this.scenario, message });
  };
}
