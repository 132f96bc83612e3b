/**
 * The boot-disk image backup of the MBR + /boot runbook: `dd` of every sector
 * before the swap partition, that is the MBR (boot code, partition table,
 * 0x55AA), the gap after it where GRUB keeps its core image, and /boot. Swap
 * is left out: it holds nothing worth keeping, and `mkswap` remakes it.
 *
 * A backup is two files: the sectors themselves, exactly as `dd` wrote them
 * (so `dd if=BACKUP of=/dev/sdX` restores it by hand too), and BACKUP.json
 * recording the source disk's size, its partition table and a checksum.
 * Restoring refuses, before writing anything, a target of another size (the
 * copied table describes the source disk's geometry) and a backup that is
 * truncated or not a backup.
 *
 * The pure parts here are shared by the in-guest procedure
 * (src/procedures/boot-backup.ts) and the host commands `vmlab dr
 * backup-boot` / `vmlab dr restore-boot`, which work on disk image files
 * without root and without qemu-nbd.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { execa } from "execa";
import { UsageError, VmlabError } from "../errors.ts";
import { commandLine, requireTool } from "../host/tools.ts";
import { openDiskImage, parsePartitionTable, SECTOR, type DiskPartition, type PartitionTable } from "./partitions.ts";

export const BACKUP_FORMAT = "vmlab-boot-backup/1";

export interface BootBackupMeta {
  format: typeof BACKUP_FORMAT;
  sectorSize: number;
  /** Sectors in the backup file, from sector 0. */
  sectors: number;
  /** Size of the disk the backup was taken from. */
  sourceBytes: number;
  /** Where it came from: an image path or a guest device. */
  source: string;
  sha256: string;
  createdAt: string;
  /** Why this many sectors: "start of swap partition 2" or "--sectors". */
  reason: string;
  table: { label: PartitionTable["label"]; partitions: Pick<DiskPartition, "number" | "startSector" | "sizeSectors" | "type">[] };
}

export function sidecarPath(backup: string): string {
  return `${backup}.json`;
}

function isSwap(p: DiskPartition): boolean {
  return p.type === "82" || p.type.toUpperCase() === "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";
}

/**
 * How many sectors to copy: up to the start of the swap partition. Every
 * partition before it must end before it, or the copy would cut one in half.
 */
export function bootBackupSectors(table: PartitionTable, explicit?: number): { sectors: number; reason: string } {
  if (table.label === "none") {
    throw new UsageError("the disk has no partition table, so there is no MBR and /boot to back up", { hint: "back up the boot disk, the one whose MBR holds GRUB" });
  }
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < 1) throw new UsageError(`bad sector count ${explicit}: use a whole number of 1 or more`);
    if (explicit * SECTOR > table.diskBytes) throw new UsageError(`--sectors ${explicit} is more than the disk holds (${table.diskBytes / SECTOR} sectors)`);
    return { sectors: explicit, reason: "--sectors" };
  }
  const swap = table.partitions.filter(isSwap).sort((a, b) => a.startSector - b.startSector)[0];
  if (!swap) {
    throw new UsageError("the disk has no swap partition, so the end of the backup is not known", {
      output: table.partitions.map((p) => `partition ${p.number}: start ${p.startSector}, ${p.sizeSectors} sectors, type ${p.type}`).join("\n"),
      hint: "give the number of sectors to copy with --sectors N (for example the end of /boot)",
    });
  }
  const cut = table.partitions.find((p) => p.kind !== "extended" && p.startSector < swap.startSector && p.startSector + p.sizeSectors > swap.startSector);
  if (cut) {
    throw new UsageError(`partition ${cut.number} overlaps the start of swap partition ${swap.number}; a copy up to the swap would cut it in half`, {
      hint: "check the partition table (vmlab inspect), or give --sectors N",
    });
  }
  return { sectors: swap.startSector, reason: `start of swap partition ${swap.number}` };
}

/**
 * Refuse a restore that cannot give the source's machine back: a target
 * smaller than the backup, or a disk of another size or sector size (the
 * copied partition table describes the source disk). Throws UsageError.
 */
export function checkRestoreTarget(meta: BootBackupMeta, target: { bytes: number; sectorSize?: number; where: string }): void {
  const need = meta.sectors * meta.sectorSize;
  const sectorSize = target.sectorSize ?? SECTOR;
  if (target.bytes < meta.sourceBytes) {
    const what = target.bytes < need ? `the backup alone is ${need} bytes` : `the partition table in the backup describes a disk of ${meta.sourceBytes} bytes`;
    throw new UsageError(`restore target ${target.where} is too small: ${target.bytes} bytes, ${what}`, {
      where: target.where,
      hint: `use a disk of exactly ${meta.sourceBytes} bytes, the size of the disk the backup came from; nothing was written`,
    });
  }
  if (sectorSize !== meta.sectorSize) {
    throw new UsageError(`restore target ${target.where} has ${sectorSize}-byte sectors, the backup was taken from a disk with ${meta.sectorSize}-byte sectors`, {
      where: target.where,
      hint: "the partition table counts sectors; use a disk with the same sector size; nothing was written",
    });
  }
  if (target.bytes !== meta.sourceBytes) {
    throw new UsageError(
      `restore target ${target.where} has a different geometry: ${target.bytes} bytes, larger than the backup's disk of ${meta.sourceBytes} bytes`,
      {
        where: target.where,
        output: meta.table.partitions.map((p) => `partition ${p.number}: start ${p.startSector}, ${p.sizeSectors} sectors, type ${p.type}`).join("\n"),
        hint: `the copied partition table describes a ${meta.sourceBytes}-byte disk; use a disk of exactly that size (vmlab disk create PATH ${meta.sourceBytes / 1024}K); nothing was written`,
      },
    );
  }
}

/** Check a sidecar's contents against the backup file; returns the parsed metadata or throws UsageError. */
export function parseBackupMeta(text: string, where: string): BootBackupMeta {
  let meta: Partial<BootBackupMeta>;
  try {
    meta = JSON.parse(text) as Partial<BootBackupMeta>;
  } catch {
    throw new UsageError(`${where} is not a vmlab boot backup description (not JSON)`, { where, hint: "`vmlab dr backup-boot` writes BACKUP and BACKUP.json side by side" });
  }
  if (meta.format !== BACKUP_FORMAT || !Number.isInteger(meta.sectors) || !Number.isInteger(meta.sourceBytes) || typeof meta.sha256 !== "string" || !meta.table) {
    throw new UsageError(`${where} is not a vmlab boot backup description`, { where, hint: `expected format "${BACKUP_FORMAT}" with sectors, sourceBytes, sha256 and table` });
  }
  return { sectorSize: SECTOR, ...meta } as BootBackupMeta;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Load a backup and its sidecar and prove the backup is whole. */
export async function loadBackup(backup: string): Promise<BootBackupMeta> {
  const st = await stat(backup).catch(() => undefined);
  if (!st?.isFile()) throw new UsageError(`no such backup file: ${backup}`, { hint: "give the file `vmlab dr backup-boot` wrote" });
  const side = sidecarPath(backup);
  if (!existsSync(side)) {
    throw new UsageError(`${backup} is not a vmlab boot backup: ${side} is missing`, {
      where: backup,
      hint: "`vmlab dr backup-boot` writes BACKUP and BACKUP.json side by side; keep them together",
    });
  }
  const meta = parseBackupMeta(await readFile(side, "utf8"), side);
  const want = meta.sectors * meta.sectorSize;
  if (st.size !== want) {
    throw new UsageError(`backup ${backup} is truncated or is not the file its description belongs to: ${st.size} bytes, ${want} expected (${meta.sectors} sectors)`, {
      where: backup,
      hint: "copy the backup again in full; nothing was written",
    });
  }
  const sum = await sha256File(backup);
  if (sum !== meta.sha256) {
    throw new UsageError(`backup ${backup} does not match its checksum: the file was changed or damaged`, {
      where: backup,
      output: `sha256 ${sum}, recorded ${meta.sha256}`,
      hint: "use an intact copy of the backup; nothing was written",
    });
  }
  return meta;
}

function tableSummary(t: PartitionTable): BootBackupMeta["table"] {
  return { label: t.label, partitions: t.partitions.map((p) => ({ number: p.number, startSector: p.startSector, sizeSectors: p.sizeSectors, type: p.type })) };
}

/** Build the sidecar for a backup taken from a disk with this table. */
export function backupMeta(table: PartitionTable, sectors: number, reason: string, sha256: string, source: string): BootBackupMeta {
  return {
    format: BACKUP_FORMAT,
    sectorSize: table.sectorSize,
    sectors,
    sourceBytes: table.diskBytes,
    source,
    sha256,
    createdAt: new Date().toISOString(),
    reason,
    table: tableSummary(table),
  };
}

/** The largest block size (a multiple of 512, at most 1 MiB) that divides `sectors` sectors. */
export function blockSizeFor(sectors: number): number {
  let bs = 2048;
  while (sectors % bs !== 0) bs /= 2;
  return bs * SECTOR;
}

async function refuseExisting(path: string): Promise<void> {
  for (const p of [path, sidecarPath(path)]) {
    if (existsSync(p)) throw new UsageError(`refusing to overwrite ${p}`, { where: p, hint: "choose another backup path, or remove the old backup first" });
  }
}

/**
 * `vmlab dr backup-boot`: copy the first sectors of a disk image (up to the
 * swap partition, or `sectors`) to a raw file plus its description.
 */
export async function backupBootImage(image: string, backup: string, opts: { sectors?: number } = {}): Promise<BootBackupMeta> {
  await refuseExisting(backup);
  const img = await openDiskImage(image);
  try {
    const table = await parsePartitionTable(img.read, img.diskBytes, image);
    const { sectors, reason } = bootBackupSectors(table, opts.sectors);
    const bs = blockSizeFor(sectors);
    const qemuImg = requireTool("qemu-img");
    const args = ["dd", "-U", "-f", img.format, "-O", "raw", `bs=${bs}`, `count=${(sectors * SECTOR) / bs}`, `if=${image}`, `of=${backup}`];
    const r = await execa(qemuImg, args, { reject: false, stdin: "ignore" });
    if (r.exitCode !== 0) {
      await rm(backup, { force: true });
      throw new VmlabError(`copying the first ${sectors} sectors of ${image} failed`, { where: commandLine(qemuImg, args), output: String(r.stderr) });
    }
    const meta = backupMeta(table, sectors, reason, await sha256File(backup), image);
    await writeFile(sidecarPath(backup), JSON.stringify(meta, null, 2) + "\n");
    return meta;
  } finally {
    await img.close();
  }
}

/**
 * `vmlab dr restore-boot`: write a backup over the first sectors of a disk
 * image, after every check passed. A raw target is written in place; a qcow2
 * target through `qemu-io` (no root, no qemu-nbd). The written sectors are
 * read back and compared.
 */
export async function restoreBootImage(backup: string, image: string): Promise<{ meta: BootBackupMeta; bytes: number }> {
  const meta = await loadBackup(backup);
  const img = await openDiskImage(image);
  const bytes = meta.sectors * meta.sectorSize;
  try {
    checkRestoreTarget(meta, { bytes: img.diskBytes, where: image });
    if (img.format === "raw") {
      const fh = await open(image, "r+");
      try {
        const data = await readFile(backup);
        await fh.write(data, 0, data.length, 0);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } else {
      const qemuIo = requireTool("qemu-io");
      const args = ["-f", "qcow2", "-c", `write -s ${backup} 0 ${bytes}`, "-c", "flush", image];
      const r = await execa(qemuIo, args, { reject: false, stdin: "ignore" });
      // qemu-io prints its errors and still exits 0: judge by what it printed.
      if (r.exitCode !== 0 || /error|failed|Could not/i.test(String(r.stdout) + String(r.stderr))) {
        throw new VmlabError(`writing the backup into ${image} failed`, {
          where: commandLine(qemuIo, args),
          output: `${r.stdout}\n${r.stderr}`,
          hint: /lock/i.test(String(r.stderr)) ? "a running machine holds the image: power it off first" : undefined,
        });
      }
    }
    // Read back what was written and compare.
    const back = await img.read(0, meta.sectors);
    const sum = createHash("sha256").update(back).digest("hex");
    if (sum !== meta.sha256) throw new VmlabError(`the restored sectors of ${image} do not match the backup`, { output: `sha256 ${sum}, expected ${meta.sha256}` });
    return { meta, bytes };
  } finally {
    await img.close();
  }
}
