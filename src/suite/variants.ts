/**
 * Running many scenarios `jobs` at a time, with each twin that is declared
 * a variant of a good path in the same run forked from that good path's
 * checkpoint instead of doing the shared prefix again (src/scenario/share.ts).
 */
import PQueue from "p-queue";
import { isDeepStrictEqual } from "node:util";
import { UsageError } from "../errors.ts";
import { runScenario, type RunOptions } from "../scenario/runner.ts";
import type { ForkSource } from "../scenario/share.ts";
import type { Scenario, ScenarioReport } from "../scenario/types.ts";
import { removeCheckpoint, type Checkpoint } from "../vm/checkpoint.ts";

/**
 * The twins among `scenarios` whose good path is also among them, by good
 * path. A variant must run on the same image and hardware as its good path.
 */
export function variantPairs(scenarios: Scenario[]): Map<string, Scenario[]> {
  const byName = new Map(scenarios.map((s) => [s.name, s]));
  const pairs = new Map<string, Scenario[]>();
  for (const t of scenarios) {
    const v = t.variantOf;
    if (!v) continue;
    const good = byName.get(v.scenario);
    if (!good) continue;
    if (good.image !== t.image || !isDeepStrictEqual(good.hardware ?? {}, t.hardware ?? {}) || good.coldStart !== t.coldStart || good.seedData !== t.seedData) {
      throw new UsageError(`${t.name} is declared a variant of ${good.name}, but they start from different machines`, {
        hint: "a variant needs its good path's image, hardware, start and data set",
      });
    }
    pairs.set(good.name, [...(pairs.get(good.name) ?? []), t]);
  }
  return pairs;
}

export interface RunManyOptions extends Omit<RunOptions, "share" | "forkFrom"> {
  jobs: number;
  /** Each report as its run ends. */
  onReport?: (r: ScenarioReport) => void;
  /** A twin that had to run its prefix itself, and why. */
  onNote?: (message: string) => void;
}

/**
 * Run the scenarios, `jobs` at a time, in the order given. A twin whose good
 * path is in the list waits for the good path's checkpoint before the step
 * where they part, then takes the next free slot ahead of the queue; if no
 * checkpoint comes (the good path failed earlier, or could not be
 * checkpointed there), the twin runs whole on its own. Checkpoints are
 * removed once every fork of them has ended.
 */
export async function runMany(scenarios: Scenario[], o: RunManyOptions): Promise<ScenarioReport[]> {
  const pairs = o.inject ? new Map<string, Scenario[]>() : variantPairs(scenarios);
  const twins = new Set([...pairs.values()].flat().map((t) => t.name));
  const queue = new PQueue({ concurrency: o.jobs });
  const reports: ScenarioReport[] = [];
  const after: Promise<unknown>[] = [];
  const { jobs: _jobs, onReport, onNote, ...common } = o;
  const runOne = async (s: Scenario, extra: Pick<RunOptions, "share" | "forkFrom"> = {}): Promise<ScenarioReport> => {
    const r = await runScenario(s, { ...common, ...extra });
    reports.push(r);
    onReport?.(r);
    return r;
  };
  for (const s of scenarios) {
    if (twins.has(s.name)) continue;
    const variants = pairs.get(s.name);
    if (!variants) {
      void queue.add(() => runOne(s));
      continue;
    }
    void queue.add(async () => {
      const started = new Set<string>();
      const forks: Promise<unknown>[] = [];
      const checkpoints: Checkpoint[] = [];
      const start = (t: Scenario, src?: ForkSource) => {
        started.add(t.name);
        forks.push(queue.add(() => runOne(t, src ? { forkFrom: src } : {}), { priority: 1 }));
      };
      await runOne(s, {
        share: {
          before: (name) => variants.some((t) => sameStep(t.variantOf!.fromStep, name) && !started.has(t.name)),
          onCheckpoint: (src) => {
            checkpoints.push(src.checkpoint);
            for (const t of variants) if (!started.has(t.name) && sameStep(t.variantOf!.fromStep, src.beforeStep.name)) start(t, src);
          },
          onEnd: (missed) => {
            for (const t of variants) {
              if (started.has(t.name)) continue;
              onNote?.(`${t.name} runs its whole procedure: ${missed ?? `${s.name} never reached the step "${t.variantOf!.fromStep}"`}`);
              start(t);
            }
          },
        },
      });
      after.push(Promise.allSettled(forks).then(() => Promise.all(checkpoints.map(removeCheckpoint))));
    });
  }
  await queue.onIdle();
  await Promise.all(after);
  return reports;
}

/**
 * Whether a step of the good path is the one a variant names. Step names may
 * carry the guest's device names (`install GRUB on /dev/sda and /dev/sdb`),
 * and which disk the guest's kernel calls sda depends on the order its
 * asynchronous scan found them when the warm state was made: the names are
 * compared with the disks' letters left out.
 */
export function sameStep(declared: string, taken: string): boolean {
  const plain = (n: string) => n.replace(/\/dev\/(?:[shv]d[a-z]+|nvme\d+n\d+)/g, "/dev/<disk>");
  return declared === taken || plain(declared) === plain(taken);
}
