/**
 * Partition tables read from disk images the lab makes here with qemu-img and
 * sfdisk (msdos with logical partitions, GPT, raw and qcow2), checked against
 * `sfdisk --json`; the boot-disk backup's sector count; and the refusals of
 * `vmlab dr` and `vmlab inspect` (exit 2, nothing written).
 */
import { existsSync, readdirSync } from "node:fs";
import { readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { UsageError } from "../../src/errors.ts";
import { bufferReader, parsePartitionTable, readImagePartitions, type PartitionTable } from "../../src/disk/partitions.ts";
import {
  backupBootImage,
  blockSizeFor,
  bootBackupSectors,
  checkRestoreTarget,
  loadBackup,
  restoreBootImage,
  sha256File,
  type BootBackupMeta,
} from "../../src/disk/boot-backup.ts";
import { tableFromSfdisk } from "../../src/procedures/boot-backup.ts";
import { vmlab } from "../vm/helpers.ts";

let tmp: DirectoryResult;
const p = (f: string) => join(tmp.path, f);

/** A raw disk image of `size` partitioned by sfdisk from `script`, and its qcow2 copy. */
async function makeDisk(name: string, size: string, script: string): Promise<{ raw: string; qcow2: string; sfdisk: PartitionTable }> {
  const raw = p(`${name}.raw`);
  const qcow2 = p(`${name}.qcow2`);
  await execa("qemu-img", ["create", "-q", "-f", "raw", raw, size]);
  await execa("sfdisk", ["--quiet", raw], { input: script });
  await execa("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow2]);
  const json = JSON.parse((await execa("sfdisk", ["--json", raw])).stdout);
  const bytes = Number((await execa("stat", ["-c", "%s", raw])).stdout);
  return { raw, qcow2, sfdisk: tableFromSfdisk(json, bytes) };
}

const row = (t: PartitionTable) => t.partitions.map((x) => [x.number, x.startSector, x.sizeSectors, x.type.toLowerCase()]);

// The runbook's boot disk: /boot, then swap; a logical partition after it.
const BOOT_DISK = "label: dos\nstart=2048, size=204800, type=83, bootable\nstart=206848, size=131072, type=82\nstart=337920, type=5\nstart=339968, size=20480, type=83\n";
const GPT_DISK = "label: gpt\nstart=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649\nstart=4096, size=102400, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=boot\nstart=106496, size=65536, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n";

let bootDisk: Awaited<ReturnType<typeof makeDisk>>;
let gptDisk: Awaited<ReturnType<typeof makeDisk>>;

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  bootDisk = await makeDisk("boot", "256M", BOOT_DISK);
  gptDisk = await makeDisk("gpt", "128M", GPT_DISK);
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("reading partition tables from disk images", () => {
  it("msdos with an extended partition: primaries and logicals match sfdisk --json, raw and qcow2 alike", async () => {
    for (const img of [bootDisk.raw, bootDisk.qcow2]) {
      const t = await readImagePartitions(img);
      expect(t.label).toBe("dos");
      expect(row(t)).toEqual(row(bootDisk.sfdisk));
      expect(t.partitions.map((x) => x.kind)).toEqual(["primary", "primary", "extended", "logical"]);
      expect(t.partitions[0]!.bootable).toBe(true);
      expect(t.partitions[1]!.offsetBytes).toBe(206848 * 512);
      expect(t.diskBytes).toBe(256 * 2 ** 20);
    }
    expect(row(bootDisk.sfdisk)).toEqual([
      [1, 2048, 204800, "83"],
      [2, 206848, 131072, "82"],
      [3, 337920, 524288 - 337920, "5"],
      [5, 339968, 20480, "83"],
    ]);
  });

  it("GPT: entries, type names and partition names match sfdisk", async () => {
    const t = await readImagePartitions(gptDisk.qcow2);
    expect(t.label).toBe("gpt");
    expect(row(t)).toEqual(row(gptDisk.sfdisk));
    expect(t.partitions.map((x) => x.typeName)).toEqual(["BIOS boot", "Linux filesystem", "Linux swap"]);
    expect(t.partitions[1]!.name).toBe("boot");
  });

  it("a blank disk has no table; a whole-disk ext filesystem is recognised", async () => {
    await execa("qemu-img", ["create", "-q", "-f", "qcow2", p("blank.qcow2"), "64M"]);
    expect(await readImagePartitions(p("blank.qcow2"))).toMatchObject({ label: "none", partitions: [] });
    await execa("qemu-img", ["create", "-q", "-f", "raw", p("fs.raw"), "16M"]);
    await execa("mke2fs", ["-q", "-F", "-t", "ext3", p("fs.raw")]);
    expect((await readImagePartitions(p("fs.raw"))).content).toMatch(/ext2\/3\/4 filesystem on the whole disk/);
  });

  it("bad input is a UsageError that says what is wrong", async () => {
    await writeFile(p("notes.txt"), "not a disk\n".repeat(100));
    await expect(readImagePartitions(p("notes.txt"))).rejects.toThrow(/is not a disk image/);
    // Whole sectors, but no 0x55AA: the message names the signature.
    await writeFile(p("noise.bin"), Buffer.alloc(4096, 0x41));
    await expect(readImagePartitions(p("noise.bin"))).rejects.toThrow(/no partition table.*0x55AA/);
    // A raw image cut off inside its last partition.
    await execa("cp", [bootDisk.raw, p("cut.raw")]);
    await truncate(p("cut.raw"), 150 * 2 ** 20);
    await expect(readImagePartitions(p("cut.raw"))).rejects.toThrow(/truncated.*partition 2 ends at sector 337920/);
    // A qcow2 cut short: qemu-img check finds it.
    await execa("cp", [bootDisk.qcow2, p("cut.qcow2")]);
    await truncate(p("cut.qcow2"), 200_000);
    await expect(readImagePartitions(p("cut.qcow2"))).rejects.toThrow(/damaged or truncated qcow2/);
    await expect(readImagePartitions(p("missing.qcow2"))).rejects.toThrow(UsageError);
  });

  it("a 446-byte restore (no signature) is reported, not taken for a table", async () => {
    const disk = await readFile(bootDisk.raw);
    const only446 = Buffer.alloc(disk.length);
    disk.copy(only446, 0, 0, 446);
    only446[0] = 0xeb; // boot code, as GRUB's starts
    await expect(parsePartitionTable(bufferReader(only446), only446.length, "new disk")).rejects.toThrow(/0x55AA/);
  });
});

describe("how many sectors the boot-disk backup copies", () => {
  it("everything before the swap partition: MBR, the gap after it, /boot", () => {
    expect(bootBackupSectors(bootDisk.sfdisk)).toEqual({ sectors: 206848, reason: "start of swap partition 2" });
    // The runbook's disk: /boot from 63, swap from 530145.
    const runbook: PartitionTable = tableFromSfdisk(
      { partitiontable: { label: "dos", partitions: [{ node: "/dev/sdb1", start: 63, size: 530082, type: "83" }, { node: "/dev/sdb2", start: 530145, size: 8385930, type: "82" }] } },
      8916075 * 512,
    );
    expect(bootBackupSectors(runbook).sectors).toBe(530145);
    expect(bootBackupSectors(gptDisk.sfdisk).sectors).toBe(106496);
    expect(bootBackupSectors(bootDisk.sfdisk, 4096)).toEqual({ sectors: 4096, reason: "--sectors" });
  });

  it("refuses without a swap partition, with a partition cut in half, or on a disk without a table", () => {
    const noSwap = { ...bootDisk.sfdisk, partitions: bootDisk.sfdisk.partitions.filter((x) => x.type !== "82") };
    expect(() => bootBackupSectors(noSwap)).toThrow(/no swap partition.*/);
    const overlap = { ...bootDisk.sfdisk, partitions: bootDisk.sfdisk.partitions.map((x) => (x.number === 1 ? { ...x, sizeSectors: 300000 } : x)) };
    expect(() => bootBackupSectors(overlap)).toThrow(/partition 1 overlaps the start of swap partition 2/);
    expect(() => bootBackupSectors({ label: "none", diskBytes: 1 << 20, sectorSize: 512, partitions: [] })).toThrow(/no partition table/);
    expect(() => bootBackupSectors(bootDisk.sfdisk, 10 ** 9)).toThrow(/more than the disk holds/);
  });

  it("copies in the largest block size that divides the count", () => {
    expect(blockSizeFor(206848)).toBe(1 << 20);
    expect(blockSizeFor(530145)).toBe(512);
    expect(blockSizeFor(3072)).toBe(512 * 1024);
  });
});

describe("restore targets", () => {
  const meta = { format: "vmlab-boot-backup/1", sectorSize: 512, sectors: 206848, sourceBytes: 256 * 2 ** 20, table: { label: "dos", partitions: [] } } as unknown as BootBackupMeta;
  it("the same size and sector size passes; smaller, larger and other sector sizes are refused", () => {
    expect(() => checkRestoreTarget(meta, { bytes: 256 * 2 ** 20, where: "t" })).not.toThrow();
    expect(() => checkRestoreTarget(meta, { bytes: 50 * 2 ** 20, where: "t" })).toThrow(/too small.*the backup alone is 105906176 bytes/);
    expect(() => checkRestoreTarget(meta, { bytes: 128 * 2 ** 20, where: "t" })).toThrow(/too small.*describes a disk of 268435456 bytes/);
    expect(() => checkRestoreTarget(meta, { bytes: 512 * 2 ** 20, where: "t" })).toThrow(/different geometry/);
    expect(() => checkRestoreTarget(meta, { bytes: 256 * 2 ** 20, sectorSize: 4096, where: "t" })).toThrow(/4096-byte sectors/);
  });
});

describe("backup and restore of disk image files", () => {
  it("round trip onto a blank qcow2 of the same size: the table and /boot come back, the swap area stays blank", async () => {
    const backup = p("rt.img");
    const meta = await backupBootImage(bootDisk.qcow2, backup);
    expect(meta.sectors).toBe(206848);
    expect((await readFile(backup)).length).toBe(206848 * 512);
    expect(meta.sha256).toBe(await sha256File(backup));
    await execa("qemu-img", ["create", "-q", "-f", "qcow2", p("new.qcow2"), "256M"]);
    await restoreBootImage(backup, p("new.qcow2"));
    // The logical partition's EBR sits after the swap area: not in the backup, so only the primaries are whole.
    await execa("qemu-img", ["create", "-q", "-f", "raw", p("new.raw"), "256M"]);
    await restoreBootImage(backup, p("new.raw"));
    const json = JSON.parse((await execa("sfdisk", ["--json", p("new.raw")])).stdout);
    expect(json.partitiontable.partitions.slice(0, 3).map((x: { start: number }) => x.start)).toEqual([2048, 206848, 337920]);
    const raw = await readFile(p("new.raw"));
    expect(raw.subarray(206848 * 512, 206848 * 512 + 4096).every((b) => b === 0)).toBe(true);
  });

  it("a truncated backup, a backup without its description, and a changed backup are refused", async () => {
    const backup = p("b2.img");
    await backupBootImage(bootDisk.raw, backup, { sectors: 4096 });
    await loadBackup(backup);
    await execa("cp", [backup, p("b3.img")]);
    await expect(loadBackup(p("b3.img"))).rejects.toThrow(/b3.img.json is missing/);
    await execa("cp", [`${backup}.json`, p("b3.img.json")]);
    await truncate(p("b3.img"), 1000 * 512);
    await expect(loadBackup(p("b3.img"))).rejects.toThrow(/truncated/);
    await execa("cp", [backup, p("b3.img")]);
    const f = await readFile(p("b3.img"));
    f[100] ^= 0xff;
    await writeFile(p("b3.img"), f);
    await expect(loadBackup(p("b3.img"))).rejects.toThrow(/does not match its checksum/);
    await writeFile(p("b4.img"), "x");
    await writeFile(p("b4.img.json"), "{}");
    await expect(loadBackup(p("b4.img"))).rejects.toThrow(/not a vmlab boot backup description/);
  });
});

describe("vmlab dr and vmlab inspect on the command line", () => {
  it("inspect prints each partition's offset and a mount command; --json has the same numbers", async () => {
    const r = await vmlab(["inspect", bootDisk.raw]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`mount -o ro,loop,offset=${2048 * 512},sizelimit=${204800 * 512} ${bootDisk.raw} /mnt`);
    expect(r.stdout).toContain("(swap: nothing to mount)");
    const j = await vmlab(["inspect", "--json", bootDisk.qcow2]);
    const json = JSON.parse(j.stdout);
    expect(json.partitions.map((x: { number: number; offsetBytes: number }) => [x.number, x.offsetBytes])).toEqual([
      [1, 2048 * 512],
      [2, 206848 * 512],
      [3, 337920 * 512],
      [5, 339968 * 512],
    ]);
    expect(json.partitions[0].mount).toContain("disk.raw");
    const q = await vmlab(["inspect", bootDisk.qcow2]);
    expect(q.stdout).toContain("qemu-img convert -f qcow2 -O raw");
  });

  it("not a disk image, a truncated image: exit 2, a clear message, no backup written", async () => {
    await writeFile(p("cli-notes.txt"), "hello\n");
    const a = await vmlab(["inspect", p("cli-notes.txt")]);
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toContain("is not a disk image");
    await execa("cp", [bootDisk.qcow2, p("cli-cut.qcow2")]);
    await truncate(p("cli-cut.qcow2"), 200_000);
    const b = await vmlab(["dr", "backup-boot", p("cli-cut.qcow2"), p("cli-out.img")]);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toContain("damaged or truncated qcow2");
    expect(existsSync(p("cli-out.img"))).toBe(false);
    const c = await vmlab(["inspect", "no-such-image-name"]);
    expect(c.exitCode).toBe(2);
    expect(c.stderr).toContain("neither a file nor a cached image");
  });

  it("restore onto a too-small disk or one of another size: exit 2, the target unchanged", async () => {
    const backup = p("cli.img");
    const ok = await vmlab(["dr", "backup-boot", bootDisk.qcow2, backup]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("206848 sectors");
    await execa("qemu-img", ["create", "-q", "-f", "qcow2", p("small.qcow2"), "64M"]);
    await execa("qemu-img", ["create", "-q", "-f", "qcow2", p("large.qcow2"), "512M"]);
    const before = [await sha256File(p("small.qcow2")), await sha256File(p("large.qcow2"))];
    const small = await vmlab(["dr", "restore-boot", backup, p("small.qcow2")]);
    expect(small.exitCode).toBe(2);
    expect(small.stderr).toMatch(/is too small: 67108864 bytes, the backup alone is 105906176 bytes/);
    expect(small.stderr).toContain("nothing was written");
    const large = await vmlab(["dr", "restore-boot", backup, p("large.qcow2")]);
    expect(large.exitCode).toBe(2);
    expect(large.stderr).toContain("different geometry");
    expect([await sha256File(p("small.qcow2")), await sha256File(p("large.qcow2"))]).toEqual(before);
    // Backing up over an existing file is refused too.
    const again = await vmlab(["dr", "backup-boot", bootDisk.qcow2, backup]);
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toContain("refusing to overwrite");
    expect(readdirSync(tmp.path).filter((f) => f.startsWith("cli.img"))).toEqual(["cli.img", "cli.img.json"]);
  });
});
