import { describe, expect, it } from "vitest";
import { crossCheck, parseFdiskList, parseSfdiskJson, partition } from "../../src/procedures/offset-mount.ts";

// Recorded from util-linux 2.38 on Debian 12, on a snapshot of an LV holding a VM disk.
const SFDISK = `{
   "partitiontable": {
      "label": "dos",
      "id": "0xad5d8043",
      "device": "/dev/sys/vm01-snap",
      "unit": "sectors",
      "sectorsize": 512,
      "partitions": [
         {
            "node": "/dev/sys/vm01-snap1",
            "start": 2048,
            "size": 81920,
            "type": "83",
            "bootable": true
         },{
            "node": "/dev/sys/vm01-snap2",
            "start": 83968,
            "size": 47104,
            "type": "82"
         }
      ]
   }
}`;

const FDISK = `Disk /dev/sys/vm01-snap: 64 MiB, 67108864 bytes, 131072 sectors
Units: sectors of 1 * 512 = 512 bytes
Sector size (logical/physical): 512 bytes / 512 bytes
I/O size (minimum/optimal): 512 bytes / 512 bytes
Disklabel type: dos
Disk identifier: 0xad5d8043

Device               Boot Start    End Sectors Size Id Type
/dev/sys/vm01-snap1  *     2048  83967   81920  40M 83 Linux
/dev/sys/vm01-snap2       83968 131071   47104  23M 82 Linux swap / Solaris`;

// The runbook's own listing: an older fdisk with a "Blocks" column and a partition at sector 63.
const FDISK_RUNBOOK = `Disk /dev/vm_group/vm01-snapshot: 10.4 GB, 10485760000 bytes
255 heads, 63 sectors/track, 1274 cylinders, total 20480000 sectors
Units = sectors of 1 * 512 = 512 bytes

Device Boot Start End Blocks Id System
/dev/vm_group/vm01-snapshot1 * 63 20450744 10225341 7 HPFS/NTFS`;

describe("partition offsets", () => {
  it("sfdisk --json: start × sector size", () => {
    const t = parseSfdiskJson(SFDISK);
    expect(t).toMatchObject({ device: "/dev/sys/vm01-snap", label: "dos", sectorSize: 512 });
    expect(partition(t, 1)).toMatchObject({ start: 2048, sectors: 81920, type: "83", bootable: true, offsetBytes: 1048576, sizeBytes: 41943040 });
    expect(partition(t, 2)).toMatchObject({ start: 83968, offsetBytes: 83968 * 512, bootable: false });
  });

  it("fdisk -l -u agrees with sfdisk, boot flag and all", () => {
    const t = parseFdiskList(FDISK);
    expect(t.partitions.map((p) => [p.number, p.start, p.sectors, p.type, p.bootable])).toEqual([
      [1, 2048, 81920, "83", true],
      [2, 83968, 47104, "82", false],
    ]);
    expect(() => crossCheck(parseSfdiskJson(SFDISK), t)).not.toThrow();
  });

  it("the runbook's partition at sector 63 is at byte 32256", () => {
    const t = parseFdiskList(FDISK_RUNBOOK);
    expect(t).toMatchObject({ device: "/dev/vm_group/vm01-snapshot", sectorSize: 512 });
    expect(partition(t, 1)).toMatchObject({ start: 63, sectors: 20450744 - 63 + 1, type: "7", bootable: true, offsetBytes: 32256 });
  });

  it("a disagreement between the two readings is an error", () => {
    const moved = parseFdiskList(FDISK.replace("  2048  83967", "  4096  83967"));
    expect(() => crossCheck(parseSfdiskJson(SFDISK), moved)).toThrow(/disagree/);
  });

  it("a missing partition or a device without a table says what to do", () => {
    expect(() => partition(parseSfdiskJson(SFDISK), 3)).toThrow(/has no partition 3/);
    expect(() => parseSfdiskJson("sfdisk: /dev/sys/vm01: does not contain a recognized partition table")).toThrow(/did not print JSON/);
  });
});
