/**
 * Training mode on real guests, through the real `vmlab train`:
 *
 * - one exercise per way of solving is proven as `vmlab train prove --jobs 2`
 *   proves it (the rescue system, over SSH; the serial console is proven
 *   through the browser, test/vm/train-browser.test.ts; the others are judged
 *   on their recorded real proofs, test/training-proofs.ts):
 *   broken, its check fails with the declared classified boot and evidence;
 *   after the reference solution (over SSH, typed on the serial console, or
 *   in the rescue system), the check passes: a firmware boot to SSH, the
 *   declared root, the data set's checksums unchanged, every command true;
 * - the terminal way a trainee uses it: start, hint, reset, status,
 *   solution, stop, with no QEMU left.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { listExercises } from "../../src/training/exercise.ts";
import type { ProofResult } from "../../src/training/prove.ts";
import type { Exercise, TrainingSession } from "../../src/training/types.ts";
import { qemuProcessesOf } from "../../src/vm/orphans.ts";
import { sessionsDir } from "../../src/training/session.ts";
import { vmlab } from "./helpers.ts";
import { IN_THE_BROWSER, PROVEN_IN_THE_SUITE } from "../training-proofs.ts";

let exercises: Exercise[] = [];
let proofs: ProofResult[] = [];
let proveOutput = "";
beforeAll(async () => {
  exercises = (await listExercises()).filter((e) => PROVEN_IN_THE_SUITE.includes(e.name));
  const r = await vmlab(["train", "prove", ...exercises.map((e) => e.name), "--jobs", "2", "--json"]);
  proveOutput = `${r.stdout}\n${r.stderr}`;
  proofs = JSON.parse(r.stdout.slice(r.stdout.indexOf("["))) as ProofResult[];
}, 90 * 60_000);

describe("every exercise, proven on a real guest", () => {
  it("the browser test proves the one left out here", async () => {
    const browser = await readFile(join(import.meta.dirname, "train-browser.test.ts"), "utf8");
    expect(browser).toContain(`"${IN_THE_BROWSER}"`);
    expect((await listExercises()).map((e) => e.name)).toContain(IN_THE_BROWSER);
  });

  it("broken: the check fails, its boot classified as the exercise declares; solved: the check passes with the root, the data set and every command", () => {
    expect(proofs.map((p) => p.exercise).sort(), proveOutput).toEqual(exercises.map((e) => e.name).sort());
    for (const p of proofs) {
      const ex = exercises.find((e) => e.name === p.exercise)!;
      expect(p.error, `${p.exercise}:\n${p.lines.join("\n")}`).toBeUndefined();
      expect(p.proven, `${p.exercise}:\n${p.lines.join("\n")}`).toBe(true);

      const broken = p.broken!;
      expect(broken.pass).toBe(false);
      expect(broken.boot?.outcome, p.exercise).toBe(ex.broken.outcome);
      // As exercise.md declares it: one evidence line matches.
      if (ex.broken.evidence) expect(broken.boot!.evidence.filter((l) => new RegExp(ex.broken.evidence!).test(l)), `${p.exercise}: ${broken.boot!.evidence.join("\n")}`).not.toEqual([]);
      expect(broken.reasons.length).toBeGreaterThan(0);

      const solved = p.solved!;
      expect(solved.pass, `${p.exercise}: ${solved.reasons.join("; ")}`).toBe(true);
      // The check rebooted through the firmware (from the rescue system: the machine's own boot after it).
      expect(solved.boot).toMatchObject({ outcome: "ssh", via: "firmware" });
      if (ex.check.root) expect(solved.root?.device, p.exercise).toBe(ex.check.root);
      expect(solved.data, p.exercise).toMatchObject({ intact: true });
      expect(solved.data!.summary).toMatch(/^intact: \d+ files match/);
      expect(solved.commands.map((c) => [c.says, c.ok])).toEqual(ex.check.commands.map((c) => [c.says, true]));
    }
    // The specific failure, named: the firmware found nothing to boot, judged on the boot recorded when the broken state was made.
    const mbr = proofs.find((p) => p.exercise === "mbr-446-restore")!.broken!;
    expect(mbr.boot).toMatchObject({ outcome: "no-bootable-device", via: "firmware" });
    expect(mbr.judgedFrom).toBeDefined();
    // A broken machine that still boots is caught by the commands, on a fresh check.
    const snap = proofs.find((p) => p.exercise === "lvm-snapshot-overflow")!.broken!;
    expect(snap.judgedFrom).toBeUndefined();
    expect(snap.boot).toMatchObject({ outcome: "ssh", via: "firmware" });
    expect(snap.commands.find((c) => /no snapshot is left/.test(c.says))?.ok).toBe(false);
  });
});

describe("the terminal way", () => {
  it("start, hint, reset, status, solution and stop; no QEMU left", async () => {
    const start = await vmlab(["train", "start", "stale-fstab-uuid"]);
    expect(start.exitCode, `${start.stdout}\n${start.stderr}`).toBe(0);
    const id = /^session (stale-fstab-uuid-[0-9a-f]{6}) \(token ([A-Za-z0-9_-]{32})\)/m.exec(start.stdout)?.[1];
    expect(id, start.stdout).toBeDefined();
    expect(start.stdout).toContain("A colleague rebuilt `/boot`");
    try {
      // The machine is where the break left it: emergency mode, waiting for root's password on its console.
      expect(await readFile(join(sessionsDir(), id!, "vm.console.log"), "utf8")).toMatch(/Give root password for maintenance/);
      const h1 = await vmlab(["train", "hint", "--session", id!]);
      expect(h1.stdout).toMatch(/^hint 1 of 4: Read what the console says/m);
      const h2 = await vmlab(["train", "hint", "--session", id!]);
      expect(h2.stdout).toMatch(/^hint 2 of 4: Get a shell/m);
      const reset = await vmlab(["train", "reset", "--session", id!]);
      expect(reset.exitCode, reset.stderr).toBe(0);
      expect(reset.stdout).toMatch(new RegExp(`^${id}: back to the broken machine in [\\d.]+ s \\(reset 1\\)`, "m"));
      const status = await vmlab(["train", "status", "--json"]);
      const s = (JSON.parse(status.stdout) as TrainingSession[]).find((x) => x.id === id)!;
      expect(s).toMatchObject({ exercise: "stale-fstab-uuid", state: "running", hintsUsed: 2, resets: 1 });
      // Tokens are never listed.
      expect(status.stdout).not.toContain("token");
      const sol = await vmlab(["train", "solution", "--session", id!]);
      expect(sol.stdout).toMatch(/the reference solution, on the machine's serial console/);
      expect(sol.stdout).toContain("LABEL=boot");
      expect(JSON.parse((await vmlab(["train", "status", "--json"])).stdout).find((x: TrainingSession) => x.id === id).state).toBe("gave-up");
    } finally {
      const stop = await vmlab(["train", "stop", "--session", id!]);
      expect(stop.exitCode, stop.stderr).toBe(0);
    }
    expect(qemuProcessesOf(`${sessionsDir()}/${id}`)).toEqual([]);
    // Bad input: exit 2, nothing started.
    const bad = await vmlab(["train", "start", "../../etc"]);
    expect([bad.exitCode, bad.stderr]).toEqual([2, expect.stringMatching(/is not an exercise name/)]);
    const unknown = await vmlab(["train", "start", "no-such-exercise"]);
    expect([unknown.exitCode, unknown.stderr]).toEqual([2, expect.stringMatching(/no exercise named "no-such-exercise"/)]);
  });
});
