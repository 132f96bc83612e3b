/**
 * Images with more than one disk: the layout of debian12-bootdisk, the file
 * and guest names of its disks, the provisioning script, the cache hash of
 * the one-disk image, and the guest disk order with blank extras after the
 * image's own disks.
 */
import { describe, expect, it } from "vitest";
import bootdisk from "../../images/debian12-bootdisk.ts";
import bios from "../../images/debian12-bios.ts";
import { planPartitions } from "../../src/image/layout.ts";
import { guestDevice, recipeDisks } from "../../src/image/recipe.ts";
import rescue from "../../images/rescue.ts";
import { imageDiskFiles, needsProvisioning, recipeHash } from "../../src/image/build.ts";
import { grubDefaults, provisionScript, shapingSource } from "../../src/image/customize.ts";
import { treeHash } from "../../src/image/tree.ts";
import { labKey } from "../../src/image/keys.ts";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { diskIds, profileFor } from "../../src/vm/warm.ts";
import { bootBackupSectors } from "../../src/disk/boot-backup.ts";
import type { PartitionTable } from "../../src/disk/partitions.ts";

describe("multi-disk images", () => {
  it("debian12-bootdisk: a 1 GiB boot disk with /boot and swap, / on the whole second disk", () => {
    const [boot, root] = recipeDisks(bootdisk).map(planPartitions);
    expect(boot!.diskBytes).toBe(2 ** 30);
    expect(boot!.partitions.map((p) => [p.index, p.startSector, p.sizeSectors, p.type])).toEqual([
      [1, 2048, 524288, "83"],
      [2, 526336, 2 ** 21 - 526336, "82"],
    ]);
    expect(boot!.partitions[1]!.swap).toEqual({ label: "SWAP-sda2" });
    expect(root!.diskBytes).toBe(4 * 2 ** 30);
    // No partition table: the filesystem is the whole disk (index 0 = /dev/sdb itself).
    expect(root!.partitions.map((p) => [p.index, p.startSector, p.sizeSectors, p.fs?.mount])).toEqual([[0, 0, 4 * 2 ** 21, "/"]]);
    expect(guestDevice(1, 0)).toBe("/dev/sdb");
    expect(guestDevice(0, 2)).toBe("/dev/sda2");
    expect(imageDiskFiles(bootdisk)).toEqual(["disk.qcow2", "disk-sdb.qcow2"]);
    expect(imageDiskFiles(bios)).toEqual(["disk.qcow2"]);
  });

  it("the boot-disk backup of debian12-bootdisk covers the MBR, the gap and /boot", () => {
    const { diskBytes, partitions } = planPartitions(bootdisk.disk);
    const table: PartitionTable = {
      label: "dos",
      diskBytes,
      sectorSize: 512,
      partitions: partitions.map((p) => ({ number: p.index, startSector: p.startSector, sizeSectors: p.sizeSectors, type: p.type, typeName: "", kind: "primary", offsetBytes: 0, sizeBytes: 0 })),
    };
    expect(bootBackupSectors(table)).toEqual({ sectors: 526336, reason: "start of swap partition 2" });
  });

  it("a disk without a partition table holds exactly one filesystem", () => {
    expect(() => planPartitions({ size: "1G", label: "none", partitions: [{ name: "a", type: "83" }] })).toThrow(/exactly one filesystem/);
    expect(() =>
      planPartitions({ size: "1G", label: "none", partitions: [{ name: "a", type: "83", size: "10M", fs: { type: "ext3", label: "a", mount: "/a" } }] }),
    ).toThrow(/exactly one filesystem/);
  });

  it("provisioning installs GRUB on the first disk; the one-disk image's script is unchanged", () => {
    expect(provisionScript(bootdisk)).toContain("grub-install --target=i386-pc /dev/sda\n");
    expect(provisionScript(bootdisk)).not.toMatch(/pvcreate/);
    expect(provisionScript(bios)).toContain("pvcreate -ff -y /dev/sda3\nvgcreate sys /dev/sda3\n");
  });

  it("the three recipes share one Debian tree; the rescue image, booted directly only, gets no provisioning boot", () => {
    expect(new Set([bios, bootdisk, rescue].map(treeHash)).size).toBe(1);
    // The package order does not matter, the set does.
    expect(treeHash({ suite: "bookworm", packages: [...bios.packages].reverse() })).toBe(treeHash(bios));
    expect(treeHash({ suite: "bookworm", packages: [...bios.packages, "vim"] })).not.toBe(treeHash(bios));
    expect([bios, bootdisk, rescue].map(needsProvisioning)).toEqual([true, true, false]);
  });

  it("the image hash covers what shapes the image: the customisation's source, the kernel command line, the recipe", () => {
    // The customisation and partition planning are hashed as source text, so an edit there builds again.
    expect(shapingSource()).toContain("export async function customizeTree(");
    expect(shapingSource()).toContain("export function planPartitions(");
    const key = "ssh-ed25519 AAAA test";
    expect(recipeHash(bios, key)).not.toBe(recipeHash({ ...bios, kernelCmdline: bios.kernelCmdline + " quiet" }, key));
    expect(grubDefaults(bios)).toContain('GRUB_CMDLINE_LINUX="console=ttyS0,115200 net.ifnames=0 norandmaps"');
    expect(recipeHash(bios, key)).not.toBe(recipeHash(bios, key + "x"));
    expect(new Set([bios, bootdisk, rescue].map((r) => recipeHash(r, key))).size).toBe(3);
  });

  it("the lab key asked for from five places at once is made once, and all five get it", async () => {
    const cache = await mkdtemp(join(tmpdir(), "vmlab-key-"));
    const before = process.env.VMLAB_CACHE;
    process.env.VMLAB_CACHE = cache;
    try {
      const keys = await Promise.all(Array.from({ length: 5 }, () => labKey()));
      expect(new Set(keys.map((k) => k.publicKey)).size).toBe(1);
      expect(keys[0]!.publicKey).toMatch(/^ssh-ed25519 \S+ vmlab-lab-key$/);
      expect((await readdir(join(cache, "keys"))).sort()).toEqual(["id_ed25519", "id_ed25519.pub"]);
    } finally {
      if (before === undefined) delete process.env.VMLAB_CACHE;
      else process.env.VMLAB_CACHE = before;
      await rm(cache, { recursive: true, force: true });
    }
  });

  it("guest disks: the image's own first, then the blank extras", () => {
    expect(diskIds(profileFor())).toEqual(["sda"]);
    expect(diskIds(profileFor({ extraDisks: ["8G"] }))).toEqual(["sda", "sdb"]);
    expect(diskIds(profileFor({ extraDisks: ["8G", "1G"] }), 2)).toEqual(["sda", "sdb", "sdc", "sdd"]);
  });
});
