/**
 * Training mode's figures: how long a trainee waits. Medians over several
 * rounds, side by side in one invocation:
 *
 *   npm run bench:train                       # 5 rounds, exercise stale-fstab-uuid
 *   npm run bench:train -- --runs 9 --exercise initrd-deleted --json
 *
 * Figures:
 *   makeBrokenMs   making the exercise's broken state (warm start, data set, break, reboot into the failure,
 *                  checkpoint); once per exercise and image, measured once with the cached one removed
 *   startMs        `startSession`: a fork of the broken checkpoint, kept
 *   resetMs        `resetSession`: the machine ended and forked again
 *   resetRatio     resetMs / makeBrokenMs
 */
import { rm } from "node:fs/promises";
import { parseArgs } from "node:util";
import { chooseAccel } from "../src/host/kvm.ts";
import { loadExercise } from "../src/training/exercise.ts";
import { ensureBroken, resetSession, startSession, stopSession } from "../src/training/session.ts";
import { median } from "./stats.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "5" }, exercise: { type: "string", default: "stale-fstab-uuid" }, json: { type: "boolean" } } });
const runs = Number(values.runs);
const note = (m: string) => process.stderr.write(`bench: ${m}\n`);
const accel = await chooseAccel();
const ex = await loadExercise(values.exercise!);

const cached = await ensureBroken(ex, accel, note);
await rm(cached.dir, { recursive: true, force: true });
const made = await ensureBroken(ex, accel, note);
const start: number[] = [];
const reset: number[] = [];
for (let i = 0; i < runs; i++) {
  let t = Date.now();
  const s = await startSession(ex.name, { accel });
  start.push(Date.now() - t);
  try {
    t = Date.now();
    await resetSession(s.id, { accel });
    reset.push(Date.now() - t);
  } finally {
    await stopSession(s.id);
  }
  note(`round ${i + 1}/${runs}: start ${start.at(-1)} ms, reset ${reset.at(-1)} ms`);
}
const result = { exercise: ex.name, accel: accel.accel, runs, makeBrokenMs: made.madeMs, startMs: median(start), resetMs: median(reset), resetRatio: median(reset) / made.madeMs };
if (values.json) process.stdout.write(JSON.stringify(result) + "\n");
else {
  process.stdout.write(`training, ${ex.name}, ${accel.accel}, median over ${runs} rounds\n`);
  process.stdout.write(`  making the broken state (once)   ${(result.makeBrokenMs / 1000).toFixed(1)} s\n`);
  process.stdout.write(`  start (fork of its checkpoint)   ${(result.startMs / 1000).toFixed(2)} s\n`);
  process.stdout.write(`  reset                            ${(result.resetMs / 1000).toFixed(2)} s\n`);
  process.stdout.write(`  reset / making it                ${result.resetRatio.toFixed(3)}\n`);
}
