/**
 * Layout capture and import on real outputs: test/fixtures/layouts/ holds
 * what `vmlab layout capture` wrote on a lab guest (Debian 12) with four
 * layouts made on its disks, and what ReaR 2.7's `rear savelayout` wrote on
 * the same guest. Every assertion is on what those real files say.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.ts";
import { captureScript } from "../../src/layout/capture.ts";
import { importLayout } from "../../src/layout/import.ts";
import { deviceName, parseDisklayout, parseLsblk, parseMdadmScan, parseMdstat, parseSfdiskDump, flattenLsblk } from "../../src/layout/parse.ts";
import { scaleLayout, share } from "../../src/layout/scale.ts";
import { installScript, layoutDiskIds } from "../../src/layout/install.ts";
import { byLabNames, compareLayouts } from "../../src/layout/fidelity.ts";
import type { Layout } from "../../src/layout/types.ts";

const FIX = join(import.meta.dirname, "../fixtures/layouts");
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const read = (p: string) => readFileSync(join(FIX, p), "utf8");

async function usage(p: Promise<unknown> | (() => unknown)): Promise<UsageError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error("expected a UsageError");
}

/** A copy of a capture with one file replaced. */
function edited(capture: string, file: string, text: string): string {
  const dir = join(mkdtempSync(join(tmpdir(), "vmlab-layout-")), capture);
  cpSync(join(FIX, capture), dir, { recursive: true });
  writeFileSync(join(dir, file), text);
  return dir;
}

describe("the parsers, on real outputs", () => {
  it("sfdisk -d: msdos with a bootable RAID partition, and GPT with a BIOS boot partition and a /home type", () => {
    const dos = parseSfdiskDump(read("cap-raid1-lvm/sfdisk-sdb.dump"));
    expect(dos).toMatchObject({ label: "dos", device: "/dev/sdb", sectorSize: 512 });
    expect(dos.partitions).toEqual([
      { device: "/dev/sdb1", number: 1, start: 2048, size: 1048576, type: "fd", bootable: true, name: undefined, uuid: undefined },
      { device: "/dev/sdb2", number: 2, start: 1050624, size: 15726592, type: "fd", bootable: false, name: undefined, uuid: undefined },
    ]);
    const gpt = parseSfdiskDump(read("cap-gpt-home/sfdisk-sde.dump"));
    expect(gpt.label).toBe("gpt");
    expect(gpt.lastLba).toBe(12582878);
    expect(gpt.partitions.map((p) => [p.number, p.start, p.size, p.type])).toEqual([
      [1, 2048, 2048, "21686148-6449-6E6F-744E-656564454649"],
      [2, 4096, 6291456, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"],
      [3, 6295552, 4194304, "933AC7E1-2EB4-4F13-B844-0E14E2AEF915"],
      [4, 10489856, 2091008, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"],
    ]);
  });

  it("lsblk --json --bytes -O: the tree, with an array under both its members, flattened once", () => {
    const tree = parseLsblk(read("cap-raid1-lvm/lsblk.json"));
    const flat = flattenLsblk(tree);
    expect(flat.filter((d) => d.name === "md1")).toHaveLength(1);
    const md1 = flat.find((d) => d.name === "md1")!;
    expect(md1).toMatchObject({ type: "raid1", fstype: "LVM2_member" });
    expect(md1.children.map((c) => [c.name, c.type, c.fstype])).toEqual([
      ["web01--vg-root", "lvm", "ext4"],
      ["web01--vg-var", "lvm", "ext4"],
      ["web01--vg-swap_1", "lvm", "swap"],
    ]);
    expect(flat.find((d) => d.name === "sda2")).toMatchObject({ fstype: "ext3", label: "root", mountpoints: ["/"] });
  });

  it("mdadm --detail --scan --verbose and /proc/mdstat: level, metadata, name, UUID, members in role order", () => {
    expect(parseMdadmScan(read("cap-raid1-lvm/mdadm-detail-scan.txt"))).toEqual([
      { device: "/dev/md0", level: "raid1", numDevices: 2, metadata: "1.2", name: "web01:0", uuid: "e9dddb63:4a5dee66:8ddb7417:f9532006", devices: ["/dev/sdb1", "/dev/sdc1"] },
      { device: "/dev/md1", level: "raid1", numDevices: 2, metadata: "1.2", name: "web01:1", uuid: "2b01f5da:cb709f71:9d5f83ce:a8e232f1", devices: ["/dev/sdb2", "/dev/sdc2"] },
    ]);
    expect(parseMdstat(read("cap-raid1-lvm/mdstat.txt"))).toEqual([
      { name: "md1", state: "active", level: "raid1", members: [{ device: "sdb2", role: 0, faulty: false, spare: false }, { device: "sdc2", role: 1, faulty: false, spare: false }], blocks: 7858176 },
      { name: "md0", state: "active", level: "raid1", members: [{ device: "sdb1", role: 0, faulty: false, spare: false }, { device: "sdc1", role: 1, faulty: false, spare: false }], blocks: 523264 },
    ]);
    // mdadm.conf's ARRAY lines read the same way (DEVICE, HOMEHOST, MAILADDR lines are skipped).
    expect(parseMdadmScan(read("cap-raid1-lvm/mdadm.conf")).map((a) => a.device)).toEqual(["/dev/md0", "/dev/md1"]);
  });

  it("device names: /dev/mapper with doubled dashes, /dev/VG/LV, /dev/md/N", () => {
    expect(deviceName("/dev/mapper/web01--vg-swap_1")).toBe("web01-vg/swap_1");
    expect(deviceName("/dev/mapper/vg_app-lv_root")).toBe("vg_app/lv_root");
    expect(deviceName("/dev/vg_app/lv_root", ["vg_app"])).toBe("vg_app/lv_root");
    expect(deviceName("/dev/md/0")).toBe("md0");
    expect(deviceName("/dev/sdb1")).toBe("sdb1");
  });

  it("ReaR's disklayout.conf: active lines, and the components ReaR excluded (commented) marked so", () => {
    const lines = parseDisklayout(read("rear-debian12-bios.disklayout.conf"));
    const active = lines.filter((l) => !l.excluded).map((l) => `${l.keyword} ${l.words.slice(0, 3).join(" ")}`);
    expect(active).toEqual([
      "disk /dev/sda 8589934592 msdos",
      "part /dev/sda 209715200 1048576",
      "part /dev/sda 2147483648 210763776",
      "part /dev/sda 6231687168 2358247424",
      "raiddisk /dev/md0 535822336 loop",
      "raiddisk /dev/md1 8046772224 unknown",
      "lvmdev /dev/sys /dev/sda3 0WGliO-3UrI-AMAH-PuAp-4Emr-i6dv-6uJn01",
      "lvmgrp /dev/sys 4096 1485",
      "fs /dev/sda1 /boot ext2",
      "fs /dev/sda2 / ext3",
    ]);
    expect(lines.filter((l) => l.excluded && l.keyword === "raidarray").map((l) => l.words[0])).toEqual(["/dev/md0", "/dev/md1"]);
    expect(lines.filter((l) => l.excluded && l.keyword === "lvmvol")).toHaveLength(5);
  });
});

describe("vmlab layout import", () => {
  it("the Debian installer's RAID1 + LVM on two BIOS disks: arrays, the VG named after the host, LVs, fstab by UUID, GRUB on both disks", async () => {
    const l = await importLayout(join(FIX, "cap-raid1-lvm"), { disks: ["sdb", "sdc"] });
    expect(l).toMatchObject({ version: 1, firmware: "bios", source: { kind: "capture", host: "vmlab" } });
    expect(l.disks.map((d) => [d.name, d.size, d.table, d.grub])).toEqual([
      ["sdb", 8 * GiB, "msdos", true],
      ["sdc", 8 * GiB, "msdos", true],
    ]);
    expect(l.disks[0]!.partitions.map((p) => [p.name, p.size, p.type, p.typeName, p.bootable ?? false])).toEqual([
      ["sdb1", 512 * MiB, "fd", "Linux raid autodetect", true],
      ["sdb2", 15726592 * 512, "fd", "Linux raid autodetect", false],
    ]);
    expect(l.raids).toEqual([
      { name: "md0", level: "raid1", devices: ["sdb1", "sdc1"], metadata: "1.2", uuid: "e9dddb63:4a5dee66:8ddb7417:f9532006", mdName: "web01:0", size: 535822336 },
      { name: "md1", level: "raid1", devices: ["sdb2", "sdc2"], metadata: "1.2", uuid: "2b01f5da:cb709f71:9d5f83ce:a8e232f1", mdName: "web01:1", size: 8046772224 },
    ]);
    expect(l.vgs).toHaveLength(1);
    expect(l.vgs[0]).toMatchObject({ name: "web01-vg", extentSize: 4 * MiB, pvs: [{ device: "md1" }] });
    expect(l.vgs[0]!.lvs.map((v) => [v.name, v.size, v.type])).toEqual([
      ["root", 3 * GiB, "linear"],
      ["swap_1", 512 * MiB, "linear"],
      ["var", 2 * GiB, "linear"],
    ]);
    expect(l.filesystems.map((f) => [f.device, f.type, f.mount ?? "-", f.fstab?.by])).toEqual([
      ["md0", "ext4", "/boot", "uuid"],
      ["web01-vg/root", "ext4", "/", "uuid"],
      ["web01-vg/var", "ext4", "/var", "uuid"],
      ["web01-vg/swap_1", "swap", "-", "uuid"],
    ]);
    expect(l.filesystems.find((f) => f.mount === "/")!.uuid).toBe("666104b3-5899-4b2f-9494-1e48c3fa2283");
  });

  it("xfs on an LV, fstab by /dev/mapper path and by LABEL", async () => {
    const l = await importLayout(join(FIX, "cap-xfs-lvm"), { disks: ["sdd"] });
    expect(l.disks.map((d) => [d.name, d.grub ?? false, d.partitions.map((p) => p.type)])).toEqual([["sdd", true, ["83", "8e"]]]);
    expect(l.vgs.map((v) => [v.name, v.pvs.map((p) => p.device), v.lvs.map((x) => x.name)])).toEqual([["vg_app", ["sdd2"], ["lv_root", "lv_swap"]]]);
    expect(l.filesystems.map((f) => [f.device, f.type, f.label, f.mount ?? "-", f.fstab?.by, f.fstab?.spec])).toEqual([
      ["sdd1", "ext4", "boot", "/boot", "label", "LABEL=boot"],
      ["vg_app/lv_root", "xfs", "root", "/", "device", "/dev/mapper/vg_app-lv_root"],
      ["vg_app/lv_swap", "swap", "swap", "-", "device", "/dev/mapper/vg_app-lv_swap"],
    ]);
  });

  it("one GPT disk with a BIOS boot partition, /, /home and swap", async () => {
    const l = await importLayout(join(FIX, "cap-gpt-home"), { disks: ["sde"] });
    expect(l.disks[0]).toMatchObject({ name: "sde", table: "gpt", size: 6 * GiB });
    expect(l.disks[0]!.partitions.map((p) => p.typeName)).toEqual(["BIOS boot", "Linux filesystem", "Linux home", "Linux swap"]);
    expect(l.filesystems.map((f) => [f.device, f.mount ?? f.type])).toEqual([
      ["sde2", "/"],
      ["sde3", "/home"],
      ["sde4", "swap"],
    ]);
  });

  it("ReaR's disklayout.conf of the lab guest: sizes in bytes, PV sizes in sectors, VG sizes in KiB; assumptions said", async () => {
    const l = await importLayout(join(FIX, "rear-debian12-bios.disklayout.conf"));
    expect(l.source).toEqual({ kind: "disklayout.conf", files: ["rear-debian12-bios.disklayout.conf"] });
    expect(l.disks.map((d) => [d.name, d.size, d.table])).toEqual([["sda", 8 * GiB, "msdos"]]);
    expect(l.disks[0]!.partitions.map((p) => [p.name, p.start, p.size, p.type, p.bootable ?? false])).toEqual([
      ["sda1", 2048, 200 * MiB, "83", true],
      ["sda2", 411648, 2 * GiB, "83", false],
      ["sda3", 4605952, 6231687168, "8e", false],
    ]);
    expect(l.vgs).toEqual([{ name: "sys", extentSize: 4 * MiB, size: 1485 * 4 * MiB, pvs: [{ device: "sda3", size: 6231687168, uuid: "0WGliO-3UrI-AMAH-PuAp-4Emr-i6dv-6uJn01" }], lvs: [] }]);
    expect(l.filesystems.map((f) => [f.device, f.type, f.label, f.mount, f.fstab?.options])).toEqual([
      ["sda1", "ext2", "boot", "/boot", "relatime"],
      ["sda2", "ext3", "root", "/", "relatime,errors=remount-ro"],
    ]);
    expect(l.disks[0]!.grub).toBe(true);
    expect(l.assumed!.join("\n")).toMatch(/GRUB in the MBR of sda/);
    // The same guest's capture says the same of its own disk.
    const cap = await importLayout(join(FIX, "cap-debian12-bios"), { disks: ["sda"] });
    expect(cap.disks[0]!.partitions.map((p) => [p.start, p.size])).toEqual(l.disks[0]!.partitions.map((p) => [p.start, p.size]));
    expect(cap.filesystems.filter((f) => f.mount).map((f) => [f.device, f.uuid])).toEqual(l.filesystems.map((f) => [f.device, f.uuid]));
  });

  it("ReaR's disklayout.conf of a one-disk GPT machine (the lab's build of cap-gpt-home): bios_grub, swap flag, /, /home and the swap's UUID", async () => {
    // examples/layouts/gpt-home/disklayout.conf: `rear savelayout` (ReaR 2.7) on the machine that
    // `vmlab up --layout` built from cap-gpt-home --disks sde, where that disk is the only one.
    const file = join(FIX, "../../../examples/layouts/gpt-home/disklayout.conf");
    const lines = parseDisklayout(readFileSync(file, "utf8"));
    expect(lines.filter((l) => !l.excluded).map((l) => l.keyword)).toEqual(["disk", "part", "part", "part", "part", "fs", "fs", "swap"]);
    const l = await importLayout(file);
    expect(l.disks.map((d) => [d.name, d.size, d.table])).toEqual([["sda", 6 * GiB, "gpt"]]);
    // ReaR keeps GPT flags, not type GUIDs: bios_grub and swap are kept, "Linux home" becomes a plain Linux filesystem.
    expect(l.disks[0]!.partitions.map((p) => [p.name, p.start, p.size, p.typeName])).toEqual([
      ["sda1", 2048, 1 * MiB, "BIOS boot"],
      ["sda2", 4096, 3 * GiB, "Linux filesystem"],
      ["sda3", 6295552, 2 * GiB, "Linux filesystem"],
      ["sda4", 10489856, 1070596096, "Linux swap"],
    ]);
    expect(l.filesystems.map((f) => [f.device, f.type, f.mount ?? null, f.uuid])).toEqual([
      ["sda2", "ext4", "/", "01529dd1-ea2d-4ad4-a6a2-56f1def68007"],
      ["sda3", "ext4", "/home", "a04ed90d-87b3-4da3-bc70-04c03970b630"],
      ["sda4", "swap", null, "c1bd3096-64db-46c6-8fcc-708537b09b48"],
    ]);
    // The same UUIDs and geometry as the capture it was built from: the build kept them, ReaR read them back.
    const cap = await importLayout(join(FIX, "cap-gpt-home"), { disks: ["sde"] });
    expect(cap.disks[0]!.partitions.map((p) => [p.start, p.size])).toEqual(l.disks[0]!.partitions.map((p) => [p.start, p.size]));
    expect(cap.filesystems.map((f) => f.uuid)).toEqual(l.filesystems.map((f) => f.uuid));
  });

  it("each example's layout.json is what its source imports to today", async () => {
    const EX = join(FIX, "../../../examples/layouts");
    const cases: [string, string, string[] | undefined][] = [
      ["raid1-lvm", "capture", ["sdb", "sdc"]],
      ["xfs-lvm", "capture", ["sdd"]],
      ["gpt-home", "disklayout.conf", undefined],
    ];
    for (const [dir, src, disks] of cases) {
      const want = JSON.parse(readFileSync(join(EX, dir, "layout.json"), "utf8"));
      expect(JSON.parse(JSON.stringify(await importLayout(join(EX, dir, src), disks ? { disks } : {}))), dir).toEqual(want);
    }
  });

  it("a .tar.gz of a capture reads like the directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmlab-layout-tar-"));
    const tgz = join(dir, "cap-xfs-lvm.tar.gz");
    await execa("tar", ["-czf", tgz, "-C", FIX, "cap-xfs-lvm"]);
    const a = await importLayout(tgz, { disks: ["sdd"] });
    const b = await importLayout(join(FIX, "cap-xfs-lvm"), { disks: ["sdd"] });
    expect({ ...a, source: undefined }).toEqual({ ...b, source: undefined });
  });

  it("the capture script is POSIX sh and only reads: sh -n passes, and it writes nothing but its own directory", async () => {
    for (const tar of [false, true]) {
      const script = captureScript({ tar });
      await execa("sh", ["-n"], { input: script });
      await execa("dash", ["-n"], { input: script });
      // Every command that could change a disk is absent.
      expect(script).not.toMatch(/\b(mkfs|mkswap|sfdisk (?!-d)|parted|wipefs|pvcreate|vgcreate|lvcreate|mdadm --create|dd of=|grub-install)/);
    }
  });
});

describe("refusals: exit 2, naming the device and the feature", () => {
  const lsblk = read("cap-xfs-lvm/lsblk.json");
  it("LUKS, multipath, ZFS, bcache and an iSCSI disk", async () => {
    const cases: [string, RegExp][] = [
      [lsblk.replace(/"fstype": "xfs"/, '"fstype": "crypto_LUKS"'), /uses LUKS encryption/],
      [lsblk.replace(/"fstype": "xfs"/, '"fstype": "zfs_member"'), /uses ZFS/],
      [lsblk.replace(/"fstype": "xfs"/, '"fstype": "bcache"'), /uses bcache/],
      [lsblk.replace(/"type": "lvm"/, '"type": "mpath"'), /uses multipath/],
      [lsblk.replace(/"tran": null/, '"tran": "iscsi"'), /uses an iSCSI disk/],
    ];
    for (const [text, re] of cases) {
      expect(text).not.toBe(lsblk);
      const e = await usage(importLayout(edited("cap-xfs-lvm", "lsblk.json", text)));
      expect(e.message).toMatch(re);
      expect(e.message).toMatch(/^\/dev\/\S+ uses /);
      expect(e.exitCode).toBe(2);
    }
    const crypt = await usage(importLayout(edited("cap-xfs-lvm", "crypttab", "cryptroot UUID=1234 none luks\n")));
    expect(crypt.message).toMatch(/^cryptroot uses LUKS encryption \(crypttab\)/);
  });

  it("a truncated lsblk.json, an unknown partition type, a bad LVM report", async () => {
    const cut = await usage(importLayout(edited("cap-raid1-lvm", "lsblk.json", lsblk.slice(0, lsblk.length / 2))));
    expect(cut.message).toMatch(/lsblk\.json: not JSON .*truncated/);
    const dump = read("cap-raid1-lvm/sfdisk-sdb.dump").replace("type=fd, bootable", "type=da, bootable");
    const type = await usage(importLayout(edited("cap-raid1-lvm", "sfdisk-sdb.dump", dump)));
    expect(type.message).toMatch(/\/dev\/sdb1: partition type da is not one vmlab knows how to rebuild/);
    expect(type.where).toMatch(/sfdisk-sdb\.dump$/);
    const lvs = await usage(importLayout(edited("cap-xfs-lvm", "lvs.json", read("cap-xfs-lvm/lvs.json").replace('"lv_size":"3221225472"', '"lv_size":"3.00g"'))));
    expect(lvs.message).toMatch(/lv_size: "3\.00g" is not a size in bytes/);
    expect(lvs.hint).toMatch(/--units b --nosuffix/);
  });

  it("--disks that would cut an array or a volume group in two", async () => {
    const e = await usage(importLayout(join(FIX, "cap-raid1-lvm"), { disks: ["sdb"] }));
    expect(e.message).toMatch(/md0 has members on sdc1, left out by --disks/);
    expect((await usage(importLayout(join(FIX, "cap-raid1-lvm"), { disks: ["sdz"] }))).message).toMatch(/--disks: sdz is not a disk of the capture/);
  });
});

describe("scaling into the lab's disk budget", () => {
  const check = (l: Layout) => {
    for (const d of l.disks) {
      let end = 0;
      for (const p of [...d.partitions].sort((a, b) => a.start - b.start)) {
        if (p.kind === "logical") continue;
        expect(p.start).toBeGreaterThanOrEqual(end);
        if (p.start !== 2048) expect(p.start % 2048, p.name).toBe(0);
        end = p.start + p.size / 512;
      }
      expect(end * 512).toBeLessThanOrEqual(d.size);
    }
    for (const v of l.vgs) {
      for (const lv of v.lvs) expect(lv.size % v.extentSize, lv.name).toBe(0);
      expect(v.lvs.reduce((s, x) => s + x.size, 0)).toBeLessThanOrEqual(v.size!);
    }
  };

  it("RAID1 + LVM into 4 GiB disks: /boot kept, the rest in proportion, both members alike, / and /var above their least", async () => {
    const { layout, rows } = scaleLayout(await importLayout(join(FIX, "cap-raid1-lvm"), { disks: ["sdb", "sdc"] }), 4 * GiB);
    check(layout);
    const row = (s: string) => rows.find((r) => r.source === s)!;
    expect(row("sdb")).toMatchObject({ lab: "sda", before: 8 * GiB, after: 4 * GiB, note: "scaled" });
    expect(row("sdc1")).toMatchObject({ lab: "sdb1", before: 512 * MiB, after: 512 * MiB, note: "kept: small" });
    expect(row("sdb2").after).toBe(row("sdc2").after);
    expect(row("md1").after).toBeLessThanOrEqual(row("sdb2").after);
    expect(row("md0")).toMatchObject({ before: 535822336, after: 535822336, note: "unchanged" });
    expect(row("web01-vg/root").after).toBeGreaterThanOrEqual(1536 * MiB);
    expect(row("web01-vg/var").after).toBeGreaterThanOrEqual(512 * MiB);
    expect(row("web01-vg/swap_1")).toMatchObject({ after: 512 * MiB, note: "kept: small" });
    expect(layout.scaled).toMatchObject({ diskBudget: 4 * GiB, before: { sdb: 8 * GiB } });
    // Names, UUIDs, types and fstab lines are untouched.
    expect(layout.filesystems).toEqual((await importLayout(join(FIX, "cap-raid1-lvm"), { disks: ["sdb", "sdc"] })).filesystems);
  });

  it("a budget the layout cannot fit is refused, naming what it needs", async () => {
    const l = await importLayout(join(FIX, "cap-raid1-lvm"), { disks: ["sdb", "sdc"] });
    const e = await usage(() => scaleLayout(l, 2 * GiB));
    expect(e.message).toMatch(/cannot be scaled into the lab's disk budget of 2 GiB/);
    expect(e.hint).toMatch(/--scale-to/);
  });

  it("share: fixed parts keep their size, one raised to its need, the rest in proportion", () => {
    expect(share([{ size: 100, need: 0, fixed: true }, { size: 400, need: 0, fixed: false }, { size: 400, need: 0, fixed: false }], 500, 1)).toEqual([100, 200, 200]);
    expect(share([{ size: 400, need: 300, fixed: false }, { size: 400, need: 0, fixed: false }], 500, 1)).toEqual([300, 200]);
    expect(share([{ size: 400, need: 300, fixed: false }, { size: 400, need: 300, fixed: false }], 500, 1)).toBeUndefined();
  });
});

describe("the install script a layout is built with (run in the rescue system)", () => {
  it("RAID1 + LVM: tables by sfdisk, arrays with their UUIDs and names, the VG and LVs, filesystems with their UUIDs, fstab in the layout's style, GRUB on both disks", async () => {
    const { layout } = scaleLayout(await importLayout(join(FIX, "cap-raid1-lvm"), { disks: ["sdb", "sdc"] }), 4 * GiB);
    const s = installScript(layout);
    expect(s).toContain('D0=$(bydisk layout0)');
    expect(s).toContain('D1=$(bydisk layout1)');
    expect(s).toMatch(/sfdisk -q --no-reread --wipe always --wipe-partitions always "\$D0" <<EOF\nlabel: dos\nunit: sectors\n\n\$\(part "\$D0" 1\) : start=2048, size=1048576, type=fd, bootable\n\$\(part "\$D0" 2\) : start=1050624, size=\d+, type=fd\nEOF/);
    expect(s).toContain('mdadm --create /dev/md0 --run --assume-clean --level=raid1 --raid-devices=2 --metadata=1.2 --uuid=e9dddb63:4a5dee66:8ddb7417:f9532006 --name=0 --homehost=web01 "$(part "$D0" 1)" "$(part "$D1" 1)"');
    expect(s).toContain("vgcreate -y -s 4194304b web01-vg /dev/md1");
    expect(s).toMatch(/lvcreate -y -W y -Z y -L \d+b -n root web01-vg/);
    expect(s).toContain("mkfs.ext4 -q -F -U 666104b3-5899-4b2f-9494-1e48c3fa2283 /dev/web01-vg/root");
    expect(s).toContain("mkswap -U 779fed57-af61-4b9a-bdc9-9bc8ed6ee685 /dev/web01-vg/swap_1");
    // / is mounted before /boot and /var.
    expect(s.indexOf("mount /dev/web01-vg/root /mnt/target")).toBeLessThan(s.indexOf("mount /dev/md0 /mnt/target/boot"));
    expect(s).toContain("UUID=3ae093ef-b396-4112-99d2-60a9da9fdb3e\t/boot\text4\tdefaults\t0\t2");
    expect(s).toContain("UUID=779fed57-af61-4b9a-bdc9-9bc8ed6ee685\tnone\tswap\tsw\t0\t0");
    expect(s).toContain('chroot /mnt/target grub-install --target=i386-pc "$D0"');
    expect(s).toContain('chroot /mnt/target grub-install --target=i386-pc "$D1"');
    await execa("bash", ["-n"], { input: s });
  });

  it("xfs with a label, GPT with a BIOS boot partition, fstab by /dev/mapper path and by LABEL kept as written", async () => {
    const xfs = installScript(await importLayout(join(FIX, "cap-xfs-lvm"), { disks: ["sdd"] }));
    expect(xfs).toContain("mkfs.xfs -q -f -m uuid=766734c7-b594-4eb1-ac73-62431f0be7e1 -L root /dev/vg_app/lv_root");
    expect(xfs).toContain("/dev/mapper/vg_app-lv_root\t/\txfs\tdefaults\t0\t0");
    expect(xfs).toContain("LABEL=boot\t/boot\text4\tdefaults\t1\t2");
    const gpt = installScript(await importLayout(join(FIX, "cap-gpt-home"), { disks: ["sde"] }));
    expect(gpt).toContain('$(part "$D0" 1) : start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649');
    await execa("bash", ["-n"], { input: gpt });
  });
});

describe("the fidelity check: a lab machine's capture against its layout", () => {
  it("a capture against itself has no difference; each change is named", async () => {
    const want = await importLayout(join(FIX, "cap-debian12-bios"), { disks: ["sda"] });
    expect(compareLayouts(want, want)).toEqual([]);
    const got = JSON.parse(JSON.stringify(want)) as Layout;
    got.disks[0]!.grub = false;
    got.disks[0]!.partitions[1]!.size -= 1024 * 1024;
    got.filesystems.find((f) => f.mount === "/")!.uuid = "00000000-0000-0000-0000-000000000000";
    got.filesystems.find((f) => f.mount === "/boot")!.mount = undefined;
    got.vgs[0]!.extentSize = 8 * MiB;
    expect(compareLayouts(want, got)).toEqual([
      "disk sda: GRUB not in its MBR, the layout has it there",
      "partition sda2: sectors 411648+4192256, the layout has 411648+4194304",
      "volume group sys: extent size 8388608, the layout has 4194304",
      "sda1: mounted at nothing by fstab, the layout has /boot",
      "sda2: UUID 00000000-0000-0000-0000-000000000000, the layout has d446e9e5-cb83-4d4d-80cb-ced8a81dda7b",
    ]);
  });
});

describe("a layout where an image goes", () => {
  it("layout: in a runbook's front matter, relative to the runbook, becomes the image layout:PATH; a bad layout file or both keys are exit 2", async () => {
    const { readRunbook } = await import("../../src/runbook/scenario.ts");
    const { loadRecipe } = await import("../../src/image/recipes.ts");
    const dir = mkdtempSync(join(tmpdir(), "vmlab-layout-rb-"));
    const layout = await importLayout(join(FIX, "cap-raid1-lvm"), { disks: ["sdb", "sdc"] });
    writeFileSync(join(dir, "web01.json"), JSON.stringify(layout));
    const block = "\n# Move /var\n\n```sh\ndf -h /var\n```\n";
    writeFileSync(join(dir, "ok.md"), `---\nlayout: web01.json\n---\n${block}`);
    const rb = await readRunbook(join(dir, "ok.md"));
    expect(rb.front.image).toBe(`layout:${join(dir, "web01.json")}`);
    const recipe = await loadRecipe(rb.front.image);
    expect(recipe).toMatchObject({ name: "layout-web01", hostname: "vmlab", disk: { size: "8G" }, moreDisks: [{ size: "8G" }] });
    expect(recipe.layout!.raids.map((r) => r.name)).toEqual(["md0", "md1"]);
    writeFileSync(join(dir, "both.md"), `---\nimage: debian12-bios\nlayout: web01.json\n---\n${block}`);
    expect((await usage(readRunbook(join(dir, "both.md")))).message).toMatch(/give image or layout, not both/);
    writeFileSync(join(dir, "bad.json"), '{"version": 1, "disks": []');
    writeFileSync(join(dir, "bad.md"), `---\nlayout: bad.json\n---\n${block}`);
    expect((await usage(readRunbook(join(dir, "bad.md")))).message).toMatch(/bad\.json: not JSON/);
    writeFileSync(join(dir, "gone.md"), `---\nlayout: nowhere.json\n---\n${block}`);
    expect((await usage(readRunbook(join(dir, "gone.md")))).message).toMatch(/nowhere\.json: no such layout file/);
  });
});

describe("a real build of a layout: the lab machine's capture against its layout", () => {
  it("the RAID1 + LVM example built, booted through SeaBIOS and GRUB, and captured there: no difference (same arrays, UUIDs, names, sizes, mounts, GRUB on both disks)", async () => {
    // test/fixtures/layouts/lab-raid1-lvm: what the capture script wrote on the machine that
    // `vmlab image build --layout examples/layouts/raid1-lvm/layout.json` built, at its first boot.
    const { loadLayout } = await import("../../src/layout/image.ts");
    const want = await loadLayout(join(FIX, "../../../examples/layouts/raid1-lvm/layout.json"));
    const got = byLabNames(await importLayout(join(FIX, "lab-raid1-lvm")), layoutDiskIds(want));
    expect(compareLayouts(want, got)).toEqual([]);
    expect(got.filesystems.map((f) => [f.device, f.mounted])).toEqual([
      ["md0", ["/boot"]],
      ["web01-vg/root", ["/"]],
      ["web01-vg/swap_1", ["[SWAP]"]],
      ["web01-vg/var", ["/var"]],
    ]);
    // And a machine that differs is caught: the same capture against the xfs layout.
    const other = await loadLayout(join(FIX, "../../../examples/layouts/xfs-lvm/layout.json"));
    expect(compareLayouts(other, got).length).toBeGreaterThan(5);
  });
});
