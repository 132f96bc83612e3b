import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { mirrorTable, parseMdstat } from "../../src/procedures/root-to-mdraid.ts";

// `sfdisk -d /dev/sda` of the debian12-bios image.
const SDA = `label: dos
label-id: 0x5c4ee4d2
device: /dev/sda
unit: sectors
sector-size: 512

/dev/sda1 : start=        2048, size=      409600, type=83, bootable
/dev/sda2 : start=      411648, size=     4194304, type=83
/dev/sda3 : start=     4605952, size=    12171264, type=8e
`;

describe("mirrorTable: the second disk's partition table", () => {
  it("same geometry, mirrored partitions typed fd, the rest untouched, no copied disk identifier", () => {
    const t = mirrorTable(SDA, "/dev/sda", "/dev/sdb", [1, 2]);
    expect(t).toContain("device: /dev/sdb");
    expect(t).not.toContain("label-id");
    expect(t).not.toContain("/dev/sda");
    expect(t).toContain("/dev/sdb1 : start=        2048, size=      409600, type=fd, bootable");
    expect(t).toContain("/dev/sdb2 : start=      411648, size=     4194304, type=fd");
    expect(t).toContain("/dev/sdb3 : start=     4605952, size=    12171264, type=8e");
  });

  it("only the partitions asked for become RAID", () => {
    const t = mirrorTable(SDA, "/dev/sda", "/dev/sdb", [2]);
    expect(t).toContain("/dev/sdb1 : start=        2048, size=      409600, type=83, bootable");
    expect(t).toContain("/dev/sdb2 : start=      411648, size=     4194304, type=fd");
  });

  it("GPT (debian12-uefi's table, sfdisk -d by util-linux 2.38): mirrored partitions typed R, no disk GUID and no partition GUIDs copied", () => {
    // The table sfdisk wrote from the debian12-uefi recipe, dumped by the same sfdisk as the guest's.
    const dump = readFileSync(new URL("../fixtures/sfdisk-dump-debian12-uefi.txt", import.meta.url), "utf8");
    const t = mirrorTable(dump, "/dev/sda", "/dev/sdb", [2, 3]);
    expect(t).not.toMatch(/label-id|uuid=/);
    expect(t).toContain("label: gpt");
    expect(t).toContain('/dev/sdb1 : start=        2048, size=      131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"');
    expect(t).toContain('/dev/sdb2 : start=      133120, size=      409600, type=R, name="boot"');
    expect(t).toContain('/dev/sdb3 : start=      542720, size=     4194304, type=R, name="root"');
    expect(t).toContain('/dev/sdb4 : start=     4737024, size=    12040159, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name="sys"');
  });

  it("nvme-style names with a p before the number", () => {
    const dump = "label: dos\ndevice: /dev/nvme0n1\n\n/dev/nvme0n1p1 : start=2048, size=1024, type=83\n";
    expect(mirrorTable(dump, "/dev/nvme0n1", "/dev/nvme1n1", [1])).toContain("/dev/nvme1n1p1 : start=2048, size=1024, type=fd");
  });
});

describe("parseMdstat", () => {
  const RESYNCING = `Personalities : [raid1] [linear] [multipath] [raid0] [raid6] [raid5] [raid4] [raid10]
md1 : active raid1 sda2[2] sdb2[0]
      2094080 blocks super 1.2 [2/1] [U_]
      [=>...................]  recovery =  8.5% (178432/2094080) finish=1.2min speed=25489K/sec

md0 : active raid1 sda1[2] sdb1[0]
      203776 blocks super 1.2 [2/2] [UU]

unused devices: <none>
`;
  it("members, counts, map and whether a recovery runs", () => {
    expect(parseMdstat(RESYNCING)).toEqual([
      { md: "/dev/md1", level: "raid1", members: ["sda2", "sdb2"], total: 2, up: 1, map: "U_", syncing: true },
      { md: "/dev/md0", level: "raid1", members: ["sda1", "sdb1"], total: 2, up: 2, map: "UU", syncing: false },
    ]);
  });

  it("a degraded array after a disk was pulled, and a faulty member", () => {
    const text = `Personalities : [raid1]
md0 : active raid1 sdb1[0] sda1[2](F)
      203776 blocks super 1.2 [2/1] [U_]

md1 : active (auto-read-only) raid1 sda2[1]
      2094080 blocks super 1.2 [2/1] [_U]

unused devices: <none>
`;
    const a = parseMdstat(text);
    expect(a[0]).toMatchObject({ md: "/dev/md0", members: ["sdb1"], up: 1, map: "U_", syncing: false });
    expect(a[1]).toMatchObject({ md: "/dev/md1", members: ["sda2"], up: 1, map: "_U" });
  });

  it("no arrays", () => {
    expect(parseMdstat("Personalities : \nunused devices: <none>\n")).toEqual([]);
  });
});
