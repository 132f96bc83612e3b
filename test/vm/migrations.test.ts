/**
 * The migrations, each with its negative twin, through the real `vmlab`
 * command line on real guests, all in one `vmlab run --jobs 2`. The
 * assertions read report.json: every boot's path and classified outcome,
 * where `/` lives afterwards and what it is, and the data set's checksums.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { dir } from "tmp-promise";
import type { ScenarioReport } from "../../src/scenario/types.ts";
import { qemuPids, runScenarios } from "./helpers.ts";

let reports = "";
beforeAll(async () => {
  reports = (await dir({ unsafeCleanup: true })).path;
});

const run = (names: string[]) => runScenarios(reports, names);

const boots = (r: ScenarioReport) => r.boots.map((b) => `${b.reason}/${b.via}/${b.outcome}${b.detail ? `(${b.detail})` : ""}`);
const intact = (d: unknown) => d as { intact: boolean; files: number };
/** A pair of migrations side by side under TCG: well past the default per-test limit. */

// All seven migrations in one `vmlab run --jobs 2`, longest first, so both
// slots stay busy (the RAID1 pair alone leaves one idle for minutes).
const ALL = [
  "root-to-mdraid1",
  "ext3-to-btrfs-convert",
  "root-to-mdraid1-grub-one-disk",
  "ext3-to-btrfs-copy",
  "ext3-to-btrfs-copy-no-initramfs",
  "shrink-root",
  "shrink-root-container-first",
];
let runs: Awaited<ReturnType<typeof run>>;
beforeAll(async () => {
  runs = await run(ALL);
}, 60 * 60_000);

it("all seven migrations and twins pass from vmlab run, and no QEMU is left", async () => {
  expect(runs.exitCode, runs.output).toBe(0);
  expect(Object.keys(runs.report).sort()).toEqual([...ALL].sort());
  expect(await qemuPids()).toEqual([]);
});

describe("root → mdraid1", () => {
  it("the migration boots from the mirror, then from each disk alone; the twin with GRUB on one disk does not boot without it", () => {
    const { report } = runs;
    const good = report["root-to-mdraid1"]!;
    expect(good.verdict, (good.judgement?.reasons ?? [good.error?.message]).join("\n")).toBe("pass");
    expect(boots(good)).toEqual(["resume/saved-state/ssh", "reboot/firmware/ssh", "reboot/firmware/ssh", "start/firmware/ssh"]);
    expect(good.facts.root).toMatchObject({ device: "/dev/md1", fstype: "ext3" });
    const arrays = good.facts.arrays as { md: string; up: number; total: number; map: string }[];
    expect(arrays.map((a) => [a.md, a.up, a.total, a.map]).sort()).toEqual([
      ["/dev/md0", 2, 2, "UU"],
      ["/dev/md1", 2, 2, "UU"],
    ]);
    expect(intact(good.facts.data).intact).toBe(true);
    // Both single-disk boots: degraded (1 of 2), root on the array, data intact.
    const single = good.facts.singleDiskBoots as { without: string; outcome: string; root: string; arrays: string[]; data: string }[];
    expect(single.map((s) => [s.without, s.outcome, s.root])).toEqual([
      ["sda", "ssh", "/dev/md1"],
      ["sdb", "ssh", "/dev/md1"],
    ]);
    for (const s of single) {
      expect(s.arrays).toHaveLength(2);
      for (const a of s.arrays) expect(a).toMatch(/\[(U_|_U)\]$/);
      expect(s.data).toMatch(/^intact/);
    }

    const twin = report["root-to-mdraid1-grub-one-disk"]!;
    expect(twin.kind).toBe("twin");
    expect(twin.verdict, (twin.judgement?.reasons ?? [twin.error?.message]).join("\n")).toBe("pass");
    // Forked from the migration's checkpoint before GRUB went on; with sda pulled, sdb's boot sector holds no boot code.
    expect(twin.forkedFrom).toMatchObject({ scenario: "root-to-mdraid1", runDir: good.runDir });
    // The guest may have called the lab's first disk sdb: the step is the same with the letters left out.
    expect(twin.forkedFrom!.beforeStep.name).toMatch(/^install GRUB on \/dev\/sd[ab] and \/dev\/sd[ab], update-grub$/);
    expect(boots(twin)).toEqual(["resume/saved-state/ssh", "fork/saved-state/ssh", "reboot/firmware/no-bootable-device(no-boot-code)"]);
    expect(twin.facts.observedFailure).toMatchObject({ without: "sda", outcome: "no-bootable-device" });
  });
});

describe("ext3 → btrfs by copy", () => {
  it("the copy boots btrfs read-write with the data intact; without an initramfs rebuild the boot fails", () => {
    const { report } = runs;
    const good = report["ext3-to-btrfs-copy"]!;
    expect(good.verdict, (good.judgement?.reasons ?? [good.error?.message]).join("\n")).toBe("pass");
    expect(boots(good)).toEqual(["resume/saved-state/ssh", "reboot/firmware/ssh"]);
    expect(good.facts.root).toMatchObject({ device: "/dev/mapper/sys-root", fstype: "btrfs" });
    expect(String(good.facts.rootOptions)).toMatch(/(^|,)rw(,|$)/);
    expect(intact(good.facts.data).intact).toBe(true);

    const twin = report["ext3-to-btrfs-copy-no-initramfs"]!;
    expect(twin.verdict, (twin.judgement?.reasons ?? [twin.error?.message]).join("\n")).toBe("pass");
    expect(twin.forkedFrom).toMatchObject({ scenario: "ext3-to-btrfs-copy", beforeStep: { name: "rebuild the initramfs with btrfs" } });
    const failed = twin.boots.at(-1)!;
    expect(failed.via).toBe("firmware");
    expect(failed.outcome).not.toBe("ssh");
    expect(twin.facts.observedFailure).toMatchObject({ kind: "boot", outcome: failed.outcome });
  });
});

describe("ext3 → btrfs in place, and shrinking the root filesystem", () => {
  it("btrfs-convert from a temporary root boots btrfs; btrfs-convert -r boots ext3 again; data intact both times", () => {
    const { report } = runs;
    const r = report["ext3-to-btrfs-convert"]!;
    expect(r.verdict, (r.judgement?.reasons ?? [r.error?.message]).join("\n")).toBe("pass");
    expect(boots(r)).toEqual(["resume/saved-state/ssh", "reboot/firmware/ssh", "reboot/firmware/ssh"]);
    expect(r.facts.rootAfterConvert).toMatchObject({ device: "/dev/sda2", fstype: "btrfs" });
    expect(r.facts.rootAfterRollback).toMatchObject({ device: "/dev/sda2", fstype: "ext3" });
    expect(intact(r.facts.dataAfterConvert).intact).toBe(true);
    expect(intact(r.facts.dataAfterRollback).intact).toBe(true);
  });

  it("filesystem first boots a 1200 MiB root with the data intact; partition first is caught by fsck and the boot", () => {
    const { report } = runs;
    const good = report["shrink-root"]!;
    expect(good.verdict, (good.judgement?.reasons ?? [good.error?.message]).join("\n")).toBe("pass");
    expect(boots(good)).toEqual(["resume/saved-state/ssh", "reboot/firmware/ssh"]);
    expect(good.facts.root).toMatchObject({ device: "/dev/sda2", fstype: "ext3" });
    expect(good.facts.sizes).toEqual({ partitionBytes: 1200 * 2 ** 20, filesystemBytes: 1200 * 2 ** 20 });
    expect(good.facts.fsck).toMatchObject({ exitCode: 0 });
    expect(Number(good.facts.usedBytesBefore)).toBeGreaterThan(600 * 2 ** 20);
    expect(intact(good.facts.data).intact).toBe(true);

    const twin = report["shrink-root-container-first"]!;
    expect(twin.verdict, (twin.judgement?.reasons ?? [twin.error?.message]).join("\n")).toBe("pass");
    expect(twin.forkedFrom).toMatchObject({ scenario: "shrink-root", beforeStep: { name: "e2fsck -f, then resize2fs /dev/sda2 to 1200 MiB" } });
    const seen = twin.facts.observedFailure as { fsckExit: number; boot: { outcome: string } };
    expect(seen.fsckExit).not.toBe(0);
    expect(seen.boot.outcome).not.toBe("ssh");
  });
});
