/**
 * Move a running system from one disk onto RAID1 mirrors over SSH: build
 * degraded arrays on the blank second disk, copy the system onto them, pivot
 * into them, make the machine boot from them, then add the first disk's
 * partitions as the second halves and let them resync. The RAID migration
 * runbook, step by step, with the pivot dance shared with root → LVM.
 */
import { VmlabError } from "../errors.ts";
import type { ScenarioContext } from "../scenario/types.ts";
import type { Machine } from "../vm/machine.ts";
import { sh } from "../vm/guest-sh.ts";
import { expectReleased } from "./temp-root.ts";
import { addEntry, bootEntries, diskEntries, installRemovable } from "./uefi.ts";
import { NEW_ROOT, pivotInto, releaseOldRoot, remountRootReadOnly, restartOnNewRoot, stopRootWriters, type Quiesced } from "./pivot.ts";

/** One partition of the source disk that becomes an array. */
export interface MirrorSpec {
  /** Partition number on both disks. */
  part: number;
  /** md device, e.g. /dev/md0. */
  md: string;
  /** Where it is mounted: "/" or "/boot". */
  mount: string;
  fstype: "ext2" | "ext3" | "ext4";
  label: string;
}

export interface RootToMdraidOptions {
  /** The disk the system runs from now, e.g. /dev/sda. */
  source: string;
  /** The blank disk of the same size, e.g. /dev/sdb. */
  target: string;
  /** The partitions to mirror; the source's other partitions keep their place and type. */
  mirrors: MirrorSpec[];
  /** Steps a twin leaves out, the way a hurried admin would. */
  skip?: ("grub-on-target" | "rebuild-initramfs" | "mdadm-conf")[];
  /**
   * A UEFI machine: the ESP's partition number on both disks. The target's
   * ESP is made and filled like the source's (GRUB at \EFI\debian and at
   * the removable-media path on each), each disk gets its own boot entry,
   * and /boot/efi is mounted `nofail`, so a boot with the first disk dead
   * does not stop in emergency mode for want of its ESP.
   */
  esp?: { part: number };
}

/** The UEFI image's (debian12-uefi): the ESP is sda1, so /boot is sda2 and / sda3; sda4 (the LVM PV) stays. */
export const UEFI_MIRRORS: MirrorSpec[] = [
  { part: 2, md: "/dev/md0", mount: "/boot", fstype: "ext2", label: "boot" },
  { part: 3, md: "/dev/md1", mount: "/", fstype: "ext3", label: "root" },
];

/** The layout this image is migrated to: /boot on md0, / on md1; sda3 (the LVM PV) stays as it is. */
export const DEFAULT_MIRRORS: MirrorSpec[] = [
  { part: 1, md: "/dev/md0", mount: "/boot", fstype: "ext2", label: "boot" },
  { part: 2, md: "/dev/md1", mount: "/", fstype: "ext3", label: "root" },
];

/** A file written on the new root after the pivot: present after a boot only if the arrays' root booted. */
export const MD_MARKER = "/var/lib/vmlab/written-on-raid";

/** A disk's partition device: /dev/sda + 1 → /dev/sda1, /dev/nvme0n1 + 1 → /dev/nvme0n1p1. */
export const partition = (disk: string, n: number) => `${disk}${/\d$/.test(disk) ? "p" : ""}${n}`;

/**
 * The target's partition table: the source's, with the mirrored partitions
 * typed Linux RAID (fd on msdos, R on GPT) and without the source's disk
 * identifier and, on GPT, without its partitions' GUIDs, so the two disks do
 * not claim to be the same one: a copied PARTUUID makes a boot entry or an
 * fstab line find either disk. Pure: input is `sfdisk -d` output.
 */
export function mirrorTable(sfdiskDump: string, source: string, target: string, mirrored: number[]): string {
  const esc = source.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const part = new RegExp(`^${esc}p?(\\d+)\\s*:\\s*(.*)$`);
  const out: string[] = [];
  const gpt = /^label:\s*gpt\s*$/m.test(sfdiskDump);
  for (const line of sfdiskDump.split("\n")) {
    if (/^label-id:/.test(line)) continue;
    const m = part.exec(line);
    if (m) {
      const n = Number(m[1]);
      let fields = mirrored.includes(n) ? m[2]!.replace(/type=\s*[\w-]+/, `type=${gpt ? "R" : "fd"}`) : m[2]!;
      if (gpt) fields = fields.replace(/,\s*uuid=\s*[\w-]+/, "");
      out.push(`${partition(target, n)} : ${fields}`);
    } else if (line.startsWith("device:")) out.push(`device: ${target}`);
    else out.push(line);
  }
  return out.join("\n");
}

/** `/proc/mdstat` parsed: per array, members up and total, and whether a resync or recovery is running. */
export interface ArrayState {
  md: string;
  level: string;
  members: string[];
  total: number;
  up: number;
  /** e.g. "UU", "_U" */
  map: string;
  syncing: boolean;
}

export function parseMdstat(text: string): ArrayState[] {
  const out: ArrayState[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const head = /^(md\d+)\s*:\s*(?:active|inactive)(?:\s+\([^)]*\))?\s+(\S+)\s+(.*)$/.exec(lines[i]!);
    if (!head) continue;
    const members = [...head[3]!.matchAll(/(\w+)\[\d+\](?:\((\w)\))?/g)].filter((m) => m[2] !== "F" && m[2] !== "S").map((m) => m[1]!);
    const status = lines[i + 1] ?? "";
    const counts = /\[(\d+)\/(\d+)\]\s*\[([U_]+)\]/.exec(status);
    let syncing = false;
    for (let j = i + 1; j < lines.length && lines[j]!.trim() !== "" && !/^md\d+/.test(lines[j]!); j++) {
      if (/(resync|recovery)\s*=|resync=(?:DELAYED|PENDING)/.test(lines[j]!)) syncing = true;
    }
    out.push({
      md: `/dev/${head[1]}`,
      level: head[2]!,
      members,
      total: counts ? Number(counts[1]) : members.length,
      up: counts ? Number(counts[2]) : members.length,
      map: counts?.[3] ?? "",
      syncing,
    });
  }
  return out;
}

export async function arrays(vm: Machine): Promise<ArrayState[]> {
  return parseMdstat(await vm.succeed("cat /proc/mdstat"));
}

/** Throw unless every listed array is active with `up` of `total` members and not syncing. */
export async function expectArrays(vm: Machine, mds: string[], up: number, total = 2): Promise<ArrayState[]> {
  const state = await arrays(vm);
  const bad = mds.filter((md) => {
    const a = state.find((s) => s.md === md);
    return !a || a.up !== up || a.total !== total || a.syncing;
  });
  if (bad.length) {
    throw new VmlabError(`arrays not as expected (${up} of ${total} members, in sync): ${bad.join(", ")}`, {
      output: (await vm.run("cat /proc/mdstat; mdadm --detail --scan")).stdout,
      hint: "see /proc/mdstat: a missing member means a disk was not found or not added",
    });
  }
  return state.filter((s) => mds.includes(s.md));
}

export async function rootToMdraid(ctx: ScenarioContext, o: RootToMdraidOptions): Promise<void> {
  const { vm, step, log } = ctx;
  const skip = new Set(o.skip ?? []);
  const mirrored = o.mirrors.map((m) => m.part);
  const root = o.mirrors.find((m) => m.mount === "/");
  if (!root) throw new VmlabError("a RAID1 migration of / needs a mirror for /");
  const others = o.mirrors.filter((m) => m !== root);
  let q: Quiesced = { stopped: [] };

  await step(`partition ${o.target} like ${o.source}, mirrored partitions as Linux RAID`, async () => {
    const size = async (d: string) => Number((await vm.succeed(`blockdev --getsize64 ${d}`)).trim());
    const [a, b] = [await size(o.source), await size(o.target)];
    if (b < a) throw new VmlabError(`${o.target} (${b} bytes) is smaller than ${o.source} (${a} bytes)`, { hint: "a mirror needs a disk at least as large as the one it copies" });
    const inUse = (await vm.run(`lsblk -nro NAME,FSTYPE,MOUNTPOINT ${o.target} | awk 'NR>1 || $2 != ""'`)).stdout.trim();
    if (inUse) throw new VmlabError(`${o.target} is not blank`, { output: inUse, hint: "the migration partitions the second disk from scratch; give it an empty disk" });
    const table = mirrorTable(await vm.succeed(`sfdisk -d ${o.source}`), o.source, o.target, mirrored);
    log(`new table for ${o.target}:\n${table}`);
    await vm.succeed(`sfdisk -q ${o.target}`, { input: table });
    await vm.succeed(`udevadm settle`);
  });

  await step("create degraded RAID1 arrays (second member missing) and filesystems", async () => {
    for (const m of o.mirrors) {
      // --run: no question about metadata at the start of a boot partition; GRUB 2 reads 1.2 arrays.
      await vm.succeed(`mdadm --create ${m.md} --run --level=1 --raid-devices=2 --metadata=1.2 ${partition(o.target, m.part)} missing`);
      await vm.succeed(`mke2fs -q -F -t ${m.fstype} -L ${m.label} ${m.md}`);
    }
  });

  await step("copy the running system with cp -ax", async () => {
    await vm.succeed(`mkdir -p ${NEW_ROOT} && mount ${root.md} ${NEW_ROOT}`);
    for (const m of others) await vm.succeed(`mkdir -p ${NEW_ROOT}${m.mount} && mount ${m.md} ${NEW_ROOT}${m.mount}`);
    // -x: one filesystem at a time; mount points come along as empty directories.
    await vm.succeed(`cp -ax /. ${NEW_ROOT}/`, { timeoutMs: 20 * 60_000 });
    for (const m of others) await vm.succeed(`cp -ax ${m.mount}/. ${NEW_ROOT}${m.mount}/`, { timeoutMs: 10 * 60_000 });
  });

  await step("stop writers on /, remount it read-only, final rsync -aHAXx", async () => {
    q = await stopRootWriters(vm, log);
    await remountRootReadOnly(vm, q);
    // One pass per filesystem, as the runbook does per mount point. The
    // excludes keep --delete away from the arrays mounted inside the copy.
    const excl = others.map((m) => `--exclude=${m.mount}/*`).join(" ");
    const out = await vm.succeed(`rsync -aHAXx --delete --stats ${excl} --exclude=${NEW_ROOT}/* / ${NEW_ROOT}/ | grep -E 'transferred|deleted'`, { timeoutMs: 10 * 60_000 });
    log(`final pass on /: ${out.trim().replace(/\n/g, "; ")}`);
    for (const m of others) await vm.succeed(`rsync -aHAXx --delete ${m.mount}/ ${NEW_ROOT}${m.mount}/`, { timeoutMs: 10 * 60_000 });
    // The old mounts under / are done with; unmounted now, they do not stack over the arrays after the pivot.
    // The ESP first: it is mounted inside /boot, and comes back on the new /boot once fstab is fixed.
    if (o.esp) await vm.succeed("umount /boot/efi");
    for (const m of others) await vm.succeed(`umount ${m.mount}`);
  });

  await step(`pivot_root into ${root.md}`, () => pivotInto(vm, root.md, log));
  await step("restart init (telinit u) and sshd on the new root; new SSH session", () => restartOnNewRoot(vm, q, log));
  await step("write on the new root", () => vm.succeed(`mkdir -p $(dirname ${MD_MARKER}) && date -u > ${MD_MARKER} && sync`));
  await step("unmount the old root", async () => {
    if ((await releaseOldRoot(vm, log)) === "lazy") await vm.succeed("sleep 2");
    // Its partition becomes the second half of the root's array: nothing may hold it.
    await expectReleased(vm, partition(o.source, root.part));
  });

  await step("fix fstab (and check mtab)", async () => {
    for (const m of o.mirrors) {
      const uuid = (await vm.succeed(`blkid -s UUID -o value ${m.md}`)).trim();
      // Replace the source field of the line that mounts this place; keep type and options.
      await vm.succeed(sh`awk -v mp=${m.mount} -v src=${`UUID=${uuid}`} '$0 !~ /^[[:space:]]*#/ && $2 == mp { $1 = src } { print }' /etc/fstab > /etc/fstab.new && mv /etc/fstab.new /etc/fstab`);
    }
    if (o.esp) {
      // The ESP of the first disk only: without nofail, a boot with that disk dead waits for it and stops in emergency mode.
      await vm.succeed(`awk '$0 !~ /^[[:space:]]*#/ && $2 == "/boot/efi" && $4 !~ /nofail/ { $4 = $4 ",nofail" } { print }' /etc/fstab > /etc/fstab.new && mv /etc/fstab.new /etc/fstab`);
    }
    if (o.esp) await vm.succeed("mount /boot/efi");
    log(`fstab:\n${(await vm.succeed("grep -v '^#' /etc/fstab")).trim()}`);
    const mtab = (await vm.succeed("readlink /etc/mtab || echo regular file")).trim();
    if (mtab === "regular file") await vm.succeed("ln -sf ../proc/self/mounts /etc/mtab");
    log(`/etc/mtab -> ${mtab === "regular file" ? "../proc/self/mounts (was a stale file)" : mtab}`);
  });

  if (!skip.has("mdadm-conf")) {
    await step("write mdadm.conf: DEVICE and ARRAY lines", async () => {
      await vm.succeed(`{ echo '# Written by the root-to-mdraid1 migration.'; echo 'DEVICE partitions'; echo 'HOMEHOST <system>'; echo 'MAILADDR root'; mdadm --detail --scan; } > /etc/mdadm/mdadm.conf`);
      log((await vm.succeed("grep -E '^(DEVICE|ARRAY)' /etc/mdadm/mdadm.conf")).trim());
    });
  } else log("skipped: write mdadm.conf");

  if (!skip.has("rebuild-initramfs")) {
    await step("rebuild the initramfs so that it assembles the arrays", async () => {
      await vm.succeed("update-initramfs -u -k all", { timeoutMs: 20 * 60_000 });
      const has = await vm.succeed("lsinitramfs /boot/initrd.img-$(uname -r) | grep -E 'sbin/mdadm$|/raid1.ko|mdadm/mdadm.conf$' | sort");
      for (const want of ["sbin/mdadm", "raid1.ko", "mdadm.conf"]) {
        if (!has.includes(want)) throw new VmlabError(`the new initramfs has no ${want}`, { output: has, hint: "check /etc/initramfs-tools and the mdadm hook" });
      }
      log(`initramfs has: ${has.trim().split("\n").join(", ")}`);
    });
  } else log("skipped: rebuild the initramfs");

  const grubDisks = skip.has("grub-on-target") ? [o.source] : [o.source, o.target];
  if (o.esp) await step(`install GRUB on the ESP of ${grubDisks.join(" and ")}, a boot entry for each, update-grub`, () => grubOnEsps(vm, o, grubDisks, log));
  else await step(`install GRUB on ${grubDisks.join(" and ")}, update-grub`, async () => {
    for (const d of grubDisks) await vm.succeed(`grub-install ${d}`, { timeoutMs: 10 * 60_000 });
    // sync: until the new grub.cfg is on the disks, a power loss leaves the copy of the old one (see README, the sweep).
    await vm.succeed("update-grub && sync", { timeoutMs: 10 * 60_000 });
    // The runbook's check: the boot sector of each disk says GRUB.
    for (const d of grubDisks) await vm.succeed(`dd if=${d} bs=512 count=1 status=none | grep -aq GRUB`, { hint: `no GRUB boot code on ${d}` });
  });
  if (skip.has("grub-on-target")) log(`skipped: grub-install ${o.target}`);

  const table = o.esp ? `type ${o.source}'s mirrored partitions Linux RAID` : `copy the partition table to ${o.source}`;
  await step(`${table}, hot-add its partitions, wait for the resync`, async () => {
    if (o.esp) {
      // GPT: the source keeps its table and its partitions' GUIDs (its ESP's boot entry names sda1's); only the types change.
      for (const m of o.mirrors) await vm.succeed(`sfdisk -q --no-reread --part-type ${o.source} ${m.part} R`);
      await vm.succeed(`partx -u ${o.source}; udevadm settle`);
    } else await vm.succeed(`sfdisk -d ${o.target} | sfdisk -q --no-reread ${o.source}; partx -u ${o.source}; udevadm settle`);
    for (const m of o.mirrors) {
      const p = partition(o.source, m.part);
      // The old filesystem signatures go, so nothing can mount a stale half by LABEL or UUID.
      await vm.succeed(`wipefs -q -a ${p} && mdadm ${m.md} --add ${p}`);
    }
    await vm.succeed("echo 1000000000 > /proc/sys/dev/raid/speed_limit_max; echo 1000000 > /proc/sys/dev/raid/speed_limit_min");
    const t = Date.now();
    await vm.run(`mdadm --wait ${o.mirrors.map((m) => m.md).join(" ")}`, { timeoutMs: 30 * 60_000 });
    const state = await expectArrays(vm, o.mirrors.map((m) => m.md), 2);
    log(`resync done in ${((Date.now() - t) / 1000).toFixed(0)} s: ${state.map((a) => `${a.md} [${a.map}]`).join(", ")}`);
  });
}

/**
 * GRUB for UEFI on each disk's ESP: the source's ESP (mounted at /boot/efi)
 * gets GRUB again, now that /boot is an array, and a copy at the
 * removable-media path; the target's ESP is made (vfat), filled the same
 * way, and given a boot entry of its own. Then update-grub.
 */
async function grubOnEsps(vm: Machine, o: RootToMdraidOptions, disks: string[], log: (m: string) => void): Promise<void> {
  const esp = o.esp!.part;
  for (const [i, d] of disks.entries()) {
    const mount = i === 0 ? "/boot/efi" : `/boot/efi${i + 1}`;
    if (d === o.source) {
      await vm.succeed("grub-install --target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=debian", { timeoutMs: 10 * 60_000 });
    } else {
      await vm.succeed(`mkfs.vfat -n ESP${i + 1} ${partition(d, esp)} && mkdir -p ${mount} && mount ${partition(d, esp)} ${mount}`);
      // --no-nvram: this disk's entry is made below under its own name; grub-install would take over "debian".
      await vm.succeed(`grub-install --target=x86_64-efi --efi-directory=${mount} --bootloader-id=debian --no-nvram`, { timeoutMs: 10 * 60_000 });
      await addEntry(vm, { disk: d, part: esp, label: `debian (${d.replace("/dev/", "")})` });
    }
    await installRemovable(vm, mount);
    if (mount !== "/boot/efi") await vm.succeed(`umount ${mount} && rmdir ${mount}`);
  }
  await vm.succeed("update-grub && sync", { timeoutMs: 10 * 60_000 });
  const entries = diskEntries(await bootEntries(vm));
  log(`boot entries: ${entries.map((e) => `Boot${e.num} ${e.label}: ${e.path}`).join("; ")}`);
}
