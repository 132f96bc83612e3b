/**
 * A fault at a scenario's step boundary, or during a step (so many seconds
 * into it, or once it has written so many bytes), and what the lab saw it do.
 *
 * Whether the procedure stopped is observed, never assumed from the fault's
 * name: QEMU exited, or the pulled disk is gone from the machine. A fault
 * that did nothing lets the procedure go on, and the report says so.
 */
import { VmlabError } from "../errors.ts";
import type { Machine } from "../vm/machine.ts";
import type { FaultRecord, Injection } from "./index.ts";
import { injectGeneric, STOPS_PROCEDURE, untilWritten, writtenBytes } from "./inject.ts";
import type { InjectSpec } from "./types.ts";

/** Thrown out of the scenario when a fault was seen to end the procedure. */
export class FaultStop extends Error {
  constructor(readonly fault: string) {
    super(`procedure stopped by the injected fault ${fault}`);
  }
}

/** How long a during-step trigger may wait for its figure before it gives up with an error. */
export const TRIGGER_TIMEOUT_MS = 60 * 60_000;

/** Whether the fault stopped the procedure, from what the lab can see of the machine. */
export async function observeStop(vm: Machine, inj: Injection): Promise<{ stopped: boolean; how: string }> {
  if (!vm.running) return { stopped: true, how: "QEMU exited" };
  if (inj.fault === "pulled-disk") {
    const id = String(inj.details.disk);
    const blocks = await vm.qmpExecute<Array<{ qdev?: string; device?: string }>>("query-block");
    const still = blocks.some((b) => (b.qdev ?? "").includes(`dev-${id}`) || b.device === `dev-${id}`);
    return still ? { stopped: false, how: `disk ${id} is still attached (QMP query-block)` } : { stopped: true, how: `disk ${id} is gone from the machine (QMP query-block)` };
  }
  return { stopped: false, how: "QEMU still runs" };
}

type StepFn = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/**
 * Injects one fault into a scenario's run: counts the scenario's top-level
 * steps and wraps step `spec.at` (see `wrap`). After the fault goes in, it
 * records what was observed and throws FaultStop when the procedure stopped.
 */
export class FaultInjector {
  /** Top-level steps seen so far. */
  steps = 0;
  /** The step the fault went in before or during; undefined until then. */
  injectedAt?: string;

  constructor(
    private readonly spec: InjectSpec,
    private readonly vm: () => Machine,
    private readonly injected: (inj: Injection) => FaultRecord,
    private readonly step: StepFn,
  ) {}

  /** Called for each top-level step of the scenario: returns the step's body, wrapped if the fault goes in there. */
  async wrap<T>(name: string, fn: () => Promise<T>): Promise<() => Promise<T>> {
    this.steps++;
    if (this.steps !== this.spec.at || this.injectedAt !== undefined) return fn;
    if (this.spec.afterMs === undefined && this.spec.afterWrittenBytes === undefined) {
      await this.before(name);
      return fn;
    }
    return () => this.during(name, fn);
  }

  /** The fault after the last step (`at` = steps + 1). */
  async atEnd(): Promise<void> {
    if (this.injectedAt === undefined && this.spec.at === this.steps + 1) await this.before("(end)");
  }

  private async record(inj: Injection, step: string, extra: Record<string, unknown> = {}): Promise<boolean> {
    const rec = this.injected(inj);
    rec.step = step;
    Object.assign(rec.details, extra);
    const stop = STOPS_PROCEDURE.has(this.spec.fault) ? await observeStop(this.vm(), inj) : { stopped: false, how: "the procedure goes on after this fault" };
    rec.details.stoppedProcedure = stop.stopped;
    rec.details.stopObservation = stop.how;
    rec.observed.push(stop.stopped ? `the procedure stopped: ${stop.how}` : `the procedure was not stopped: ${stop.how}`);
    return stop.stopped;
  }

  /** The fault at the boundary before step `name`. */
  async before(name: string): Promise<void> {
    this.injectedAt = name;
    let stopped = false;
    await this.step(`fault: ${this.spec.fault} before step ${this.spec.at} (${name})`, async () => {
      stopped = await this.record(await injectGeneric(this.vm(), this.spec), name);
    });
    if (stopped) throw new FaultStop(this.spec.fault);
  }

  /** Run step `name` with the fault going in `afterMs` into it, or once it has written `afterWrittenBytes`. */
  async during<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.injectedAt = name;
    const vm = this.vm();
    const spec = this.spec;
    let stepEnded = false;
    let failedFirst = false;
    const t0 = Date.now();
    // What the step had written to disk when the fault came goes in the report either way.
    const base = writtenBytes(await vm.qmpExecute("query-blockstats"));
    const deadline = t0 + TRIGGER_TIMEOUT_MS;
    const fired: Promise<Record<string, unknown> | null> =
      spec.afterWrittenBytes === undefined
        ? new Promise<void>((r) => setTimeout(r, spec.afterMs)).then(async () =>
            failedFirst ? null : { afterMs: spec.afterMs, writtenBytes: writtenBytes(await vm.qmpExecute("query-blockstats")) - base },
          )
        : untilWritten(vm, base, spec.afterWrittenBytes, () => stepEnded || Date.now() > deadline).then((written) => {
            if (!stepEnded && Date.now() > deadline) {
              throw new VmlabError(`the ${spec.fault} trigger gave up: step "${name}" wrote ${written} bytes in ${TRIGGER_TIMEOUT_MS / 60_000} min, not ${spec.afterWrittenBytes}`, {
                hint: "give a smaller --after-written, or put the fault in with --after S",
              });
            }
            return { afterWrittenBytes: spec.afterWrittenBytes, writtenBytes: written, afterMs: Date.now() - t0 };
          });
    let stopped = false;
    let injecting = false;
    const injection = fired.then(async (when) => {
      if (when === null || failedFirst) return;
      injecting = true;
      // Whether the step had ended is read before the fault goes in: a power cut ends the step at once.
      const duringStep = { ...when, stepEndedFirst: stepEnded };
      stopped = await this.record(await injectGeneric(vm, spec), name, { duringStep });
    });
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      // The step failed: either the fault took the machine away under it, or it failed on its own before the trigger.
      if (!injecting && vm.running) failedFirst = true;
      stepEnded = true;
      await injection.catch(() => undefined);
      if (stopped) throw new FaultStop(spec.fault);
      if (failedFirst) (err as { vmlabNote?: string }).vmlabNote = `the step failed before the ${spec.fault} trigger; the fault was not injected`;
      throw err;
    }
    stepEnded = true;
    await injection;
    if (stopped) throw new FaultStop(spec.fault);
    return result;
  }
}
