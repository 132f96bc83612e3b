import { parseSize } from "../disk/size.ts";
import { UsageError } from "../errors.ts";
import type { DiskSpec, PartitionSpec } from "./recipe.ts";

export const SECTOR = 512;
/** Partitions start on 1 MiB boundaries, as fdisk and sfdisk do by default. */
const ALIGN = 2048;
/** The backup GPT at a disk's end: its header sector and a 32-sector table. */
export const GPT_BACKUP_SECTORS = 33;

export interface PlannedPartition extends PartitionSpec {
  index: number;
  startSector: number;
  sizeSectors: number;
}

/** Turn a recipe's disk into partition offsets and sizes in sectors. Pure. */
export function planPartitions(disk: DiskSpec): { diskBytes: number; partitions: PlannedPartition[] } {
  const diskBytes = parseSize(disk.size, "disk size");
  const totalSectors = Math.floor(diskBytes / SECTOR);
  if (disk.label === "none") {
    const [only, ...rest] = disk.partitions;
    if (!only || rest.length || !only.fs || only.size !== undefined) {
      throw new UsageError("a disk without a partition table holds exactly one filesystem, on the whole disk (no size)");
    }
    // Index 0: the whole disk is the device (/dev/sdb, not /dev/sdb1).
    return { diskBytes, partitions: [{ ...only, index: 0, startSector: 0, sizeSectors: totalSectors }] };
  }
  if (disk.label === "msdos" && disk.partitions.length > 4) throw new UsageError("an msdos label holds at most 4 primary partitions");
  if (disk.label === "msdos" && disk.partitions.some((p) => p.fs?.type === "vfat" && p.fs.mount === "/boot/efi")) {
    throw new UsageError("an ESP (/boot/efi) needs a gpt disk label");
  }
  // GPT keeps its backup header and table in the disk's last 33 sectors.
  const end = disk.label === "gpt" ? totalSectors - GPT_BACKUP_SECTORS : totalSectors;
  let next = ALIGN;
  const partitions = disk.partitions.map((p, i) => {
    const isLast = i === disk.partitions.length - 1;
    if (p.size === undefined && !isLast) throw new UsageError(`partition ${p.name}: only the last partition may omit its size`);
    const sizeSectors = p.size === undefined ? end - next : parseSize(p.size, `size of partition ${p.name}`) / SECTOR;
    if (next + sizeSectors > end || sizeSectors <= 0) {
      throw new UsageError(`partition ${p.name} does not fit on a ${disk.size} disk`);
    }
    const planned = { ...p, index: i + 1, startSector: next, sizeSectors };
    next = Math.ceil((next + sizeSectors) / ALIGN) * ALIGN;
    return planned;
  });
  return { diskBytes, partitions };
}

/** sfdisk's names for the GPT types of the msdos codes recipes use. */
const GPT_TYPES: Record<PartitionSpec["type"], string> = { "83": "L", "8e": "V", "82": "S", fd: "R", ef: "U" };

/** The sfdisk script that writes this layout (msdos unless `label` is "gpt"; GPT partitions are named after their role). */
export function sfdiskScript(parts: PlannedPartition[], label: "msdos" | "gpt" = "msdos"): string {
  const lines = [`label: ${label === "gpt" ? "gpt" : "dos"}`, "unit: sectors", ""];
  for (const p of parts) {
    if (label === "gpt") lines.push(`start=${p.startSector}, size=${p.sizeSectors}, type=${GPT_TYPES[p.type]}, name="${p.name}"`);
    else lines.push(`start=${p.startSector}, size=${p.sizeSectors}, type=${p.type}${p.bootable ? ", bootable" : ""}`);
  }
  return lines.join("\n") + "\n";
}
