/**
 * The MBR + /boot backup runbook, done inside a running guest whose `/` lives
 * on another disk than the boot disk: read the boot disk's partition table,
 * `dd` everything before the swap partition to a file on `/`, swap the dead
 * boot disk for a blank one (QMP hot-unplug and hot-plug), `dd` the backup
 * back, and after the reboot remake the swap area the backup left out.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { VmlabError } from "../errors.ts";
import { createImage } from "../disk/qemu-img.ts";
import { backupMeta, bootBackupSectors, checkRestoreTarget, sidecarPath, type BootBackupMeta } from "../disk/boot-backup.ts";
import { SECTOR, type DiskPartition, type PartitionTable } from "../disk/partitions.ts";
import type { ScenarioContext } from "../scenario/types.ts";
import type { Machine } from "../vm/machine.ts";
import { sshArgs } from "../vm/ssh.ts";

/** Where the guest keeps its backup: on `/`, the disk that survives (the runbook's iSCSI LUN). */
export const GUEST_BACKUP = "/var/backups/boot-disk.img";

interface SfdiskJson {
  partitiontable: { label: string; sectorsize?: number; partitions?: { node: string; start: number; size: number; type: string; bootable?: boolean }[] };
}

/** A partition table as sfdisk --json prints it, in the lab's shape. Pure. */
export function tableFromSfdisk(json: SfdiskJson, diskBytes: number): PartitionTable {
  const t = json.partitiontable;
  const partitions: DiskPartition[] = (t.partitions ?? []).map((p) => {
    const number = Number(/(\d+)$/.exec(p.node)?.[1] ?? 0);
    const type = p.type.toLowerCase();
    const extended = ["5", "f", "85"].includes(type);
    return {
      number,
      startSector: p.start,
      sizeSectors: p.size,
      type,
      typeName: "",
      kind: t.label === "gpt" ? "gpt" : extended ? "extended" : number > 4 ? "logical" : "primary",
      bootable: p.bootable ?? false,
      offsetBytes: p.start * SECTOR,
      sizeBytes: p.size * SECTOR,
    };
  });
  return { label: t.label === "gpt" ? "gpt" : "dos", diskBytes, sectorSize: t.sectorsize ?? SECTOR, partitions };
}

export interface GuestDisk {
  device: string;
  bytes: number;
  sectorSize: number;
  table: PartitionTable;
}

/** The disk /boot is on, e.g. /dev/sda. */
export async function bootDiskDevice(vm: Machine): Promise<string> {
  const part = (await vm.succeed("findmnt -no SOURCE /boot")).trim();
  const parent = (await vm.succeed(`lsblk -no PKNAME ${part}`)).trim();
  if (!parent) throw new VmlabError(`cannot tell which disk holds /boot (${part})`);
  return `/dev/${parent}`;
}

export async function readGuestDisk(vm: Machine, device: string): Promise<GuestDisk> {
  const [bytes, sectorSize] = (await vm.succeed(`blockdev --getsize64 ${device}; blockdev --getss ${device}`)).trim().split(/\s+/).map(Number);
  const json = JSON.parse(await vm.succeed(`sfdisk --json ${device}`)) as SfdiskJson;
  return { device, bytes: bytes!, sectorSize: sectorSize!, table: tableFromSfdisk(json, bytes!) };
}

/**
 * dd the boot disk's first sectors (up to the swap partition) to a file on
 * `/`, with its description beside it (FILE.json, the format `vmlab dr
 * restore-boot` reads).
 */
export async function backupBootDisk(ctx: ScenarioContext, disk: GuestDisk, file = GUEST_BACKUP): Promise<BootBackupMeta> {
  const { vm, log } = ctx;
  const { sectors, reason } = bootBackupSectors(disk.table);
  // The runbook's `dd if=/dev/sdb of=./mbr_boot count=530145`, in 1 MiB blocks: the same bytes, faster.
  const cmd = `dd if=${disk.device} of=${file} bs=1M count=${sectors * SECTOR} iflag=count_bytes status=none && sync`;
  log(`${sectors} sectors (${reason}): ${cmd}`);
  await vm.succeed(`mkdir -p $(dirname ${file}) && ${cmd}`);
  const sha = (await vm.succeed(`sha256sum ${file}`)).split(" ")[0]!;
  const meta = backupMeta(disk.table, sectors, reason, sha, `${disk.device} in guest ${vm.opts.name}`);
  await vm.succeed(`cat > ${sidecarPath(file)}`, { input: JSON.stringify(meta, null, 2) + "\n" });
  return meta;
}

/** Copy a file from the guest to the host, byte for byte: ssh's output goes straight into the file. */
export async function fetchFromGuest(vm: Machine, remote: string, local: string): Promise<void> {
  const fd = openSync(local, "w");
  let stderr = "";
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn("ssh", sshArgs(vm.ssh, `cat ${remote}`), { stdio: ["ignore", fd, "pipe"] });
      const timer = setTimeout(() => child.kill("SIGKILL"), 10 * 60_000);
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", reject);
      child.on("close", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    if (code !== 0) throw new VmlabError(`could not copy ${remote} out of guest ${vm.opts.name} (ssh exit ${code})`, { output: stderr });
  } finally {
    closeSync(fd);
  }
}

/** The guest device of the disk whose serial (the lab's disk id) is `serial`; waits for a hot-plugged disk to show up. */
export async function deviceBySerial(vm: Machine, serial: string): Promise<string> {
  const dev = await vm.succeed(
    `for i in $(seq 60); do d=$(lsblk -dno NAME,SERIAL | awk '$2=="${serial}"{print $1}'); if [ -n "$d" ]; then echo /dev/$d; exit 0; fi; sleep 1; done; echo "no disk with serial ${serial}" >&2; exit 1`,
  );
  return dev.trim();
}

/**
 * The boot disk dies: the admin stops using it (swap off, /boot unmounted)
 * and pulls it. `/` is on the other disk, so the machine keeps running.
 */
export async function pullBootDisk(ctx: ScenarioContext, disk: GuestDisk, id = "sda"): Promise<void> {
  const { vm } = ctx;
  const name = disk.device.replace("/dev/", "");
  await vm.succeed("swapoff -a && umount /boot");
  await vm.pullDisk(id);
  await vm.succeed(`for i in $(seq 30); do [ -e /sys/block/${name} ] || exit 0; sleep 1; done; echo "${disk.device} is still there" >&2; exit 1`);
  ctx.log(`${disk.device} is gone; / is still ${(await vm.succeed("findmnt -no SOURCE /")).trim()}`);
}

/** Plug a new blank qcow2 disk of `bytes` into the machine; returns its guest device and host path. */
export async function plugBlankDisk(ctx: ScenarioContext, id: string, bytes: number): Promise<{ device: string; path: string }> {
  const path = join(ctx.runDir, `${id}.qcow2`);
  await createImage(path, { format: "qcow2", size: bytes });
  await ctx.vm.attachDisk({ path, format: "qcow2", id });
  const device = await deviceBySerial(ctx.vm, id);
  const nonzero = Number((await ctx.vm.succeed(`head -c 1048576 ${device} | tr -d '\\000' | wc -c`)).trim());
  if (nonzero !== 0) throw new VmlabError(`the new disk ${device} is not blank`);
  ctx.log(`blank ${bytes}-byte disk ${id} is ${device}`);
  return { device, path };
}

/**
 * Check the target and the backup, then dd the backup onto the target.
 * `bytes: 446` restores only the boot code, the classic mistake. Refuses a
 * target of another size or sector size before writing anything.
 */
export async function restoreBootDisk(ctx: ScenarioContext, meta: BootBackupMeta, device: string, opts: { file?: string; bytes?: number } = {}): Promise<string> {
  const { vm } = ctx;
  const file = opts.file ?? GUEST_BACKUP;
  const [bytes, sectorSize] = (await vm.succeed(`blockdev --getsize64 ${device}; blockdev --getss ${device}`)).trim().split(/\s+/).map(Number);
  checkRestoreTarget(meta, { bytes: bytes!, sectorSize, where: `${device} in guest ${vm.opts.name}` });
  const [size, sha] = (await vm.succeed(`stat -c %s ${file}; sha256sum ${file} | cut -d' ' -f1`)).trim().split(/\s+/);
  if (Number(size) !== meta.sectors * meta.sectorSize || sha !== meta.sha256) {
    throw new VmlabError(`backup ${file} is not the one described in ${sidecarPath(file)}`, { output: `size ${size}, sha256 ${sha}` });
  }
  const cmd =
    opts.bytes !== undefined
      ? `dd if=${file} of=${device} bs=${opts.bytes} count=1 conv=fsync status=none`
      : `dd if=${file} of=${device} bs=1M conv=fsync status=none && blockdev --rereadpt ${device}`;
  ctx.log(cmd);
  await vm.succeed(cmd);
  return cmd;
}

/** The restored disk's table and first sectors must equal the source's. */
export async function verifyRestored(vm: Machine, meta: BootBackupMeta, device: string): Promise<{ tableMatches: boolean; sha256Matches: boolean }> {
  const disk = await readGuestDisk(vm, device);
  const strip = (t: BootBackupMeta["table"]["partitions"]) => t.map((p) => [p.number, p.startSector, p.sizeSectors, p.type].join(":")).join(" ");
  const tableMatches = strip(disk.table.partitions) === strip(meta.table.partitions);
  const sha = (await vm.succeed(`head -c ${meta.sectors * meta.sectorSize} ${device} | sha256sum | cut -d' ' -f1`)).trim();
  const result = { tableMatches, sha256Matches: sha === meta.sha256 };
  if (!tableMatches || !result.sha256Matches) {
    throw new VmlabError(`the restored disk ${device} differs from the backup`, { output: `table ${strip(disk.table.partitions)}\nbackup ${strip(meta.table.partitions)}\nsha256 ${sha} vs ${meta.sha256}` });
  }
  return result;
}

export interface SwapRepair {
  label: string;
  device: string;
  /** What `swapon -a` said before the repair. */
  swaponError: string;
  swaponExitCode: number;
  active: string;
}

/**
 * After the restore the swap partition holds no swap signature: `swapon -a`
 * cannot find LABEL=... from fstab. Remake it with the label fstab names and
 * turn it on.
 */
export async function repairSwap(ctx: ScenarioContext): Promise<SwapRepair> {
  const { vm, log } = ctx;
  const label = (await vm.succeed(`awk '$3 == "swap" && $1 ~ /^LABEL=/ { sub(/^LABEL=/, "", $1); print $1 }' /etc/fstab`)).trim();
  if (!label) throw new VmlabError("fstab has no swap entry by LABEL", { output: await vm.succeed("cat /etc/fstab") });
  const disk = await readGuestDisk(vm, await bootDiskDevice(vm));
  const swap = disk.table.partitions.find((p) => p.type === "82");
  if (!swap) throw new VmlabError(`the boot disk ${disk.device} has no swap partition`);
  const device = `${disk.device}${swap.number}`;
  const before = (await vm.succeed("swapon --show --noheadings")).trim();
  if (before) throw new VmlabError("swap is already active after the restore; the lab expected none", { output: before });
  const r = await vm.run("swapon -a");
  const swaponError = (r.stderr || r.stdout).trim();
  log(`swapon -a: exit ${r.exitCode}: ${swaponError}`);
  if (r.exitCode === 0 && !/cannot find/i.test(swaponError)) {
    throw new VmlabError("swapon -a did not complain although the swap partition was not restored", { output: swaponError });
  }
  const probe = await vm.run(`blkid -p ${device}`);
  log(`blkid -p ${device}: exit ${probe.exitCode}: ${(probe.stdout + probe.stderr).trim() || "(nothing found)"}`);
  await vm.succeed(`mkswap -L ${label} ${device}`);
  await vm.succeed("swapon -a");
  const active = (await vm.succeed("swapon --show=NAME,TYPE,SIZE --noheadings")).trim();
  if (!active.includes(device)) throw new VmlabError(`swap on ${device} is not active after mkswap and swapon -a`, { output: active });
  log(`swap active: ${active}`);
  return { label, device, swaponError, swaponExitCode: r.exitCode, active };
}

/**
 * Where / and /boot come from now, and the serials of their disks (the lab's
 * disk ids: "sdb" for the image's second disk, "newboot" for a replacement).
 */
export async function mounts(vm: Machine): Promise<{ root: string; boot: string; rootDisk: string; bootDisk: string }> {
  const [root, boot] = (await vm.succeed("findmnt -no SOURCE /; findmnt -no SOURCE /boot")).trim().split("\n").map((l) => l.trim());
  const serial = async (dev: string) => {
    const parent = (await vm.succeed(`lsblk -no PKNAME ${dev}`)).trim() || dev.replace("/dev/", "");
    return (await vm.succeed(`lsblk -dno SERIAL /dev/${parent}`)).trim();
  };
  return { root: root!, boot: boot ?? "", rootDisk: await serial(root!), bootDisk: boot ? await serial(boot) : "" };
}
