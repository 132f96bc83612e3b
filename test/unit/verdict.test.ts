/**
 * The verdict on recorded observations. test/fixtures/runs/ holds the
 * report.json of real runs of every scenario (recorded with
 * `VMLAB_TEST_REPORTS=DIR npm test`, see test/fixtures/runs/README.md).
 * Each is judged again with the scenario's declaration as it is now:
 *  - every scenario's own recorded run passes;
 *  - every twin's declared failure, judged against the observations of its
 *    good path (the run where the pitfall was avoided), fails, naming what
 *    was seen: a twin cannot pass a machine that came back;
 *  - the rules that no recording shows (a timeout, a login to the old
 *    system, an error) are checked on small observations.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadScenario } from "../../src/scenario/registry.ts";
import { loadRunbook } from "../../src/runbook/scenario.ts";
import type { ScenarioReport } from "../../src/scenario/types.ts";
import { expectationProblems, type Expectation } from "../../src/verdict/expect.ts";
import { judge, type Observations } from "../../src/verdict/judge.ts";
import { expectationTable, tableInReadme } from "../../src/verdict/table.ts";
import { scenarioNames } from "../../src/scenario/registry.ts";
import { projectRoot } from "../../src/paths.ts";

const DIR = join(import.meta.dirname, "..", "fixtures", "runs");
const recorded = (name: string): ScenarioReport => JSON.parse(readFileSync(join(DIR, `${name}.json`), "utf8"));
/** Recorded scenario runs, by scenario name (the sweep's rows are named sweep-<scenario>-<fault>-at-<K>). */
const recordings = readdirSync(DIR).filter((f) => f.endsWith(".json") && !f.startsWith("sweep-")).map((f) => f.slice(0, -5));
const obs = (r: ScenarioReport, kind: "rehearsal" | "twin"): Observations => ({ ...r, kind });

/** Each twin and the good path whose recorded run avoided its pitfall (or never had the fault). */
const GOOD_PATH: Record<string, string> = {
  "root-to-lvm-no-relabel": "root-to-lvm",
  "root-to-mdraid1-grub-one-disk": "root-to-mdraid1",
  "ext3-to-btrfs-copy-no-initramfs": "ext3-to-btrfs-copy",
  "shrink-root-container-first": "shrink-root",
  "mbr-446-pitfall": "mbr-boot-restore",
  "lvm-snapshot-overflow": "lvm-snapshot-rollback",
  "missing-initrd-grub-only": "missing-initrd",
  "power-cut": "root-to-lvm",
  "busy-root": "root-to-lvm",
  "io-errors": "root-to-lvm",
  "dropped-ssh": "root-to-lvm",
  "pulled-disk": "smoke",
  "missing-initrd": "smoke",
  "stale-fstab": "smoke",
  "root-to-mdraid1-uefi-esp-one-disk": "root-to-mdraid1-uefi",
  "uefi-nvram-lost-no-fallback": "uefi-nvram-lost",
  "gpt-boot-restore-no-sgdisk-e": "gpt-boot-restore",
};

describe("every scenario's recorded run, judged again with today's declaration", () => {
  it("has a recording for every scenario", async () => {
    expect(recordings.sort()).toEqual((await scenarioNames()).sort());
  });

  for (const name of recordings) {
    it(`${name}: passes on its own recorded observations`, async () => {
      const s = await loadScenario(name);
      const r = recorded(name);
      const v = judge(s.expect, obs(r, s.kind ?? "rehearsal"));
      expect(v.reasons.join("\n")).not.toMatch(/not observed|not a proven new boot/);
      expect(v.verdict, [...v.reasons, ...v.observed].join("\n")).toBe("pass");
      // The recording is a real run: its verdict then was the same.
      expect(r.verdict).toBe("pass");
    });
  }
});

describe("a twin cannot pass the machine its good path left", () => {
  for (const [twin, good] of Object.entries(GOOD_PATH)) {
    it(`${twin}, judged on ${good}'s observations: fail, naming what was seen`, async () => {
      const s = await loadScenario(twin);
      const v = judge({ failure: s.expect!.failure }, obs(recorded(good), "twin"));
      expect(v.verdict, v.reasons.join("\n")).toBe("fail");
      expect(v.reasons[0]).toBe("the predicted failure was not observed");
      // One line per alternative, each saying what did not hold.
      expect(v.reasons.slice(1)).toHaveLength(s.expect!.failure!.length);
      expect(v.observed.length).toBeGreaterThan(0);
    });
  }

  it("power-cut: a cut that falls after the copy (the sweep's row before `rebuild the initramfs`) is no proof, however well the machine boots", async () => {
    const s = await loadScenario("power-cut");
    const row = recorded("sweep-root-to-lvm-power-cut-at-9");
    expect(row.probe).toMatchObject({ procedure: "stopped", boot: { outcome: "ssh" }, root: { which: "new" }, data: { state: "intact" } });
    const v = judge(s.expect, obs(row, "twin"));
    expect(v.verdict).toBe("fail");
    expect(v.reasons.join("\n")).toMatch(/bytes written at the power-cut .* were not recorded|not inside it/);
    expect(v.reasons.join("\n")).toMatch(/\/ was \/dev\/mapper\/sys-root, not \/dev\/sda2/);
  });

  it("power-cut: the cut that did not stop the machine fails, whatever the boot", async () => {
    const s = await loadScenario("power-cut");
    const r = recorded("power-cut");
    const noop = structuredClone(r);
    const f = noop.faults!.find((x) => x.fault === "power-cut")!;
    // What the lab records when QEMU is still there after the cut.
    f.details.stoppedProcedure = false;
    f.details.stopObservation = "QEMU still runs";
    const v = judge(s.expect, obs(noop, "twin"));
    expect(v.verdict).toBe("fail");
    expect(v.reasons.join("\n")).toContain("the power-cut fault did not stop the procedure: QEMU still runs");
  });
});

describe("rules no recording shows", () => {
  const base: Observations = { kind: "twin", steps: [], boots: [], facts: {} };
  const panic: Expectation = { failure: [{ says: "panic", boot: { outcome: "kernel-panic", detail: "no-root", evidence: "VFS: Unable to mount root fs" } }] };
  const bootOf = (o: Partial<Observations["boots"][number]>) => ({ machine: "vm", via: "firmware", reason: "reboot", outcome: "kernel-panic", detail: "no-root", evidence: ["Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"], newBoot: { banner: true, proven: true, why: "the firmware's banner" }, ...o });

  it("a timeout is never the predicted failure", () => {
    const v = judge(panic, { ...base, boots: [bootOf({ outcome: "timeout", detail: "kernel", evidence: ["Loading initial ramdisk ..."] })] });
    expect(v.verdict).toBe("fail");
    expect(v.reasons[1]).toContain("no boot of vm ended as kernel-panic (seen: timeout (kernel))");
    expect(expectationProblems("twin", { failure: [{ says: "x", boot: { outcome: "timeout" } }] })).toContain('expect.failure[0]: a boot ending as "timeout" is not a specific failure');
    expect(expectationProblems("twin", { failure: [{ says: "x", boot: { outcome: "ssh" } }] })).toContain("expect.failure[0]: a boot to ssh is a failure only with the wrong root or a recorded fact");
    expect(expectationProblems("twin", { failure: [{ says: "x", boot: { outcome: "kernel-panic" } }] })).toContain("expect.failure[0]: a failed boot needs an evidence pattern");
    expect(expectationProblems("twin", { failure: [{ says: "x", boot: { outcome: "kernel-panic", evidence: ".*" } }] })).toContain('expect.failure[0]: the pattern ".*" matches anything');
    expect(expectationProblems("twin", undefined)).toEqual(["a twin must declare `expect.failure`: the specific failure it predicts"]);
  });

  it("the right outcome with other evidence or another detail does not pass", () => {
    expect(judge(panic, { ...base, boots: [bootOf({ detail: "no-init", evidence: ["Kernel panic - not syncing: No working init found."] })] }).reasons[1]).toContain("detail is no-init, not no-root");
    expect(judge(panic, { ...base, boots: [bootOf({ evidence: ["Kernel panic - not syncing: Attempted to kill init!"] })] }).reasons[1]).toContain("evidence does not match");
    expect(judge(panic, { ...base, boots: [bootOf({})] }).verdict).toBe("pass");
  });

  it("a boot that is not proven new does not count: no banner, or the boot_id from before", () => {
    const v = judge(panic, { ...base, boots: [bootOf({ newBoot: { banner: false, proven: false, why: "the firmware's banner is not in this boot's slice of the console" } })] });
    expect(v.verdict).toBe("fail");
    expect(v.reasons[1]).toContain("not a proven new boot: the firmware's banner is not in this boot's slice");
    const final: Expectation = { final: { boot: "ssh", root: "/dev/sda2", data: "intact" } };
    const oldLogin = judge(final, {
      ...base,
      kind: "rehearsal",
      final: { machine: "vm", running: true, lastBoot: { via: "firmware", reason: "reboot", outcome: "ssh", newBootProven: false }, root: { device: "/dev/sda2", fstype: "ext3" }, data: { intact: true, summary: "intact" } },
    });
    expect(oldLogin.verdict).toBe("fail");
    expect(oldLogin.reasons).toContain("the last boot to ssh is not a proven new boot (no firmware banner in its console, or the same boot_id as before)");
  });

  it("an error fails the run whatever else was seen, and says where", () => {
    const v = judge(panic, { ...base, boots: [bootOf({})], error: { message: "command failed in guest vm\n$ lvcreate", step: "create LV" } });
    expect(v.verdict).toBe("fail");
    expect(v.reasons[0]).toBe('the run stopped with an error in step "create LV": command failed in guest vm');
  });

  it("a failed step counts with its command's stderr, and only with the declared error", () => {
    const e: Expectation = { failure: [{ says: "busy", step: { name: "remount", error: "busy" } }] };
    const step = { name: "stop writers on / and remount it read-only", status: "failed" as const, error: "command failed in guest vm", failure: { command: "mount -o remount,ro /", exitCode: 32, stderr: "mount: /: mount point is busy." } };
    expect(judge(e, { ...base, steps: [step] }).verdict).toBe("pass");
    const other = judge(e, { ...base, steps: [{ ...step, failure: { ...step.failure, stderr: "ssh: connect to host 127.0.0.1 port 2222: Connection refused" } }] });
    expect(other.verdict).toBe("fail");
    expect(other.reasons[1]).toContain("failed, but not with /busy/");
  });

  it("a rehearsal whose data set changed fails, with the difference", () => {
    const v = judge(
      { final: { boot: "ssh", root: "/dev/mapper/sys-root", data: "intact" } },
      { ...base, kind: "rehearsal", final: { machine: "vm", running: true, lastBoot: { via: "firmware", reason: "reboot", outcome: "ssh", newBootProven: true }, root: { device: "/dev/mapper/sys-root", fstype: "ext3" }, data: { intact: false, summary: "1 missing, 0 changed, 0 unexpected\nmissing: file ./big.bin" } } },
    );
    expect(v.verdict).toBe("fail");
    expect(v.reasons).toContain("the data set is not intact: 1 missing, 0 changed, 0 unexpected; missing: file ./big.bin");
  });
});

describe("the README's pass-conditions table", () => {
  it("is the one the declarations make", async () => {
    const scenarios = await Promise.all((await scenarioNames()).map((n) => loadScenario(n)));
    const readme = readFileSync(join(projectRoot, "README.md"), "utf8");
    expect(tableInReadme(readme), "run `vmlab list --markdown` and paste it between the README's markers").toBe(expectationTable(scenarios));
  });
});

describe("the runbooks in runbooks/, judged on their recorded runs (test/fixtures/runs/runbooks)", () => {
  const RB = join(DIR, "runbooks");
  const rbRecorded = (name: string): ScenarioReport => JSON.parse(readFileSync(join(RB, `${name}.json`), "utf8"));
  const PAIRS: [twin: string, good: string][] = [
    ["root-to-lvm-no-relabel.md", "root-to-lvm.md"],
    ["lvm-snapshot-too-small.md", "lvm-snapshot-rollback.md"],
    ["root-to-raid1-grub-one-disk.md", "root-to-raid1.md"],
  ];
  for (const [twinFile, goodFile] of PAIRS) {
    it(`${goodFile} and ${twinFile} each pass on their own recording; the twin fails on the good path's`, async () => {
      const good = await loadRunbook(join(projectRoot, "runbooks", goodFile));
      const twin = await loadRunbook(join(projectRoot, "runbooks", twinFile));
      for (const s of [good, twin]) {
        const v = judge(s.expect, obs(rbRecorded(s.name), s.kind ?? "rehearsal"));
        expect(v.verdict, [...v.reasons, ...v.observed].join("\n")).toBe("pass");
      }
      const v = judge({ failure: twin.expect!.failure }, obs(rbRecorded(good.name), "twin"));
      expect(v.verdict, v.reasons.join("\n")).toBe("fail");
      expect(v.reasons[0]).toBe("the predicted failure was not observed");
      // And the good path's promise does not hold on the twin's machine (where the twin stopped early, it is not even observed).
      const back = judge(good.expect, obs(rbRecorded(twin.name), "rehearsal"));
      if (twin.name.endsWith("too-small")) expect(back.verdict).toBe("fail");
    });
  }

  it("the RAID1 runbook came up on /dev/md1 from each disk alone, degraded, with the data intact; its twin's new disk had no boot code without the old one", () => {
    const good = rbRecorded("runbook-root-to-raid1");
    expect(good.verdict).toBe("pass");
    const blocks = (good.facts.runbook as { blocks: { step: string; stdoutTail?: string; boot?: { outcome: string; without?: string[] } }[] }).blocks;
    // The two boots the runbook asks for, each without one disk, then the lab's own (the last disk pulled stays out).
    expect(blocks.filter((b) => b.boot).map((b) => [b.step, b.boot!.outcome, b.boot!.without])).toEqual([
      ["Prove it: boot from the new disk alone", "ssh", ["sda"]],
      ["Prove it: boot from the old disk alone", "ssh", ["sdb"]],
    ]);
    expect(good.boots.map((b) => [b.reason, b.via, b.outcome])).toEqual([
      ["resume", "saved-state", "ssh"],
      ["reboot", "firmware", "ssh"],
      ["start", "firmware", "ssh"],
      ["reboot", "firmware", "ssh"],
    ]);
    for (const b of good.boots.slice(1)) expect(b.newBoot?.proven).toBe(true);
    // After each single-disk boot: / and /boot on the arrays, both arrays with one of two members.
    for (const step of ["Check the machine that came up on the new disk", "Check the machine that came up on the old disk"]) {
      const out = blocks.find((b) => b.step === step)!.stdoutTail!;
      expect(out).toMatch(/^\/dev\/md1\n\/dev\/md0\n/);
      expect(out.match(/\[2\/1\] \[(U_|_U)\]/g)).toHaveLength(2);
    }
    expect(good.final).toMatchObject({ root: { device: "/dev/md1", fstype: "ext3" }, data: { intact: true } });

    const twin = rbRecorded("runbook-root-to-raid1-grub-one-disk");
    expect([twin.kind, twin.verdict]).toEqual(["twin", "pass"]);
    expect(twin.forkedFrom?.beforeStep.name).toBe("Install GRUB on both disks");
    expect(twin.boots.at(-1)).toMatchObject({ via: "firmware", outcome: "no-bootable-device", detail: "no-boot-code", newBoot: { proven: true } });
    expect(twin.boots.at(-1)!.evidence.join("\n")).toMatch(/Booting from Hard Disk/);
    expect(twin.facts.stoppedAtBlock).toMatchObject({ step: "Prove it: boot from the new disk alone" });
  });

  it("the snapshot runbook rolled the upgrade back with lvconvert --merge and rebooted on its root; its twin's 4M snapshot overflowed and the rollback was refused", () => {
    const good = rbRecorded("runbook-lvm-snapshot-rollback");
    expect(good.verdict).toBe("pass");
    // The runbook's own check (sha256sum -c against the sums taken before the upgrade) passed in the rollback block.
    const rollback = good.steps.find((s) => s.name === "The upgrade went wrong: roll it back")!;
    expect(rollback.status).toBe("passed");
    const blocks = (good.facts.runbook as { blocks: { step: string; stdoutTail?: string }[] }).blocks;
    expect(blocks.find((b) => b.step === rollback.name)?.stdoutTail).toMatch(/database: OK\nindex\.html: OK/);
    expect(good.boots.at(-1)).toMatchObject({ via: "firmware", reason: "reboot", outcome: "ssh", newBoot: { proven: true } });
    expect(good.final).toMatchObject({ root: { device: "/dev/sda2" }, data: { intact: true } });

    const small = rbRecorded("runbook-lvm-snapshot-too-small");
    expect([small.kind, small.verdict]).toEqual(["twin", "pass"]);
    expect(small.forkedFrom?.beforeStep.name).toBe("Take the snapshot");
    const refused = small.steps.find((s) => s.name === "The upgrade went wrong: roll it back")!;
    expect(refused.status).toBe("failed");
    expect(refused.failure?.command).toBe("lvconvert --merge sys/website-before-upgrade");
    expect(`${refused.error}\n${refused.failure?.stderr}`).toMatch(/[Ii]nvalid|Unable to merge/);
    // The rehearsal stopped there, as a person would: no reboot after the failed rollback.
    expect(small.steps.at(-1)!.name).not.toMatch(/^reboot/);
    expect(small.facts.stoppedAtBlock).toMatchObject({ step: "The upgrade went wrong: roll it back" });
  });
});


describe("the example layouts' runbooks (examples/layouts/), judged on their recorded rehearsals (test/fixtures/runs/layouts)", () => {
  const LR = join(DIR, "layouts");
  const EX = join(projectRoot, "examples", "layouts");
  const lrRecorded = (name: string): ScenarioReport => JSON.parse(readFileSync(join(LR, `${name}.json`), "utf8"));

  it("each runbook passes on its own recording, on the machine built from its layout", async () => {
    for (const file of ["raid1-lvm/move-var.md", "raid1-lvm/move-var-stale-fstab.md", "xfs-lvm/shrink-root.md", "gpt-home/grow-home.md", "gpt-home/grow-home-stale-fstab.md"]) {
      const s = await loadRunbook(join(EX, file));
      const r = lrRecorded(s.name);
      expect(r.image?.name, file).toBe(`layout-${file.split("/")[0]}`);
      const v = judge(s.expect, obs(r, s.kind ?? "rehearsal"));
      expect(v.verdict, `${file}: ${[...v.reasons, ...v.observed].join("\n")}`).toBe("pass");
    }
  });

  it("each twin fails on its good path's recording: the failure it predicts is not there", async () => {
    for (const [twinFile, goodFile] of [
      ["raid1-lvm/move-var-stale-fstab.md", "raid1-lvm/move-var.md"],
      ["gpt-home/grow-home-stale-fstab.md", "gpt-home/grow-home.md"],
    ]) {
      const twin = await loadRunbook(join(EX, twinFile!));
      const good = await loadRunbook(join(EX, goodFile!));
      const v = judge({ failure: twin.expect!.failure }, obs(lrRecorded(good.name), "twin"));
      expect(v.verdict, twinFile).toBe("fail");
      expect(v.reasons[0]).toBe("the predicted failure was not observed");
    }
  });

  it("move-var: /var on var_new after a proven firmware boot with both arrays whole; its twin left fstab alone and /var came back on the old volume", () => {
    const g = lrRecorded("web01-move-var");
    const blocks = (g.facts.runbook as { blocks: { step: string; stdoutTail?: string }[] }).blocks;
    const check = blocks.find((b) => b.step === "Check that /var came up on the new volume")?.stdoutTail ?? "";
    expect(check).toMatch(/^\/dev\/mapper\/web01--vg-var_new$/m);
    expect(check.match(/\[UU\]/g)).toHaveLength(2);
    expect(g.final).toMatchObject({ root: { device: "/dev/mapper/web01--vg-root" }, data: { intact: true } });
    const t = lrRecorded("web01-move-var-stale-fstab");
    expect(t.forkedFrom?.beforeStep.name).toBe("Point fstab at the new volume, by UUID as the installer does");
    const failed = t.steps.find((s) => s.name === "Check that /var came up on the new volume")!;
    expect([failed.status, failed.failure?.stdout?.trim()]).toEqual(["failed", "/dev/mapper/web01--vg-var"]);
  });

  it("grow-home: /home grew over the swap partition and swap is the file after a proven firmware boot; its twin forgot fstab and the boot timed out on the old swap's UUID", async () => {
    const good = await loadRunbook(join(EX, "gpt-home/grow-home.md"));
    const twin = await loadRunbook(join(EX, "gpt-home/grow-home-stale-fstab.md"));
    const g = lrRecorded(good.name);
    const blocks = (g.facts.runbook as { blocks: { step: string; stdoutTail?: string }[] }).blocks;
    expect(blocks.find((b) => b.step === "Grow /home over the freed space")?.stdoutTail).toMatch(/\/dev\/sda3\s+2\.9G/);
    expect(blocks.find((b) => b.step === "Check /home and swap after the reboot")?.stdoutTail).toMatch(/\/swapfile\s+512M/);
    expect(g.boots.filter((b) => b.via === "firmware").every((b) => b.outcome === "ssh" && b.newBoot?.proven)).toBe(true);
    expect(g.final).toMatchObject({ root: { device: "/dev/sda2", fstype: "ext4" }, data: { intact: true } });

    const t = lrRecorded(twin.name);
    expect(t.forkedFrom?.beforeStep.name).toBe("Point fstab at the swap file");
    const check = t.steps.find((s) => s.name === "Check /home and swap after the reboot")!;
    expect(check.status).toBe("failed");
    expect(check.failure?.stderr).toMatch(/Timed out waiting for device .*c1bd3096-64db-46c6-8fcc-708537b09b48/);
    // The twin's prediction does not hold on the good path's machine: it saw no such failure.
    const v = judge({ failure: twin.expect!.failure }, obs(g, "twin"));
    expect(v.verdict).toBe("fail");
    expect(v.reasons[0]).toBe("the predicted failure was not observed");
  });
});

describe("mbr-446-pitfall, judged on its recorded real run (test/fixtures/runs): the VM test runs its good path only", () => {
  interface SwapFact {
    device: string;
    active: string;
  }
  it("only 446 bytes leave no bootable disk (classified); the whole backup from the host boots", () => {
    const report = recorded("mbr-446-pitfall");
    expect([report.kind, report.verdict]).toEqual(["twin", "pass"]);
    expect(report.boots.map((b) => [b.reason, b.via])).toEqual([
      ["resume", "saved-state"],
      ["reboot", "firmware"],
      ["start", "firmware"],
    ]);
    const failed = report.boots[1]!;
    expect(failed.outcome).toBe("no-bootable-device");
    expect(failed.reached.grub).toBe(false);
    expect(failed.evidence.join("\n")).toMatch(/No bootable device/);
    const f = report.facts as Record<string, any>;
    expect(f.after446.signature).toBe("00 00");
    expect(f.after446.partitionTable).toMatch(/^none/);
    expect(f.observedFailure).toMatchObject({ kind: "boot", outcome: "no-bootable-device" });
    expect(f.refusedSmaller).toMatchObject({ untouched: true });
    expect(f.refusedSmaller.message).toMatch(/too small/);
    expect(f.hostRestore.verified).toBe(true);
    expect(report.boots[2]!.outcome).toBe("ssh");
    expect(report.boots[2]!.reached).toMatchObject({ firmware: true, grub: true, kernel: true });
    expect(f.mountsAfter).toMatchObject({ bootDisk: "newboot", rootDisk: "sdb" });
    expect((f.swap as SwapFact).active).toContain((f.swap as SwapFact).device);
    expect(f.data).toMatchObject({ intact: true, missing: [], changed: [] });
  });
});

describe("the UEFI RAID1 migration, judged on its recorded real runs (test/fixtures/runs): the VM suite runs the uefi-nvram-lost pair only", () => {
  it("root-to-mdraid1-uefi: a firmware reboot on the arrays, sdb alone through its own entry, sda alone, and sda alone with the NVRAM lost", () => {
    const r = recorded("root-to-mdraid1-uefi");
    expect([r.kind ?? "rehearsal", r.verdict, r.image?.firmware]).toEqual(["rehearsal", "pass", "uefi"]);
    expect(r.boots.map((b) => `${b.reason}/${b.via}/${b.outcome}`)).toEqual([
      "resume/saved-state/ssh",
      "reboot/firmware/ssh",
      "reboot/firmware/ssh",
      "start/firmware/ssh",
      "power-on with an empty NVRAM/firmware/ssh",
    ]);
    for (const b of r.boots.slice(1)) expect(b.newBoot, b.reason).toMatchObject({ banner: true });
    const f = r.facts as Record<string, any>;
    expect(f.root).toMatchObject({ device: "/dev/md1", fstype: "ext3" });
    // One entry per disk's ESP, each naming its own partition GUID.
    const entries = f.bootEntries as string[];
    expect(entries.map((e) => e.replace(/^Boot[0-9A-F]{4} /, "").replace(/: .*/, ""))).toEqual(["debian", "debian (sdb)"]);
    const guids = entries.map((e) => /HD\(1,GPT,([0-9a-f-]+),/.exec(e)?.[1]);
    expect(new Set(guids).size).toBe(2);
    const single = f.singleDiskBoots as { without: string; option: string; root: string; arrays: string[]; data: string }[];
    expect(single.map((s) => s.without)).toEqual(["sda", "sdb", "sdb, with an empty NVRAM"]);
    expect(single[0]!.option).toMatch(/"debian \(sdb\)"$/);
    expect(single[2]!.option).toMatch(/"UEFI QEMU QEMU HARDDISK"$/);
    for (const s of single) {
      expect(s.root).toBe("/dev/md1");
      expect(s.arrays).toHaveLength(2);
      for (const a of s.arrays) expect(a).toMatch(/\[(U_|_U)\]$/);
      expect(s.data).toMatch(/^intact, \d+ files$/);
    }
  });

  it("root-to-mdraid1-uefi-esp-one-disk: forked before the GRUB step; with sda pulled OVMF finds nothing to load on sdb and starts its shell", () => {
    const r = recorded("root-to-mdraid1-uefi-esp-one-disk");
    expect([r.kind, r.verdict]).toEqual(["twin", "pass"]);
    expect(r.forkedFrom?.scenario).toBe("root-to-mdraid1-uefi");
    expect(r.forkedFrom?.beforeStep.name).toMatch(/^install GRUB on the ESP of/);
    const last = r.boots.at(-1)!;
    expect([last.via, last.outcome, last.detail]).toEqual(["firmware", "uefi-shell", "fallback"]);
    expect(last.evidence.join("\n")).toMatch(/BdsDxe: failed to load Boot[0-9A-F]{4} .*Scsi\(0x1,0x0\): Not Found/);
    expect(last.evidence.join("\n")).toMatch(/Shell>/);
  });
});

describe("the GPT restore onto a larger disk, judged on its recorded real runs (test/fixtures/runs)", () => {
  it("gpt-boot-restore: the copy's GPT ends at the old end until sgdisk -e; then the PV grows and the restored disk boots through the unchanged entry", () => {
    const f = recorded("gpt-boot-restore").facts as Record<string, any>;
    expect(f.sourceGpt).toEqual({ diskSectors: 16777216, firstUsable: 2048, lastUsable: 16777182 });
    expect(f.restoredGpt).toMatchObject({ diskSectors: 25165824, lastUsable: 16777182 });
    expect(f.restoredGpt.verify.join(" ")).toMatch(/doesn't reside/);
    expect(f.movedGpt).toMatchObject({ diskSectors: 25165824, lastUsable: 25163776 });
    expect(f.grow.toSectors).toBeGreaterThan(f.grow.fromSectors + 8_000_000);
    expect(f.bootOption).toMatch(/^Boot[0-9A-F]{4} "debian"$/);
    expect(f.root).toMatchObject({ device: "/dev/sda3", fstype: "ext3" });
    expect(f.pvBytes).toBeGreaterThan(9 * 2 ** 30);
    expect(f.data).toMatchObject({ intact: true });
  });

  it("gpt-boot-restore-no-sgdisk-e: forked before sgdisk -e; sgdisk refuses the grown partition in its own words", () => {
    const r = recorded("gpt-boot-restore-no-sgdisk-e");
    expect(r.forkedFrom?.scenario).toBe("gpt-boot-restore");
    const f = r.facts as Record<string, any>;
    expect(f.refused.lastUsable).toBe(16777182);
    expect(f.refused.error[0]).toBe("Could not create partition 4 from 4737024 to 25163742");
  });
});

describe("uefi-nvram-lost and its twin, judged on their recorded real runs (test/fixtures/runs, from `vmlab run` in test/vm/uefi.test.ts)", () => {
  const boots = (r: ScenarioReport) => r.boots.map((b) => `${b.reason}/${b.via}/${b.outcome}${b.detail ? `(${b.detail})` : ""}`);

  it("with GRUB at the removable-media path the machine boots without its NVRAM, and the entry made again is the one the next boot takes", () => {
    const good = recorded("uefi-nvram-lost");
    expect(good.verdict).toBe("pass");
    expect(good.image?.firmware).toBe("uefi");
    expect(boots(good)).toEqual(["resume/saved-state/ssh", "power-on with an empty NVRAM/firmware/ssh", "reboot/firmware/ssh"]);
    expect(good.facts.bootWithoutNvram).toMatchObject({ option: 'Boot0001 "UEFI QEMU QEMU HARDDISK"' });
    const through = good.facts.bootThroughEntry as { option: string; path: string; bootCurrent: string };
    expect(through.option).toMatch(/^Boot[0-9A-F]{4} "debian"$/);
    expect(through.path).toMatch(/HD\(1,GPT,.*\)\/File\(\\EFI\\debian\\grubx64\.efi\)/);
    expect(good.facts.root).toMatchObject({ device: "/dev/sda3", fstype: "ext3" });
    expect((good.facts.data as { intact: boolean }).intact).toBe(true);
  });

  it("without it, the empty NVRAM ends in OVMF's shell after the disk's option failed, forked from the rehearsal", () => {
    const twin = recorded("uefi-nvram-lost-no-fallback");
    expect(twin.verdict).toBe("pass");
    expect(twin.forkedFrom?.scenario).toBe("uefi-nvram-lost");
    const lost = twin.boots.at(-1)!;
    expect([lost.via, lost.outcome, lost.detail]).toEqual(["firmware", "uefi-shell", "fallback"]);
    expect(lost.evidence.join("\n")).toMatch(/BdsDxe: failed to load Boot0001 "UEFI QEMU QEMU HARDDISK " .*: Not Found/);
    expect(lost.evidence.join("\n")).toMatch(/Shell>/);
  });
});
