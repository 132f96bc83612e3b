/**
 * The flagship rehearsal and its negative twin, run through the real `vmlab`
 * command line on real guests: exit codes, report.json, junit.xml, the base
 * image left untouched, and no QEMU left behind.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { dir } from "tmp-promise";
import { ensureImage } from "../../src/image/build.ts";
import { loadRecipe } from "../../src/scenario/registry.ts";
import type { ScenarioReport } from "../../src/scenario/types.ts";
import { qemuPids, sha256File, vmlab } from "./helpers.ts";

let baseDisk = "";
let baseSum = "";
let reports = "";

async function onlyReport(parent: string, scenario: string): Promise<ScenarioReport> {
  const runs = (await readdir(parent)).filter((d) => d.startsWith(`${scenario}-`));
  expect(runs).toHaveLength(1);
  return JSON.parse(await readFile(join(parent, runs[0]!, "report.json"), "utf8"));
}

beforeAll(async () => {
  const img = await ensureImage(await loadRecipe("debian12-bios"));
  baseDisk = img.disk;
  baseSum = await sha256File(baseDisk);
  reports = (await dir({ unsafeCleanup: true })).path;
});

describe("root-to-lvm on a real guest", () => {
  it("moves / into sys-root, boots it through firmware, and keeps the data", async () => {
    const r = await vmlab(["run", "root-to-lvm", "--report-dir", reports]);
    const report = await onlyReport(reports, "root-to-lvm");
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(report.verdict).toBe("pass");
    // Started from the saved warm state; the reboot after the migration went through SeaBIOS, GRUB and the initramfs.
    expect(report.boots.map((b) => [b.reason, b.via, b.outcome])).toEqual([
      ["resume", "saved-state", "ssh"],
      ["reboot", "firmware", "ssh"],
    ]);
    expect(report.boots[1]!.reached).toMatchObject({ firmware: true, grub: true, kernel: true, initramfs: true });
    const root = report.facts.root as { device: string; fstype: string; sizeBytes: number };
    expect(root.device).toBe("/dev/mapper/sys-root");
    expect(root.fstype).toBe("ext3");
    expect(root.sizeBytes / 2 ** 30).toBeGreaterThan(2.8);
    const data = report.facts.data as { intact: boolean; files: number };
    expect(data.intact).toBe(true);
    expect(data.files).toBeGreaterThan(200);
    const junit = await readFile(join(report.runDir, "junit.xml"), "utf8");
    expect(junit).toContain('<testsuite name="root-to-lvm"');
    expect(junit).not.toContain("<failure");
    expect(await readFile(report.consoleLogs[0]!, "utf8")).toContain("GRUB");
  });

  it("twin without relabelling the old root: the lab sees the machine come back on the old root", async () => {
    const r = await vmlab(["run", "root-to-lvm-no-relabel", "--report-dir", reports]);
    const report = await onlyReport(reports, "root-to-lvm-no-relabel");
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(report.kind).toBe("twin");
    expect(report.boots.at(-1)).toMatchObject({ via: "firmware", reason: "reboot" });
    const seen = report.facts.observedFailure as Record<string, string>;
    expect(seen).toBeDefined();
    if (seen.kind === "old-root") {
      expect(seen.root).toBe("/dev/sda2");
      expect(seen.writtenAfterMigration).toBe("lost");
    } else {
      expect(["initramfs-shell", "kernel-panic", "emergency-mode"]).toContain(seen.outcome);
    }
  });

  it("left the cached base image unchanged and no QEMU running", async () => {
    expect(await sha256File(baseDisk)).toBe(baseSum);
    expect(await qemuPids()).toEqual([]);
  });
});
