/**
 * The flagship rehearsal and its negative twin forked from it, side by side
 * and sharing nothing they could collide on, through the real `vmlab`
 * command line on real guests: exit codes, report.json, junit.xml, the base
 * image left untouched, and no QEMU left behind.
 */
import { existsSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { dir } from "tmp-promise";
import { ensureImage } from "../../src/image/build.ts";
import { loadRecipe } from "../../src/scenario/registry.ts";
import type { ScenarioReport } from "../../src/scenario/types.ts";
import { onlyReport, qemuPids, sha256File, vmlab } from "./helpers.ts";
import { chooseAccel } from "../../src/host/kvm.ts";
import { labKey } from "../../src/image/keys.ts";
import { DEFAULT_PROFILE, ensureWarmState } from "../../src/vm/warm.ts";

let baseDisk = "";
let baseSum = "";
let warmDiskSum = "";
let reports = "";


beforeAll(async () => {
  const img = await ensureImage(await loadRecipe("debian12-bios"));
  baseDisk = img.disk;
  baseSum = await sha256File(baseDisk);
  const warm = await ensureWarmState(img, DEFAULT_PROFILE, await chooseAccel(), (await labKey()).privateKey);
  warmDiskSum = await sha256File(warm.disk);
  reports = (await dir({ unsafeCleanup: true })).path;
});

describe("root-to-lvm on a real guest", () => {
  it("the flagship moves / into sys-root and boots it through firmware with the data intact; its twin without the relabel is caught", async () => {
    const r = await vmlab(["run", "--jobs", "2", "root-to-lvm", "root-to-lvm-no-relabel", "--report-dir", reports]);
    const report = await onlyReport(reports, "root-to-lvm");
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(report.verdict).toBe("pass");
    // Started from the saved warm state; the reboot after the migration went through SeaBIOS, GRUB and the initramfs.
    expect(report.boots.map((b) => [b.reason, b.via, b.outcome])).toEqual([
      ["resume", "saved-state", "ssh"],
      ["reboot", "firmware", "ssh"],
    ]);
    expect(report.boots[1]!.reached).toMatchObject({ firmware: true, grub: true, kernel: true, initramfs: true });
    // A new boot: SeaBIOS' banner in its slice of the console, and a boot_id other than the one before the reboot.
    const proof = report.boots[1]!.newBoot!;
    expect(proof).toMatchObject({ banner: true, proven: true });
    expect(proof.bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(proof.previousBootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(proof.bootId).not.toBe(proof.previousBootId);
    // The runner's own look at the final state, which the verdict judged.
    expect(report.final).toMatchObject({ root: { device: "/dev/mapper/sys-root", fstype: "ext3" }, data: { intact: true }, lastBoot: { via: "firmware", outcome: "ssh", newBootProven: true } });
    expect(report.judgement?.expected).toEqual(["a new firmware boot to ssh, / on /dev/mapper/sys-root (ext3), data set intact"]);
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
    // The old root was relabelled: nothing else answers to the root's UUID or LABEL.
    expect(report.facts.rootIdentity).toMatchObject({ sameUuid: ["/dev/mapper/sys-root"], sameLabel: ["/dev/mapper/sys-root"] });

    const twin = await onlyReport(reports, "root-to-lvm-no-relabel");
    expect(twin.kind).toBe("twin");
    expect(twin.verdict).toBe("pass");
    // The twin did not repeat the migration: it forked the flagship's checkpoint before the relabel and replayed the steps before it.
    expect(report.checkpoints?.map((c) => c.beforeStep.name)).toEqual(["relabel the old root (new LABEL and UUID)"]);
    expect(twin.forkedFrom).toMatchObject({ scenario: "root-to-lvm", runDir: report.runDir, beforeStep: { name: "relabel the old root (new LABEL and UUID)", index: 8 } });
    expect(twin.forkedFrom!.replayedCalls).toBeGreaterThan(10);
    expect(twin.steps.filter((x) => x.replayed).map((x) => x.name)).toContain("dd /dev/sda2 to /dev/sys/root, fsck, resize2fs");
    expect(twin.steps.find((x) => x.name === "rebuild the initramfs")?.replayed).toBeUndefined();
    expect(twin.steps.some((x) => x.name.startsWith("relabel"))).toBe(false);
    expect(twin.boots.map((b) => `${b.reason}/${b.via}/${b.outcome}`)).toEqual(["resume/saved-state/ssh", "fork/saved-state/ssh", "reboot/firmware/" + twin.boots.at(-1)!.outcome]);
    // The checkpoint's files went with the last fork.
    expect(existsSync(twin.forkedFrom!.checkpoint)).toBe(false);

    // The two ran at once and shared nothing they could collide on, only the read-only saved state under both.
    const [a, b] = [report, twin].map((x) => x.machines[0]!);
    expect(a!.sshPort).not.toBe(b!.sshPort);
    expect(a!.qmpSocket).not.toBe(b!.qmpSocket);
    expect(a!.serialSocket).not.toBe(b!.serialSocket);
    expect(a!.disks).not.toEqual(b!.disks);
    expect(report.runDir).not.toBe(twin.runDir);
    expect(a!.backing).toBe(b!.backing);
    expect(await sha256File(a!.backing!)).toBe(warmDiskSum);
    expect(twin.boots.at(-1)).toMatchObject({ via: "firmware", reason: "reboot" });
    const seen = twin.facts.observedFailure as { kind: string; root?: string; sameUuid?: string[]; writtenAfterMigration?: string; outcome?: string };
    expect(seen, "the twin must record what it observed").toBeDefined();
    if (seen.kind === "duplicate-root-identity") {
      // The boot picked the LV this time, but the old root still answers to the same UUID.
      expect(seen.root).toBe("/dev/mapper/sys-root");
      expect(seen.sameUuid).toEqual(["/dev/mapper/sys-root", "/dev/sda2"]);
    } else if (seen.kind === "old-root") {
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
