/**
 * Sharing a procedure's prefix between runs: a run records what it did to
 * its machine up to a step boundary and checkpoints the machine there
 * (src/vm/checkpoint.ts); another run forks that checkpoint and goes on from
 * the boundary, paying only for what differs.
 *
 * A scenario is code, not a list, so the fork cannot simply jump into the
 * middle of it. The forked run executes the scenario from the start, and
 * until it reaches the boundary every call it makes on its machine is
 * answered from the recording (`replaying`) instead of going to the guest:
 * same calls, same answers, so the scenario's own variables, the data set's
 * checksums and the recorded facts come out as they did in the run that
 * recorded them. Each replayed call must be the recorded one (the same
 * method with the same arguments); the first that is not is an error, and so
 * is a call to another machine before the boundary. Once the recording is
 * used up, calls go to the fork: a real machine resumed from the checkpoint.
 *
 * Two users: a twin declared as a variant of its good path
 * (`Scenario.variantOf`) forks from a checkpoint taken before the step where
 * the two part, and `vmlab sweep` forks each row from the checkpoint before
 * its step.
 */
import { isDeepStrictEqual } from "node:util";
import { VmlabError } from "../errors.ts";
import type { Checkpoint } from "../vm/checkpoint.ts";
import type { BootRecord, Machine } from "../vm/machine.ts";
import type { StepRecord } from "./types.ts";
import type { BuiltImage } from "../image/build.ts";

/** One call the scenario made on its machine, and how it ended. */
export interface RecordedCall {
  method: string;
  args: unknown[];
  outcome: { value: unknown; sync: boolean } | { error: unknown; sync: boolean };
}

/** The calls a run made on its machine, in order. */
export class CallLog {
  readonly calls: RecordedCall[] = [];
  /** Set once the recording must stop growing (after the last checkpoint anyone waits for). */
  closed = false;
}

/** What a forked run needs: the checkpoint, the calls before it, and the shared history for its report. */
export interface ForkSource {
  checkpoint: Checkpoint;
  /** The calls made before the checkpoint, to be replayed in order. */
  calls: RecordedCall[];
  /** The run the prefix was recorded in. */
  from: { scenario: string; runDir: string };
  /** The top-level step of the scenario the checkpoint was taken before, and its 1-based number. */
  beforeStep: { name: string; index: number };
  /** The names of the scenario's top-level steps before it: a forked run must take the same ones. */
  stepsBefore: string[];
  /** The recording run's steps and boots up to the checkpoint: the forked run's history too. */
  steps: StepRecord[];
  boots: (BootRecord & { machine: string })[];
  /** The image and frozen disk the recording run started from. */
  image: BuiltImage;
  backing: string;
}

/** Arguments as they are compared: functions and undefined left out, as JSON would. */
function comparable(args: unknown[]): unknown {
  return JSON.parse(JSON.stringify(args, (_k, v) => (typeof v === "function" ? undefined : v)) ?? "null");
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null)?.then === "function";
}

/**
 * The machine as the scenario sees it while its calls are recorded: every
 * method call goes to the real machine, and its result or error is kept in
 * `log` until the log is closed. Properties are read from the machine itself.
 */
export function recording(vm: Machine, log: CallLog): Machine {
  return new Proxy(vm, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== "function" || typeof prop === "symbol" || prop === "constructor") return v;
      return (...args: unknown[]) => {
        if (log.closed) return v.apply(target, args);
        const entry: RecordedCall = { method: prop, args: comparable(args) as unknown[], outcome: { value: undefined, sync: true } };
        log.calls.push(entry);
        let result: unknown;
        try {
          result = v.apply(target, args);
        } catch (error) {
          entry.outcome = { error, sync: true };
          throw error;
        }
        if (!isThenable(result)) {
          entry.outcome = { value: result, sync: true };
          return result;
        }
        return Promise.resolve(result).then(
          (value) => {
            entry.outcome = { value, sync: false };
            return value;
          },
          (error) => {
            entry.outcome = { error, sync: false };
            throw error;
          },
        );
      };
    },
  });
}

/** Where a forked run stands: how many recorded calls it replayed, and how many went to the fork. */
export interface ReplayState {
  replayed: number;
  live: number;
  readonly pending: number;
}

/**
 * The machine as a forked scenario sees it: its calls are answered from
 * `calls` in order while any are left, then go to `live`, the fork.
 * Properties are read from the fork. A call that differs from the recorded
 * one throws: the scenario did something else before the boundary than the
 * run that recorded it.
 */
export function replaying(live: Machine, calls: RecordedCall[], where: string): { vm: Machine; state: ReplayState } {
  let next = 0;
  const state: ReplayState = {
    replayed: 0,
    live: 0,
    get pending() {
      return calls.length - next;
    },
  };
  const vm = new Proxy(live, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== "function" || typeof prop === "symbol" || prop === "constructor") return v;
      return (...args: unknown[]) => {
        if (next >= calls.length) {
          state.live++;
          return v.apply(target, args);
        }
        const want = calls[next]!;
        const got = comparable(args);
        if (want.method !== prop || !isDeepStrictEqual(want.args, got)) {
          throw new VmlabError(`the forked run did not repeat the recorded prefix: call ${next + 1} of ${calls.length} was ${prop}(${JSON.stringify(got).slice(1, -1).slice(0, 200)}), recorded was ${want.method}(${JSON.stringify(want.args).slice(1, -1).slice(0, 200)})`, {
            where,
            hint: "a variant must do exactly what its good path does before the step where they part; check `variantOf.fromStep` and the twin's options",
          });
        }
        next++;
        state.replayed++;
        const o = want.outcome;
        if ("error" in o) {
          if (o.sync) throw o.error;
          return Promise.reject(o.error);
        }
        return o.sync ? o.value : Promise.resolve(o.value);
      };
    },
  });
  return { vm, state };
}
