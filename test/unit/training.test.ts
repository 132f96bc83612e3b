/**
 * Training mode's pure logic: every exercise folder loads and declares a
 * check that tells broken from fixed; bad exercise folders are exit 2 naming
 * the file and key; the check's judgement in a trainee's words.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.ts";
import { consoleLines, exerciseHash, listExercises, loadExercise, parseHints, readExercise, validExerciseName } from "../../src/training/exercise.ts";
import { judgeRecorded, type ProofResult } from "../../src/training/prove.ts";
import { IN_THE_BROWSER, PROOFS_FIXTURE, PROVEN_IN_THE_SUITE } from "../training-proofs.ts";
import { brokenMismatch, judgeCheck } from "../../src/training/session.ts";

const own = join(import.meta.dirname, "../../exercises");

async function usage(p: Promise<unknown>): Promise<UsageError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error("expected a UsageError");
}

/** A copy of an exercise with its exercise.md edited. */
function variant(name: string, edit: (md: string) => string): string {
  const dir = join(mkdtempSync(join(tmpdir(), "vmlab-ex-")), name);
  cpSync(join(own, name), dir, { recursive: true });
  writeFileSync(join(dir, "exercise.md"), edit(readFileSync(join(dir, "exercise.md"), "utf8")));
  return dir;
}

describe("the exercises", () => {
  it("all load, each with a story, hints, a break, a declared broken outcome and a solution; at least two need the rescue system", async () => {
    const all = await listExercises();
    expect(all.length).toBeGreaterThanOrEqual(7);
    for (const e of all) {
      expect(e.story.length, e.name).toBeGreaterThan(100);
      expect(e.hints.length, e.name).toBeGreaterThanOrEqual(3);
      expect(e.solve.script.trim(), e.name).not.toBe("");
      // A check that cannot tell broken from fixed is refused at load; here every one has a boot, a root or commands.
      expect(e.check.outcome !== e.broken.outcome || e.check.commands.length > 0 || e.check.root, e.name).toBeTruthy();
    }
    expect(all.filter((e) => e.needsRescue).length).toBeGreaterThanOrEqual(2);
    expect(all.map((e) => e.name)).toEqual(expect.arrayContaining(["initrd-deleted", "stale-fstab-uuid", "mbr-446-restore", "duplicate-root-uuid", "lvm-snapshot-overflow", "root-locked-emergency", "shrink-root", "raid1-grub-one-disk"]));
  });

  it("reads front matter, hints and scripts as written", async () => {
    const e = await loadExercise("stale-fstab-uuid");
    expect(e).toMatchObject({ level: "beginner", image: "debian12-bios", broken: { outcome: "emergency-mode" }, check: { outcome: "ssh", data: true, reboot: true }, solve: { where: "console" } });
    expect(e.hints[0]).toMatch(/^Read what the console says\n/);
    expect(consoleLines(e.solve.script)[0]).toBe("vmlab");
    expect((await loadExercise("initrd-deleted")).break).toEqual({ fault: "missing-initrd", options: {} });
    // A machine built from a captured layout in the exercise's folder; a script, then a fault.
    const raid = await loadExercise("raid1-grub-one-disk");
    expect(raid.image).toBe(`layout:${join(own, "raid1-grub-one-disk", "layout.json")}`);
    expect(raid.break).toMatchObject({ file: join(own, "raid1-grub-one-disk", "break.sh"), fault: "pulled-disk", options: { disk: "sda" } });
    expect(raid.break.script).toMatch(/dd if=\/dev\/zero of="\$second" bs=440 count=1/);
  });

  it("bad names and bad folders are exit 2, naming the file and the key", async () => {
    expect(validExerciseName("../etc")).toBe(false);
    expect((await usage(loadExercise("../etc/passwd"))).message).toMatch(/is not an exercise name/);
    expect((await usage(loadExercise("no-such-exercise"))).hint).toMatch(/the exercises are: .*stale-fstab-uuid/);
    const cases: [string, (md: string) => string, RegExp][] = [
      ["stale-fstab-uuid", (md) => md.replace("outcome: emergency-mode", "outcome: emergency"), /broken\.outcome: "emergency" is not a boot outcome/],
      ["stale-fstab-uuid", (md) => md.replace("level: beginner", "level: guru"), /level: "guru" is not beginner/],
      ["stale-fstab-uuid", (md) => md.replace("title:", "colour: red\ntitle:"), /colour: unknown key/],
      ["stale-fstab-uuid", (md) => md.replace("where: console", "where: ssh"), /solve\.where: "ssh" is not guest, rescue or console/],
      ["initrd-deleted", (md) => md.replace("fault: missing-initrd", "fault: gremlins"), /break\.fault: unknown fault "gremlins"/],
      ["raid1-grub-one-disk", (md) => md.replace("layout: layout.json", "layout: ../layout.json"), /layout: "\.\.\/layout\.json" must be a file in the exercise's folder/],
      ["raid1-grub-one-disk", (md) => md.replace("layout: layout.json", "layout: layout.json\nimage: debian12-bios"), /layout: give image or layout, not both/],
      ["raid1-grub-one-disk", (md) => md.replace("layout: layout.json", "layout: web01.json"), /layout: .*web01\.json does not exist/],
      ["raid1-grub-one-disk", (md) => md.replace("  fault: pulled-disk\n  options: { disk: sda }\n", "  options: { disk: sda }\n"), /break\.options: options go with a fault/],
      ["stale-fstab-uuid", (md) => md.replace("script: break.sh", "script: ../x.sh"), /break\.script: "\.\.\/x\.sh" must be a file in the exercise's folder/],
      ["stale-fstab-uuid", (md) => md.replace("tags: [", "tags: [ [").replace("console]", "console"), /front matter is not YAML/],
      // A check that would pass the broken machine: same outcome, nothing else checked.
      ["lvm-snapshot-overflow", (md) => md.replace(/  data: true\n  commands:[\s\S]*?\nsolve:/, "  data: false\nsolve:"), /a fixed machine would end its boot as ssh, like the broken one/],
    ];
    for (const [name, edit, re] of cases) {
      const dir = variant(name, edit);
      const err = await usage(readExercise(dir));
      expect(err.message, String(re)).toMatch(re);
      expect(err.message).toContain(join(dir, "exercise.md"));
    }
  });

  it("hints are the ## sections of hints.md, in order", () => {
    expect(parseHints("intro\n## One\nfirst\n\n## Two\nsecond\n")).toEqual(["One\nfirst", "Two\nsecond"]);
    expect(parseHints("no sections")).toEqual([]);
  });
});

describe("the check's judgement", () => {
  it("a broken boot is not yet fixed, said in a trainee's words; a fixed one with all its facts passes", async () => {
    const e = await loadExercise("initrd-deleted");
    // The boot the lab recorded when it made this exercise's broken state (classifier output on a real console log).
    const panic = { outcome: "kernel-panic", detail: "no-root", via: "firmware", evidence: ["VFS: Cannot open root device \"UUID=...\" or unknown-block(0,0): error -6", "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"], durationMs: 9000 };
    expect(brokenMismatch(e, panic)).toBeUndefined();
    const a = judgeRecorded(e, panic);
    expect(a.pass).toBe(false);
    expect(a.summary).toMatch(/^not yet: the kernel started but could not go on \(a kernel panic\) \(no-root\); a fixed machine boots and answers/);
    expect(a.reasons).toContain("not yet true: the running kernel has its initramfs in /boot");

    const fixed = judgeCheck(e, {
      boot: { outcome: "ssh", via: "firmware", evidence: ["sshd answered"], durationMs: 40_000 },
      root: { device: "/dev/sda2", fstype: "ext3" },
      data: { intact: true, summary: "intact: 204 files match" },
      commands: e.check.commands.map((c) => ({ ...c, ok: true, output: "" })),
    });
    expect(fixed).toEqual([]);
    const wrongRoot = judgeCheck(e, { boot: { outcome: "ssh", via: "firmware", evidence: [], durationMs: 1 }, root: { device: "/dev/mapper/sys-rootcopy", fstype: "ext3" }, data: { intact: false, summary: "2 files changed" }, commands: [] });
    expect(wrongRoot).toEqual(["/ is mounted from /dev/mapper/sys-rootcopy, and it should be /dev/sda2", "the data in /srv/vmlab-data is not as it was: 2 files changed"]);
  });

  it("a break that left the machine otherwise than declared is named", async () => {
    const e = await loadExercise("stale-fstab-uuid");
    expect(brokenMismatch(e, { outcome: "ssh", evidence: [] })).toBe("its boot ended as ssh, not emergency-mode as exercise.md declares");
    expect(brokenMismatch(e, { outcome: "emergency-mode", evidence: ["You are in emergency mode."] })).toMatch(/no evidence line matches/);
  });
});

describe("the exercises judged on their recorded real proofs (test/fixtures/training/proofs.json)", () => {
  const recorded = JSON.parse(readFileSync(join(own, "..", PROOFS_FIXTURE), "utf8")) as ProofResult[];

  it("every exercise is proven somewhere: in the VM suite, through the browser, or by a recorded proof of its current folder", async () => {
    const all = (await listExercises()).map((e) => e.name).sort();
    // An exercise proven in the suite may also keep its recording (mbr-446-restore was judged on one before).
    const covered = [...new Set([...PROVEN_IN_THE_SUITE, IN_THE_BROWSER, ...recorded.map((p) => p.exercise)])].sort();
    expect(covered).toEqual(all);
    for (const p of recorded) {
      const ex = await loadExercise(p.exercise);
      expect(p.exerciseHash, `${p.exercise} changed since its proof was recorded: record it again (see test/training-proofs.ts)`).toBe(await exerciseHash(ex.dir));
    }
  });

  it("broken, each check failed with the declared classified boot and evidence; solved, it passed with the root, the data set and every command", async () => {
    for (const p of recorded) {
      const ex = await loadExercise(p.exercise);
      expect(p.error, `${p.exercise}:\n${p.lines.join("\n")}`).toBeUndefined();
      expect(p.proven, p.exercise).toBe(true);
      const broken = p.broken!;
      expect(broken.pass).toBe(false);
      expect(broken.boot?.outcome, p.exercise).toBe(ex.broken.outcome);
      // As exercise.md declares it: one evidence line matches.
      if (ex.broken.evidence) expect(broken.boot!.evidence.filter((l) => new RegExp(ex.broken.evidence!).test(l)), `${p.exercise}: ${broken.boot!.evidence.join("\n")}`).not.toEqual([]);
      expect(broken.reasons.length).toBeGreaterThan(0);
      // A broken machine that boots like a fixed one failed on a declared command, not on something else.
      if (ex.broken.outcome === ex.check.outcome) expect(broken.commands.some((c) => !c.ok), p.exercise).toBe(true);
      // The judgement, made again from the recorded observations, is the recorded one.
      expect(judgeCheck(ex, broken).length, p.exercise).toBeGreaterThan(0);
      const solved = p.solved!;
      expect(solved.pass, `${p.exercise}: ${solved.reasons.join("; ")}`).toBe(true);
      expect(judgeCheck(ex, solved), p.exercise).toEqual([]);
      expect(solved.boot).toMatchObject({ outcome: "ssh", via: "firmware" });
      if (ex.check.root) expect(solved.root?.device, p.exercise).toBe(ex.check.root);
      expect(solved.data, p.exercise).toMatchObject({ intact: true });
      expect(solved.data!.summary).toMatch(/^intact: \d+ files match/);
      expect(solved.commands.map((c) => [c.says, c.ok])).toEqual(ex.check.commands.map((c) => [c.says, true]));
    }
    // The specific failures, named: emergency mode with root locked, a panic without root, a login prompt off the network.
    const outcome = (n: string) => recorded.find((p) => p.exercise === n)?.broken?.boot;
    expect(outcome("root-locked-emergency")).toMatchObject({ outcome: "emergency-mode", detail: "root-locked" });
    expect(outcome("initrd-deleted")).toMatchObject({ outcome: "kernel-panic", detail: "no-root" });
    expect(outcome("network-config-wrong-nic")?.outcome).toBe("login-prompt");
    // A broken machine that still boots is caught by the commands, on a fresh check.
    const dup = recorded.find((p) => p.exercise === "duplicate-root-uuid")!.broken!;
    expect(dup.judgedFrom).toBeUndefined();
    expect(dup.commands.find((c) => /exactly one filesystem has the root's UUID/.test(c.says))?.ok).toBe(false);
  });
});
