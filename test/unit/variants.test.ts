/**
 * Twins declared as variants of their good path, checked against recorded
 * real runs (test/fixtures/runs): the step a twin forks before is a step of
 * its good path's run, and the twin's own run took the same steps up to it.
 * And the call recording and replay that lets a forked run repeat a prefix
 * without doing it, on a plain object.
 */
import { sameStep } from "../../src/suite/variants.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../../src/paths.ts";
import { loadScenario, scenarioNames, validateScenario } from "../../src/scenario/registry.ts";
import { CallLog, recording, replaying } from "../../src/scenario/share.ts";
import type { Scenario, ScenarioReport } from "../../src/scenario/types.ts";
import type { Machine } from "../../src/vm/machine.ts";
import { variantPairs } from "../../src/suite/variants.ts";

const recorded = (name: string): ScenarioReport => JSON.parse(readFileSync(join(projectRoot, "test/fixtures/runs", `${name}.json`), "utf8"));
/** The scenario's own top-level steps in a recorded run: after the runner's (image, warm state, start or fork, seed), before its final observation. */
const ownSteps = (r: ScenarioReport) => r.steps.map((s) => s.name).filter((n) => !/^(image |warm state$|start from the saved state$|boot from disk$|fork: |seed data set$|observe the final state$)/.test(n));

describe("variants of a good path", async () => {
  const all = await Promise.all((await scenarioNames()).map((n) => loadScenario(n)));
  const variants = all.filter((s) => s.variantOf);

  it("the seven twins that part from their good path late are declared variants, and pair with it in one run", () => {
    expect(variants.map((s) => `${s.name} < ${s.variantOf!.scenario}`).sort()).toEqual([
      "ext3-to-btrfs-copy-no-initramfs < ext3-to-btrfs-copy",
      "gpt-boot-restore-no-sgdisk-e < gpt-boot-restore",
      "root-to-lvm-no-relabel < root-to-lvm",
      "root-to-mdraid1-grub-one-disk < root-to-mdraid1",
      "root-to-mdraid1-uefi-esp-one-disk < root-to-mdraid1-uefi",
      "shrink-root-container-first < shrink-root",
      "uefi-nvram-lost-no-fallback < uefi-nvram-lost",
    ]);
    const pairs = variantPairs(all);
    expect([...pairs.entries()].map(([g, ts]) => [g, ts.map((t) => t.name)]).sort()).toEqual([
      ["ext3-to-btrfs-copy", ["ext3-to-btrfs-copy-no-initramfs"]],
      ["gpt-boot-restore", ["gpt-boot-restore-no-sgdisk-e"]],
      ["root-to-lvm", ["root-to-lvm-no-relabel"]],
      ["root-to-mdraid1", ["root-to-mdraid1-grub-one-disk"]],
      ["root-to-mdraid1-uefi", ["root-to-mdraid1-uefi-esp-one-disk"]],
      ["shrink-root", ["shrink-root-container-first"]],
      ["uefi-nvram-lost", ["uefi-nvram-lost-no-fallback"]],
    ]);
    // Alone, a twin pairs with nothing and runs its whole procedure.
    expect(variantPairs(variants).size).toBe(0);
  });

  for (const t of variants) {
    it(`${t.name}: "${t.variantOf!.fromStep}" is a step of ${t.variantOf!.scenario}'s recorded run, and the twin's recorded run took the same steps before it`, () => {
      const good = ownSteps(recorded(t.variantOf!.scenario));
      const twin = ownSteps(recorded(t.name));
      const k = good.indexOf(t.variantOf!.fromStep);
      expect(k, `${t.variantOf!.fromStep} not in ${good.join(" | ")}`).toBeGreaterThan(0);
      expect(twin.slice(0, k)).toEqual(good.slice(0, k));
      // ... and parted there: the twin's next step is another one.
      expect(twin[k]).not.toBe(good[k]);
      // The recording is of a forked run: the steps before the boundary were replayed, none after it.
      const rec = recorded(t.name);
      expect(rec.forkedFrom).toMatchObject({ scenario: t.variantOf!.scenario, beforeStep: { name: t.variantOf!.fromStep, index: k + 1 } });
      expect(rec.steps.filter((x) => x.replayed).map((x) => x.name)).toEqual(["seed data set", ...good.slice(0, k)]);
      expect(rec.boots.map((b) => b.reason).slice(0, 2)).toEqual(["resume", "fork"]);
    });
  }

  it("a variant is refused unless it is a twin naming another scenario and a step, without a fault of its own", () => {
    const base = all.find((s) => s.name === "root-to-lvm-no-relabel")!;
    const bad = (patch: Partial<Scenario>) => () => validateScenario({ ...base, ...patch } as Scenario, "test");
    expect(bad({ kind: "rehearsal", expect: { final: { boot: "ssh", root: "/dev/sda2" } } })).toThrow(/invalid scenario/);
    expect(bad({ variantOf: { scenario: "root-to-lvm-no-relabel", fromStep: "x" } })).toThrow(/invalid scenario/);
    expect(bad({ variantOf: { scenario: "root-to-lvm", fromStep: "" } })).toThrow(/invalid scenario/);
    expect(() => validateScenario(base, "test")).not.toThrow();
    const differentImage = { ...base, image: "debian12-bootdisk" };
    const good = all.find((s) => s.name === "root-to-lvm")!;
    expect(() => variantPairs([good, differentImage])).toThrow(/start from different machines/);
  });
});

/** Something with methods, sync and async, standing in for the object whose calls are recorded. */
class Counter {
  n = 0;
  calls: string[] = [];
  async add(k: number): Promise<number> {
    this.calls.push(`add ${k}`);
    this.n += k;
    return this.n;
  }
  peek(): number {
    return this.n;
  }
  async fail(why: string): Promise<never> {
    this.calls.push(`fail ${why}`);
    throw new Error(why);
  }
}

describe("recording and replaying calls", () => {
  it("a replay answers the recorded calls in order without making them, then goes live", async () => {
    const first = new Counter();
    const log = new CallLog();
    const rec = recording(first as unknown as Machine, log) as unknown as Counter;
    expect(await rec.add(2)).toBe(2);
    await expect(rec.fail("no")).rejects.toThrow("no");
    expect(rec.peek()).toBe(2);
    expect(log.calls.map((c) => c.method)).toEqual(["add", "fail", "peek"]);

    const live = new Counter();
    const { vm, state } = replaying(live as unknown as Machine, log.calls, "test");
    const r = vm as unknown as Counter;
    expect(await r.add(2)).toBe(2);
    await expect(r.fail("no")).rejects.toThrow("no");
    expect(r.peek()).toBe(2);
    // Nothing reached the live object during the replay.
    expect(live.calls).toEqual([]);
    expect(state).toMatchObject({ replayed: 3, live: 0, pending: 0 });
    expect(await r.add(5)).toBe(5);
    expect(live.calls).toEqual(["add 5"]);
    expect(state.live).toBe(1);
  });

  it("a call that differs from the recorded one is an error that names both", async () => {
    const log = new CallLog();
    const rec = recording(new Counter() as unknown as Machine, log) as unknown as Counter;
    await rec.add(1);
    const { vm } = replaying(new Counter() as unknown as Machine, log.calls, "twin x") as unknown as { vm: Counter };
    expect(() => vm.add(2)).toThrow(/call 1 of 1 was add\(2\), recorded was add\(1\)/);
  });

  it("a closed log records nothing more", async () => {
    const log = new CallLog();
    const rec = recording(new Counter() as unknown as Machine, log) as unknown as Counter;
    await rec.add(1);
    log.closed = true;
    await rec.add(1);
    expect(log.calls).toHaveLength(1);
  });
});

describe("a variant's step, whatever the guest called its disks", () => {
  it("matches with the disks' letters left out, and nothing else", () => {
    expect(sameStep("install GRUB on /dev/sda and /dev/sdb, update-grub", "install GRUB on /dev/sdb and /dev/sda, update-grub")).toBe(true);
    expect(sameStep("relabel the old root (new LABEL and UUID)", "relabel the old root (new LABEL and UUID)")).toBe(true);
    expect(sameStep("install GRUB on /dev/sda and /dev/sdb, update-grub", "install GRUB on /dev/sda, update-grub")).toBe(false);
    expect(sameStep("rebuild the initramfs", "rebuild the initramfs with btrfs")).toBe(false);
  });
});
