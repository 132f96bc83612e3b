/**
 * The LVM snapshot scenarios on real guests, through the `vmlab` command line:
 * the upgrade safety net rolled back both ways, the overflowed snapshot the
 * lab must refuse, and partitioned LV snapshots mounted by offset, nested
 * LVM with a clashing VG name included. Assertions read each run's
 * report.json: what a user of the runbooks would check by hand.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { dir } from "tmp-promise";
import type { ScenarioReport } from "../../src/scenario/types.ts";
import { execa } from "execa";
import { vmlab, keepReport } from "./helpers.ts";

const SCENARIOS = ["lvm-snapshot-rollback", "lvm-snapshot-overflow", "lv-snapshot-offset-mount", "lv-snapshot-nested-lvm"];
const reports: Record<string, ScenarioReport> = {};
let run: Awaited<ReturnType<typeof vmlab>>;

type Sums = Record<string, string>;
const noLeftovers = { loops: [], dm: [] };

beforeAll(async () => {
  const parent = (await dir({ unsafeCleanup: true })).path;
  // Four machines, two at a time. (The snapshot runbook and its twin are judged on their recorded runs:
  // test/unit/verdict.test.ts, test/fixtures/runs/runbooks.)
  run = await vmlab(["run", "--jobs", "2", ...SCENARIOS, "--report-dir", parent]);
  for (const d of await readdir(parent)) {
    const r: ScenarioReport = JSON.parse(await readFile(join(parent, d, "report.json"), "utf8"));
    expect(reports[r.scenario], `one run of ${r.scenario}`).toBeUndefined();
    reports[r.scenario] = r;
    await keepReport(join(parent, d));
  }
  console.log(Object.values(reports).map((r) => `${r.scenario}: ${r.verdict} in ${(r.durationMs / 1000).toFixed(1)} s`).join("\n"));
});

function report(name: string): ScenarioReport {
  const r = reports[name];
  expect(r, `${name} wrote a report\n${run.stdout}\n${run.stderr}`).toBeDefined();
  expect(r!.verdict, JSON.stringify(r!.error, null, 2)).toBe("pass");
  // Warm start, classified like every boot; the data set seeded on the machine is intact.
  expect(r!.boots.map((b) => [b.via, b.outcome])).toEqual([["saved-state", "ssh"]]);
  expect(r!.facts.data).toMatchObject({ intact: true });
  // The runner's own final check: the scenario cleaned up after its data check, so the check was made again, not reused.
  expect(r!.final?.data).toMatchObject({ intact: true });
  expect(r!.final?.data?.reused).toBeUndefined();
  return r!;
}

describe("LVM snapshots on real guests", () => {
  it("all four pass from one `vmlab run --jobs 2`", () => {
    expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(Object.keys(reports).sort()).toEqual([...SCENARIOS].sort());
  });

  it("lvm-snapshot-rollback: the broken upgrade is undone byte for byte by rsync and by lvconvert --merge; the fixed upgrade stays after remove_snapshot", () => {
    const r = report("lvm-snapshot-rollback");
    const before = r.facts.websiteBefore as Sums;
    expect(Object.keys(before).sort()).toEqual(["database", "img/logo.png", "index.html", "style.css"]);
    const rollbacks = r.facts.rollbacks as Record<"rsync" | "merge", { brokenDatabase: string[]; broken: Sums; after: Sums }>;
    for (const way of ["rsync", "merge"] as const) {
      const rb = rollbacks[way];
      // The upgrade really broke the site (so the rollback had something to undo)...
      expect(rb.brokenDatabase).toEqual(["if:001,name:alice,age:29", "if:002,name:bob,age:18"]);
      expect(rb.broken.database).not.toBe(before.database);
      expect(rb.broken).toHaveProperty("ponies.js");
      // ...and afterwards every file equals the pre-upgrade file, with the upgrade's files gone.
      expect(rb.after, way).toEqual(before);
    }
    expect((r.facts.rollbacks as { merge: { lvsAfterMerge: string } }).merge.lvsAfterMerge).not.toContain("backup");
    const up = r.facts.upgrade as { database: string[]; before: Sums; afterRemovingSnapshot: Sums; lvs: string };
    expect(up.database).toEqual(["id:00001,name:alice,age:29", "id:00002,name:bob,age:18", "id:00003,name:robwilco,age:35", "id:00004,name:DuncanMacLeod,age:539"]);
    expect(up.afterRemovingSnapshot).toEqual(up.before);
    expect(up.lvs).not.toContain("backup");
    expect(r.facts.leftBehind).toMatchObject(noLeftovers);
  });

  it("lvm-snapshot-overflow: the twin sees the snapshot invalid, and every rollback from it is refused with the site left as the upgrade made it", () => {
    const r = report("lvm-snapshot-overflow");
    expect(r.kind).toBe("twin");
    expect(r.facts.snapshotAutoextendThreshold).toBe(100);
    const seen = r.facts.observedFailure as { kind: string; attr: string; percent: number; dmStatus: string; lvs: string };
    expect(seen.kind).toBe("snapshot-invalid");
    expect(seen.attr[4]).toBe("I");
    expect(seen.percent).toBe(100);
    expect(seen.dmStatus).toMatch(/snapshot Invalid/);
    expect(seen.lvs).toMatch(/snapshot invalid/);
    const refused = r.facts.rollbackRefused as { rsync: string; merge: string; mount: { exitCode: number; stderr: string }; lvconvertMerge: { exitCode: number; stderr: string } };
    expect(refused.rsync).toMatch(/invalid.*rollback is impossible/);
    expect(refused.merge).toMatch(/invalid.*rollback is impossible/);
    expect(refused.mount.exitCode).not.toBe(0);
    expect(refused.lvconvertMerge.exitCode).not.toBe(0);
    expect(refused.lvconvertMerge.stderr).toMatch(/Unable to merge invalidated snapshot/);
    // No silent, partial rollback: the site still holds exactly what the upgrade wrote.
    const after = r.facts.websiteAfter as Sums;
    expect(after).toHaveProperty("img/hero-video.webm");
    expect(after.database).not.toBe((r.facts.websiteBefore as Sums).database);
    expect(r.facts.leftBehind).toMatchObject(noLeftovers);
  });

  it("lv-snapshot-offset-mount: partition 1 of the snapshot mounts read-only at start × 512 with the files as they were; the direct mount fails", () => {
    const r = report("lv-snapshot-offset-mount");
    const table = r.facts.partitionTable as { label: string; sectorSize: number; partitions: { start: number; offsetBytes: number; type: string }[]; fdisk: string };
    expect(table.label).toBe("dos");
    expect(table.partitions.map((p) => p.type)).toEqual(["83", "82"]);
    const p1 = table.partitions[0]!;
    expect(p1.offsetBytes).toBe(p1.start * table.sectorSize);
    expect(table.fdisk).toContain(String(p1.start));
    const direct = r.facts.directMount as { command: string; exitCode: number; error: string; blkid: string };
    expect(direct.exitCode).not.toBe(0);
    expect(direct.error).toMatch(/wrong fs type|bad superblock|unknown filesystem/);
    expect(direct.blkid).toMatch(/PTTYPE="dos"/);
    const mount = r.facts.offsetMount as { command: string; offsetBytes: number; mount: string; files: Sums; liveVmFiles: Sums };
    expect(mount.command).toContain(`offset=${p1.offsetBytes}`);
    expect(mount.mount).toMatch(/^\/dev\/loop\d+\s+ext4\s+ro\b/);
    expect(mount.files).toEqual(r.facts.filesAtSnapshot);
    // The VM kept writing after the snapshot: the live disk differs, the snapshot does not.
    expect(mount.liveVmFiles).toHaveProperty("var/www/written-after-snapshot");
    expect(mount.files).not.toHaveProperty("var/www/written-after-snapshot");
    expect(mount.liveVmFiles["var/www/index.html"]).not.toBe(mount.files["var/www/index.html"]);
    expect(r.facts.leftBehind).toMatchObject(noLeftovers);
    expect(r.facts.lvsAfter).not.toContain("vm01-snap");
  });

  it("lv-snapshot-nested-lvm: the clash of two VGs called sys is seen and resolved with vgimportclone; the nested LV's files match and nothing is left attached", () => {
    const r = report("lv-snapshot-nested-lvm");
    const clash = r.facts.nameClash as { vgs: { name: string; uuid: string; pv: string }[]; warnings: string; vgchange: { exitCode: number; stderr: string } };
    expect(clash.vgs.map((v) => v.name)).toEqual(["sys", "sys"]);
    expect(new Set(clash.vgs.map((v) => v.uuid)).size).toBe(2);
    expect(clash.warnings).toMatch(/VG name sys is used by VGs/);
    expect(clash.vgchange.exitCode).not.toBe(0);
    expect(clash.vgchange.stderr).toMatch(/Multiple VGs found with the same name/);
    const res = r.facts.resolved as { clone: { name: string; uuid: string; pv: string }; host: { name: string; uuid: string; pv: string }; hostVgActivates: boolean; files: Sums };
    expect(res.clone.name).toBe("vm02sys");
    expect(res.clone.pv).toMatch(/^\/dev\/loop\d+$/);
    expect(clash.vgs.map((v) => v.uuid)).not.toContain(res.clone.uuid);
    expect(res.host).toMatchObject({ name: "sys", pv: "/dev/sda3" });
    expect(res.hostVgActivates).toBe(true);
    expect(res.files).toEqual(r.facts.nestedFiles);
    expect(Object.keys(res.files)).toContain("var/lib/db/orders.db");
    const left = r.facts.leftBehind as { loops: string[]; dm: string[]; vgs: string[] };
    expect(left).toMatchObject(noLeftovers);
    expect(left.vgs).toEqual(["sys"]);
    const disk = r.facts.vmDisk as { sha256Before: string; sha256After: string };
    expect(disk.sha256After).toBe(disk.sha256Before);
  });

  it("left none of its QEMU processes running", async () => {
    // Other runs may share this host: look for QEMUs started for these runs' directories.
    const mine = await execa("pgrep", ["-af", "qemu-system"], { reject: false });
    const dirs = Object.values(reports).map((r) => r.runDir);
    expect(dirs).toHaveLength(SCENARIOS.length);
    expect(String(mine.stdout).split("\n").filter((l) => dirs.some((d) => l.includes(d)))).toEqual([]);
  });
});
