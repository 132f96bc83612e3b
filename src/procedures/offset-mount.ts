/**
 * Reaching a filesystem inside a partitioned block device that the kernel
 * does not partition for you: an LV (or its snapshot) that holds a whole VM
 * disk. Read the partition table in sectors, compute the byte offset
 * (start × sector size), and mount or attach a loop device at that offset.
 */
import { VmlabError } from "../errors.ts";
import type { Machine } from "../vm/machine.ts";

export interface Partition {
  /** 1-based partition number. */
  number: number;
  node: string;
  /** First sector. */
  start: number;
  /** Length in sectors. */
  sectors: number;
  /** msdos type id (83, 8e, 82, ...) or GPT type GUID. */
  type: string;
  bootable: boolean;
  /** start × sector size: what `mount -o offset=` and `losetup --offset` take. */
  offsetBytes: number;
  sizeBytes: number;
}

export interface PartitionTable {
  device: string;
  label: string;
  sectorSize: number;
  partitions: Partition[];
}

function partitionNumber(node: string, fallback: number): number {
  const m = /(\d+)$/.exec(node);
  return m ? Number(m[1]) : fallback;
}

/** Parse `sfdisk --json DEVICE`. */
export function parseSfdiskJson(text: string): PartitionTable {
  let doc: {
    partitiontable?: {
      label?: string;
      device?: string;
      unit?: string;
      sectorsize?: number;
      partitions?: { node: string; start: number; size: number; type: string; bootable?: boolean }[];
    };
  };
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new VmlabError("sfdisk --json did not print JSON", { output: text.slice(0, 2000), cause: err, hint: "does the device hold a partition table? `blkid -p DEVICE`" });
  }
  const t = doc.partitiontable;
  if (!t) throw new VmlabError("sfdisk --json printed no partition table", { output: text.slice(0, 2000) });
  if (t.unit && t.unit !== "sectors") throw new VmlabError(`sfdisk reports in ${t.unit}, not sectors`, { hint: "use a util-linux that reports sectors (2.26 or later)" });
  const sectorSize = t.sectorsize ?? 512;
  return {
    device: t.device ?? "",
    label: t.label ?? "",
    sectorSize,
    partitions: (t.partitions ?? []).map((p, i) => ({
      number: partitionNumber(p.node, i + 1),
      node: p.node,
      start: p.start,
      sectors: p.size,
      type: p.type,
      bootable: p.bootable === true,
      offsetBytes: p.start * sectorSize,
      sizeBytes: p.size * sectorSize,
    })),
  };
}

/**
 * Parse the device lines of `fdisk -l -u DEVICE` (the runbook's way of
 * reading the table). Current fdisk prints "Units: sectors of 1 * 512 = 512
 * bytes" and "Device Boot Start End Sectors Size Id Type"; older ones, like
 * the runbook's, "Units = sectors of ..." and "Device Boot Start End Blocks Id
 * System", where the length is End - Start + 1.
 */
export function parseFdiskList(text: string): PartitionTable {
  const lines = text.split("\n");
  const units = /^Units[:=] sectors of \d+ \* (\d+) = (\d+) bytes/m.exec(text);
  const sectorSize = units ? Number(units[2]) : 512;
  const label = /^Disklabel type: (\S+)/m.exec(text)?.[1] ?? "";
  const device = /^Disk (\S+?):/m.exec(text)?.[1] ?? "";
  const header = lines.findIndex((l) => /^Device\s+(Boot\s+)?Start\s+End\s+/.test(l));
  const partitions: Partition[] = [];
  if (header >= 0) {
    const hasSectors = /\sSectors\s/.test(lines[header]!);
    for (const line of lines.slice(header + 1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 5 || !f[0]!.startsWith("/")) break;
      const node = f[0]!;
      const bootable = f[1] === "*";
      const rest = f.slice(bootable ? 2 : 1);
      const start = Number(rest[0]);
      const end = Number(rest[1]);
      if (!Number.isInteger(start) || !Number.isInteger(end)) break;
      // current: Start End Sectors Size Id Type...; older: Start End Blocks Id System...
      const sectors = hasSectors ? Number(rest[2]) : end - start + 1;
      const type = hasSectors ? rest[4]! : rest[3]!;
      partitions.push({
        number: partitionNumber(node, partitions.length + 1),
        node,
        start,
        sectors,
        type,
        bootable,
        offsetBytes: start * sectorSize,
        sizeBytes: sectors * sectorSize,
      });
    }
  }
  return { device, label, sectorSize, partitions };
}

/** Throw unless the two readings agree on every partition's start and length. */
export function crossCheck(a: PartitionTable, b: PartitionTable): void {
  const key = (t: PartitionTable) => t.partitions.map((p) => `${p.number}:${p.start}+${p.sectors}`).join(" ");
  if (key(a) !== key(b) || a.sectorSize !== b.sectorSize) {
    throw new VmlabError("sfdisk and fdisk disagree about the partition table", {
      output: `sfdisk: ${key(a)} (sector ${a.sectorSize})\nfdisk:  ${key(b)} (sector ${b.sectorSize})`,
      hint: "the table may be damaged; `sfdisk --verify DEVICE`",
    });
  }
}

export function partition(t: PartitionTable, n: number): Partition {
  const p = t.partitions.find((x) => x.number === n);
  if (!p) throw new VmlabError(`${t.device} has no partition ${n}`, { output: t.partitions.map((x) => x.node).join("\n"), hint: "`sfdisk -l DEVICE` lists the partitions" });
  return p;
}

/** The table of a device, read both ways (`sfdisk --json` and `fdisk -l -u`) and cross-checked. */
export async function readPartitionTable(vm: Machine, device: string): Promise<PartitionTable & { fdisk: string }> {
  const json = parseSfdiskJson(await vm.succeed(`sfdisk --json ${device}`, { hint: `${device} holds no partition table` }));
  const fdisk = (await vm.succeed(`fdisk -l -u ${device}`)).trimEnd();
  crossCheck(json, parseFdiskList(fdisk));
  return { ...json, fdisk };
}

/** `mount -o loop,offset=...,sizelimit=...,ro`: the runbook's way in. Returns the command it ran. */
export async function mountAtOffset(vm: Machine, device: string, p: Partition, mountpoint: string): Promise<string> {
  const cmd = `mount -o loop,ro,offset=${p.offsetBytes},sizelimit=${p.sizeBytes} ${device} ${mountpoint}`;
  await vm.succeed(`mkdir -p ${mountpoint} && ${cmd}`, {
    hint: `is there a filesystem at byte ${p.offsetBytes} of ${device}? \`blkid -p -O ${p.offsetBytes} ${device}\``,
  });
  return cmd;
}

/** A loop device over one partition of `device`. Returns /dev/loopN. */
export async function attachAtOffset(vm: Machine, device: string, p: Partition, o: { readOnly?: boolean } = {}): Promise<string> {
  const out = await vm.succeed(`losetup --find --show ${o.readOnly ? "--read-only " : ""}--offset ${p.offsetBytes} --sizelimit ${p.sizeBytes} ${device}`, {
    hint: "is there a free loop device? `losetup -a` lists the used ones",
  });
  await vm.run("udevadm settle --timeout=10");
  return out.trim();
}

export interface DirectMount {
  command: string;
  exitCode: number;
  /** What mount printed. */
  error: string;
  /** What the device starts with, as blkid sees it (a partition table, not a filesystem). */
  blkid: string;
}

/** Mounting the partitioned device itself must fail: it starts with a partition table, not a filesystem. */
export async function expectDirectMountFails(vm: Machine, device: string, mountpoint: string): Promise<DirectMount> {
  const command = `mount -o ro ${device} ${mountpoint}`;
  const r = await vm.run(`mkdir -p ${mountpoint} && ${command}`);
  if (r.exitCode === 0) {
    await vm.run(`umount ${mountpoint}`);
    throw new VmlabError(`${device} mounted directly, although it should hold a partition table`, {
      output: r.stdout + r.stderr,
      hint: "the partition table was not written at the start of the device",
    });
  }
  const blkid = (await vm.run(`blkid -p ${device}`)).stdout.trim();
  return { command, exitCode: r.exitCode, error: (r.stderr + r.stdout).trim(), blkid };
}
