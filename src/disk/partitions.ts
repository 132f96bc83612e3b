/// <reference path="./vendor.d.ts" />
// (The reference carries the mbr/gpt types to projects that typecheck vmlab's sources from node_modules.)
/**
 * Reading a disk image's partition table from the host, without root and
 * without qemu-nbd: the sectors come through `qemu-img dd` (any format QEMU
 * reads, including qcow2 overlays), the MBR and GPT structures are parsed by
 * the `mbr` and `gpt` packages, and the extended-partition chain is walked
 * here. Used by `vmlab inspect` and by the boot-disk backup commands.
 */
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import MBR from "mbr";
import GPT from "gpt";
import { UsageError, VmlabError } from "../errors.ts";
import { commandLine, requireTool } from "../host/tools.ts";
import { shellQuote } from "../util/proc.ts";
import { imageInfo } from "./qemu-img.ts";

export const SECTOR = 512;

export interface DiskPartition {
  /** Partition number as Linux names it: 1-4 primary, 5+ logical; GPT entries from 1. */
  number: number;
  startSector: number;
  sizeSectors: number;
  /** msdos: the type byte in hex without 0x ("83"); GPT: the type GUID. */
  type: string;
  typeName: string;
  kind: "primary" | "extended" | "logical" | "gpt";
  bootable?: boolean;
  /** GPT partition name. */
  name?: string;
  /** Byte offset of the partition in the disk: startSector × 512. */
  offsetBytes: number;
  sizeBytes: number;
}

export interface PartitionTable {
  /** "dos" (msdos/MBR), "gpt", or "none" (no partition table). */
  label: "dos" | "gpt" | "none";
  diskBytes: number;
  sectorSize: number;
  partitions: DiskPartition[];
  /** For label "none": what the first sectors hold ("empty", "ext2/3/4 filesystem"). */
  content?: string;
}

/** Reads `count` sectors from `lba`. */
export type SectorReader = (lba: number, count: number) => Promise<Buffer>;

export const DOS_TYPES: Record<string, string> = {
  "0": "empty",
  "5": "Extended",
  "f": "W95 Ext'd (LBA)",
  "85": "Linux extended",
  "7": "HPFS/NTFS/exFAT",
  "b": "W95 FAT32",
  "c": "W95 FAT32 (LBA)",
  "82": "Linux swap",
  "83": "Linux",
  "8e": "Linux LVM",
  "fd": "Linux raid autodetect",
  "ee": "GPT protective",
  "ef": "EFI (FAT-12/16/32)",
};

export const GPT_TYPES: Record<string, string> = {
  "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
  "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
  "E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
  "A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
  "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI System",
  "21686148-6449-6E6F-744E-656564454649": "BIOS boot",
  "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
  "BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot",
  "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
  "933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux home",
  "4D21B016-B534-45C2-A9FB-5C16E091FD2D": "Linux variable data",
  "3B8F8425-20E0-4F3B-907F-1A25A76F98E8": "Linux server data",
  "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1": "Linux temporary data",
  "8DA63339-0007-60C0-C436-083AC8230908": "Linux reserved",
};

/** True when the sector ends with the 0x55 0xAA boot signature. */
export function hasBootSignature(sector: Buffer): boolean {
  return sector.length >= 512 && sector[510] === 0x55 && sector[511] === 0xaa;
}

function part(p: Omit<DiskPartition, "offsetBytes" | "sizeBytes">): DiskPartition {
  return { ...p, offsetBytes: p.startSector * SECTOR, sizeBytes: p.sizeSectors * SECTOR };
}

/**
 * Parse the partition table of a disk of `diskBytes` bytes. Pure given the
 * reader. Throws UsageError for what is not a partitioned disk image or is
 * cut short: a table that points past the end of the disk means a truncated
 * image.
 */
export async function parsePartitionTable(read: SectorReader, diskBytes: number, where = "disk"): Promise<PartitionTable> {
  if (diskBytes % SECTOR !== 0) {
    throw new UsageError(`${where} is not a disk image, or is truncated: ${diskBytes} bytes is not a whole number of 512-byte sectors`, {
      where,
      hint: "check the path; a disk image made by vmlab or qemu-img is always whole sectors",
    });
  }
  if (diskBytes < 4 * SECTOR) throw new UsageError(`${where} is not a disk image: only ${diskBytes} bytes`, { where });
  const totalSectors = diskBytes / SECTOR;
  const head = await read(0, 4);
  const mbr = head.subarray(0, SECTOR);
  if (!hasBootSignature(mbr)) {
    if (head.every((b) => b === 0)) return { label: "none", diskBytes, sectorSize: SECTOR, partitions: [], content: "empty first sectors: a blank disk" };
    // An ext2/3/4 superblock at byte 1024 (magic 0xEF53 at 1080): a filesystem on the whole disk.
    if (head.readUInt16LE(1080) === 0xef53 && mbr.subarray(0, 446).every((b) => b === 0)) {
      return { label: "none", diskBytes, sectorSize: SECTOR, partitions: [], content: "an ext2/3/4 filesystem on the whole disk" };
    }
    throw new UsageError(`${where} has no partition table: its first sector does not end with the 0x55AA boot signature`, {
      where,
      output: `bytes 510-511: ${mbr.subarray(510, 512).toString("hex") || "(missing)"}; first bytes: ${mbr.subarray(0, 16).toString("hex")}`,
      hint: "this is not a disk image, or its MBR was damaged (for example only the first 446 bytes were restored); `vmlab disk info` shows what qemu-img sees",
    });
  }
  const primary = new MBR.CLASSIC(Buffer.from(mbr)).partitions;
  const checkFits = (p: DiskPartition) => {
    if (p.startSector + p.sizeSectors > totalSectors) {
      throw new UsageError(`${where} is truncated, or its partition table is wrong: partition ${p.number} ends at sector ${p.startSector + p.sizeSectors}, past the end of the disk (${totalSectors} sectors)`, {
        where,
        hint: "copy the image again in full; `vmlab disk info` shows its size",
      });
    }
  };
  if (primary.some((p) => p.type === 0xee)) return parseGpt(read, diskBytes, where);

  const partitions: DiskPartition[] = [];
  for (const [i, p] of primary.entries()) {
    if (p.type === 0 || p.sectors === 0) continue;
    const type = p.type.toString(16);
    const extended = MBR.Partition.isExtended(p.type);
    const dp = part({
      number: i + 1,
      startSector: p.firstLBA,
      sizeSectors: p.sectors,
      type,
      typeName: DOS_TYPES[type] ?? "unknown",
      kind: extended ? "extended" : "primary",
      bootable: p.status === 0x80,
    });
    checkFits(dp);
    partitions.push(dp);
    if (!extended) continue;
    // The chain of extended boot records: each holds one logical partition
    // (relative to itself) and a link to the next (relative to the extended partition).
    let ebrLba = p.firstLBA;
    let number = 5;
    const seen = new Set<number>();
    while (ebrLba && !seen.has(ebrLba) && seen.size < 128) {
      seen.add(ebrLba);
      const ebr = await read(ebrLba, 1);
      if (!hasBootSignature(ebr)) {
        throw new UsageError(`${where}: the extended boot record at sector ${ebrLba} has no 0x55AA signature`, {
          where,
          hint: "the chain of logical partitions is damaged or the image is truncated",
        });
      }
      const [logical, next] = new MBR.CLASSIC(Buffer.from(ebr)).partitions;
      if (logical && logical.type !== 0 && logical.sectors > 0) {
        const t = logical.type.toString(16);
        const lp = part({
          number: number++,
          startSector: ebrLba + logical.firstLBA,
          sizeSectors: logical.sectors,
          type: t,
          typeName: DOS_TYPES[t] ?? "unknown",
          kind: "logical",
          bootable: logical.status === 0x80,
        });
        checkFits(lp);
        partitions.push(lp);
      }
      ebrLba = next && next.type !== 0 && next.firstLBA ? p.firstLBA + next.firstLBA : 0;
    }
  }
  return { label: "dos", diskBytes, sectorSize: SECTOR, partitions };
}

async function parseGpt(read: SectorReader, diskBytes: number, where: string): Promise<PartitionTable> {
  const totalSectors = diskBytes / SECTOR;
  const headerSector = await read(1, 1);
  const gpt = new GPT({ blockSize: SECTOR });
  try {
    gpt.parseHeader(headerSector, 0);
  } catch (err) {
    throw new UsageError(`${where} has a protective MBR but no valid GPT header at sector 1`, { where, output: String((err as Error).message) });
  }
  if (Number(gpt.backupLBA) >= totalSectors) {
    throw new UsageError(`${where} is truncated: its GPT puts the backup header at sector ${gpt.backupLBA}, past the end of the disk (${totalSectors} sectors)`, {
      where,
      hint: "copy the image again in full",
    });
  }
  const tableSectors = Math.ceil((gpt.entries * gpt.entrySize) / SECTOR);
  const table = await read(Number(gpt.tableOffset), tableSectors);
  gpt.parseTable(table, 0, table.length);
  const partitions: DiskPartition[] = [];
  // Entries keep their slot numbers (Linux names partitions by slot).
  for (let slot = 0; slot < gpt.entries && (slot + 1) * gpt.entrySize <= table.length; slot++) {
    const off = slot * gpt.entrySize;
    if (table.subarray(off, off + 16).every((b) => b === 0)) continue;
    const e = gpt.partitions.find((x) => x.firstLBA === table.readBigUInt64LE(off + 32) && x.lastLBA === table.readBigUInt64LE(off + 40))!;
    const type = e.type.toUpperCase();
    const dp = part({
      number: slot + 1,
      startSector: Number(e.firstLBA),
      sizeSectors: Number(e.lastLBA - e.firstLBA + 1n),
      type,
      typeName: GPT_TYPES[type] ?? "unknown",
      kind: "gpt",
      name: e.name.replace(/\0+$/, ""),
    });
    if (dp.startSector + dp.sizeSectors > totalSectors) {
      throw new UsageError(`${where} is truncated: partition ${dp.number} ends past the end of the disk`, { where, hint: "copy the image again in full" });
    }
    partitions.push(dp);
  }
  return { label: "gpt", diskBytes, sectorSize: SECTOR, partitions };
}

/** A sector reader over a whole Buffer (tests, and raw data already in memory). */
export function bufferReader(buf: Buffer): SectorReader {
  return async (lba, count) => {
    const out = Buffer.alloc(count * SECTOR);
    buf.copy(out, 0, lba * SECTOR, Math.min(buf.length, (lba + count) * SECTOR));
    return out;
  };
}

export interface OpenedImage {
  path: string;
  format: "raw" | "qcow2";
  /** The size the guest sees. */
  diskBytes: number;
  read: SectorReader;
  /** Remove the reader's temporary files. */
  close(): Promise<void>;
}

/**
 * Open a disk image read-only for sector reads, after checking it is one:
 * the file exists, qemu-img reads it as raw or qcow2, and a qcow2 passes
 * `qemu-img check` (a truncated qcow2 reads as zeros otherwise). Works on a
 * running machine's disk too (qemu-img -U); its view may then lag the guest's.
 */
export async function openDiskImage(path: string): Promise<OpenedImage> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new UsageError(`no such file: ${path}`, { hint: "give the path of a disk image (qcow2 or raw) or the name of a cached image (`vmlab image list`)" });
  if (!st.isFile()) throw new UsageError(`${path} is not a file`, { hint: "give the path of a disk image file (qcow2 or raw)" });
  const info = await imageInfo(path, { forceShare: true }).catch((err) => {
    throw new UsageError(`${path} is not a disk image qemu-img can read`, { where: path, output: (err as VmlabError).output ?? String(err), hint: "give a qcow2 or raw disk image" });
  });
  if (info.format !== "raw" && info.format !== "qcow2") {
    throw new UsageError(`${path} is a ${info.format} image; vmlab reads qcow2 and raw`, { where: path, hint: `convert it first: qemu-img convert -O qcow2 ${path} disk.qcow2` });
  }
  const qemuImg = requireTool("qemu-img");
  if (info.format === "qcow2") {
    const args = ["check", "-U", "--output=json", "-f", "qcow2", path];
    const r = await execa(qemuImg, args, { reject: false, stdin: "ignore" });
    if (r.exitCode !== 0) {
      throw new UsageError(`${path} is a damaged or truncated qcow2 image`, {
        where: commandLine(qemuImg, args),
        output: String(r.stderr || r.stdout),
        hint: "copy the image again in full; `qemu-img check` shows the damage",
      });
    }
  }
  const format = info.format;
  const tmp = await mkdtemp(join(tmpdir(), "vmlab-sectors-"));
  let n = 0;
  const read: SectorReader = async (lba, count) => {
    if (lba + count > info.virtualSize / SECTOR) count = Math.max(0, Math.floor(info.virtualSize / SECTOR) - lba);
    if (count === 0) return Buffer.alloc(0);
    if (lba >= 2 ** 31 / SECTOR) throw new UsageError(`sector ${lba} of ${path} is beyond what vmlab reads`, { where: path });
    const out = join(tmp, `s${n++}.bin`);
    // The largest block (up to 1 MiB) that both the start and the length are whole blocks of.
    let k = 2048;
    while (lba % k !== 0 || count % k !== 0) k /= 2;
    // qemu-img dd counts `count` from the start of the disk, skipped blocks included.
    const args = ["dd", "-U", "-f", format, "-O", "raw", `bs=${k * SECTOR}`, `skip=${lba / k}`, `count=${(lba + count) / k}`, `if=${path}`, `of=${out}`];
    const r = await execa(qemuImg, args, { reject: false, stdin: "ignore" });
    if (r.exitCode !== 0) {
      throw new UsageError(`could not read sectors ${lba}-${lba + count - 1} of ${path}`, { where: commandLine(qemuImg, args), output: String(r.stderr), hint: "the image may be truncated or damaged" });
    }
    const buf = await readFile(out);
    await rm(out, { force: true });
    return buf;
  };
  // qemu-img rounds a raw file's size up to whole sectors: the file's own size tells a cut-off image.
  return { path, format, diskBytes: format === "raw" ? st.size : info.virtualSize, read, close: () => rm(tmp, { recursive: true, force: true }) };
}

/** The partition table of a disk image file (qcow2 or raw). */
export async function readImagePartitions(path: string): Promise<PartitionTable & { format: "raw" | "qcow2" }> {
  const img = await openDiskImage(path);
  try {
    return { ...(await parsePartitionTable(img.read, img.diskBytes, path)), format: img.format };
  } finally {
    await img.close();
  }
}

/**
 * How to reach one partition's contents from the host, as a command for the
 * user's shell, whichever it is (POSIX quoting). For a raw image a
 * loop mount at the partition's byte offset; a qcow2 image must be made raw
 * first (qemu-img convert), since the loop driver reads raw files only.
 */
export function mountCommand(p: DiskPartition, rawPath: string): string {
  const opts = `loop,offset=${p.offsetBytes},sizelimit=${p.sizeBytes}`;
  if (p.kind === "extended") return "(extended partition: holds the logical partitions, nothing to mount)";
  if (/^82$|^0657FD6D/i.test(p.type)) return "(swap: nothing to mount)";
  if (/^8e$|^E6D6D379/i.test(p.type)) {
    return `losetup --find --show --read-only --offset ${p.offsetBytes} --sizelimit ${p.sizeBytes} ${shellQuote(rawPath)}   # an LVM PV: then vgscan, vgchange -ay VG, mount /dev/VG/LV`;
  }
  return `mount -o ro,${opts} ${shellQuote(rawPath)} /mnt`;
}

/**
 * Human-readable table for `vmlab inspect`. Its commands are printed for the
 * user's shell, whichever it is: POSIX quoting (`shellQuote`).
 */
export function formatPartitionTable(path: string, t: PartitionTable & { format: "raw" | "qcow2" }): string {
  const lines = [`${path}: ${t.format}, ${t.diskBytes} bytes (${t.diskBytes / SECTOR} sectors of ${SECTOR} bytes), partition table: ${t.label === "dos" ? "msdos" : t.label}`];
  if (t.label === "none") {
    lines.push(`  no partition table: ${t.content}`);
    if (t.content?.startsWith("an ext")) {
      lines.push(t.format === "raw" ? `  mount: mount -o ro,loop ${shellQuote(path)} /mnt` : `  mount: qemu-img convert -f qcow2 -O raw ${shellQuote(path)} disk.raw && mount -o ro,loop disk.raw /mnt`);
    }
    return lines.join("\n");
  }
  const raw = t.format === "raw" ? path : "disk.raw";
  lines.push("  #  kind      start(sector)  sectors      size          type                       byte offset");
  for (const p of t.partitions) {
    lines.push(
      `  ${String(p.number).padEnd(2)} ${p.kind.padEnd(9)} ${String(p.startSector).padStart(13)}  ${String(p.sizeSectors).padStart(11)}  ${humanBytes(p.sizeBytes).padStart(10)}    ${`${p.type.length > 2 ? p.typeName : `${p.type} ${p.typeName}`}${p.bootable ? " *boot" : ""}${p.name ? ` "${p.name}"` : ""}`.padEnd(26)} ${p.offsetBytes}`,
    );
  }
  lines.push("");
  if (t.format === "qcow2") {
    lines.push("  mount (as root): the loop driver reads raw files, so make a raw copy first (sparse, the disk's full size):");
    lines.push(`    qemu-img convert -f qcow2 -O raw ${shellQuote(path)} disk.raw`);
    lines.push("  or, without a copy, guestmount from libguestfs-tools, or qemu-nbd --connect and /dev/nbd0pN.");
  } else {
    lines.push("  mount (as root):");
  }
  for (const p of t.partitions) lines.push(`    ${p.number}: ${mountCommand(p, raw)}`);
  return lines.join("\n");
}

export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}
