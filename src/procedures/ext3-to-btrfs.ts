/**
 * ext3 → btrfs for the root filesystem, both ways sysadmins do it:
 *  - by copy: a fresh btrfs on a new LV, copy, pivot_root, reboot;
 *  - in place: btrfs-convert on the unmounted root partition, from a
 *    pivoted temporary root, with the way back (btrfs-convert -r) while the
 *    saved ext2 image still exists.
 * Either way fstab needs the new type and options, the initramfs needs the
 * btrfs module, and GRUB needs a fresh grub.cfg.
 */
import { VmlabError } from "../errors.ts";
import type { ScenarioContext } from "../scenario/types.ts";
import type { Machine } from "../vm/machine.ts";
import {
  NEW_ROOT,
  pivotInto,
  releaseOldRoot,
  remountRootReadOnly,
  restartOnNewRoot,
  stopRootWriters,
  type Quiesced,
} from "./pivot.ts";
import { expectReleased, inChroot, pivotToTemporaryRoot } from "./temp-root.ts";

export type BtrfsSkip = "fix-fstab" | "rebuild-initramfs" | "update-grub";

/** A file written on btrfs after the switch: present after a boot only if btrfs was the root. */
export const BTRFS_MARKER = "/var/lib/vmlab/written-on-btrfs";

/**
 * The fstab line for `mount` rewritten for btrfs: source, type btrfs, options
 * "defaults" (ext3 options such as errors=remount-ro make a btrfs mount fail)
 * and fsck pass 0 (fsck.btrfs does nothing). Pure: fstab text in, text out.
 */
export function fstabForBtrfs(fstab: string, mount: string, source: string): string {
  let found = false;
  const out = fstab.split("\n").map((line) => {
    const f = line.trim().split(/\s+/);
    if (line.trim().startsWith("#") || f.length < 3 || f[1] !== mount) return line;
    found = true;
    return `${source}\t${mount}\tbtrfs\tdefaults\t0\t0`;
  });
  if (!found) throw new VmlabError(`fstab has no line for ${mount}`, { output: fstab, hint: "add the line by hand; the procedure only rewrites an existing one" });
  return out.join("\n");
}

async function rewriteFstab(vm: Machine, file: string, mount: string, source: string): Promise<string> {
  const next = fstabForBtrfs(await vm.succeed(`cat ${file}`), mount, source);
  await vm.succeed(`cat > ${file}.new && mv ${file}.new ${file}`, { input: next.endsWith("\n") ? next : next + "\n" });
  return next;
}

/** Throw unless the initramfs for the newest kernel holds the btrfs module. */
export async function expectInitramfsHasBtrfs(vm: Machine, root = ""): Promise<void> {
  const found = await vm.run(`lsinitramfs $(ls -1 ${root}/boot/initrd.img-* | sort -V | tail -n 1) | grep -E '/btrfs\\.ko'`);
  if (found.exitCode !== 0) {
    throw new VmlabError("the initramfs has no btrfs module: the next boot cannot mount /", {
      hint: "add btrfs to /etc/initramfs-tools/modules and run update-initramfs -u",
    });
  }
}

export interface BtrfsCopyOptions {
  vg: string;
  lv: string;
  size: string;
  /** The ext3 partition `/` lives on now. */
  oldRoot: string;
  skip?: BtrfsSkip[];
}

/** Copy route: fresh btrfs on a new LV, cp -ax, final rsync, pivot, fstab, initramfs, GRUB. */
export async function ext3ToBtrfsCopy(ctx: ScenarioContext, o: BtrfsCopyOptions): Promise<void> {
  const { vm, step, log } = ctx;
  const skip = new Set(o.skip ?? []);
  const lvPath = `/dev/${o.vg}/${o.lv}`;
  let q: Quiesced = { stopped: [] };
  await step(`create LV ${o.vg}/${o.lv} ${o.size} with a fresh btrfs`, async () => {
    await vm.succeed(`lvcreate -y -L ${o.size} -n ${o.lv} ${o.vg} && mkfs.btrfs -q -f -L root ${lvPath}`);
    await vm.succeed(`mkdir -p ${NEW_ROOT} && mount ${lvPath} ${NEW_ROOT}`);
  });
  await step("copy the running system with cp -ax", () => vm.succeed(`cp -ax /. ${NEW_ROOT}/`, { timeoutMs: 20 * 60_000 }));
  await step("stop writers on /, remount it read-only, final rsync -aHAXx", async () => {
    q = await stopRootWriters(vm, log);
    await remountRootReadOnly(vm, q);
    const out = await vm.succeed(`rsync -aHAXx --delete --stats --exclude=${NEW_ROOT}/* / ${NEW_ROOT}/ | grep -E 'transferred|deleted'`, { timeoutMs: 10 * 60_000 });
    log(`final pass: ${out.trim().replace(/\n/g, "; ")}`);
  });
  await step(`pivot_root into ${lvPath}`, () => pivotInto(vm, lvPath, log));
  await step("restart init and sshd on the new root; new SSH session", () => restartOnNewRoot(vm, q, log));
  await step("write on the new root", () => vm.succeed(`mkdir -p $(dirname ${BTRFS_MARKER}) && date -u > ${BTRFS_MARKER} && sync`));
  await step("unmount the old root and relabel it", async () => {
    await releaseOldRoot(vm, log);
    await vm.succeed(`tune2fs -L oldroot -U random ${o.oldRoot}`);
  });
  if (!skip.has("fix-fstab")) {
    await step("fix fstab: / is btrfs by UUID, defaults, no fsck pass", async () => {
      const uuid = (await vm.succeed(`blkid -s UUID -o value ${lvPath}`)).trim();
      log((await rewriteFstab(vm, "/etc/fstab", "/", `UUID=${uuid}`)).split("\n").filter((l) => /\s\/\s/.test(l)).join("\n"));
    });
  } else log("skipped: fix fstab");
  if (!skip.has("rebuild-initramfs")) {
    await step("rebuild the initramfs with btrfs", async () => {
      await vm.succeed("update-initramfs -u -k all", { timeoutMs: 20 * 60_000 });
      await expectInitramfsHasBtrfs(vm);
    });
  } else log("skipped: rebuild the initramfs");
  if (!skip.has("update-grub")) {
    await step("grub-install and update-grub", () => vm.succeed("grub-install /dev/sda && update-grub", { timeoutMs: 10 * 60_000 }));
  } else log("skipped: update-grub");
}

export interface BtrfsConvertOptions {
  /** The ext3 root partition, converted in place. */
  device: string;
  /** VG and scratch LV for the temporary root. */
  vg: string;
  tempLv: string;
}

const CONVERTED = "/mnt/converted";

/**
 * In place: free the root partition by pivoting into a temporary root, run
 * btrfs-convert (keeping the UUID and LABEL, so root=UUID= and LABEL=root
 * still name it), then fix fstab, the initramfs and grub.cfg from a chroot
 * into the converted root.
 */
export async function ext3ToBtrfsConvert(ctx: ScenarioContext, o: BtrfsConvertOptions): Promise<void> {
  const { vm, step, log } = ctx;
  await pivotToTemporaryRoot(ctx, { device: o.device, vg: o.vg, lv: o.tempLv });
  await step(`btrfs-convert ${o.device} (UUID and LABEL kept)`, async () => {
    await vm.succeed(`e2fsck -f -y ${o.device} >/dev/null`);
    const out = await vm.succeed(`btrfs-convert --uuid copy -L --no-progress ${o.device} 2>&1`, { timeoutMs: 30 * 60_000 });
    log(out.trim().split("\n").slice(-3).join("; "));
  });
  await step("fix fstab, the initramfs and grub.cfg from a chroot into the converted root", async () => {
    await vm.succeed(`mkdir -p ${CONVERTED} && mount ${o.device} ${CONVERTED} && mount --bind /boot ${CONVERTED}/boot`);
    const uuid = (await vm.succeed(`blkid -s UUID -o value ${o.device}`)).trim();
    await rewriteFstab(vm, `${CONVERTED}/etc/fstab`, "/", `UUID=${uuid}`);
    // MODULES=dep picks modules for the filesystem the build runs on; name btrfs so it is there whatever that is.
    await vm.succeed(`grep -qx btrfs ${CONVERTED}/etc/initramfs-tools/modules || echo btrfs >> ${CONVERTED}/etc/initramfs-tools/modules`);
    await vm.succeed(inChroot(CONVERTED, "update-initramfs -u -k all && update-grub"), { timeoutMs: 20 * 60_000 });
    await expectInitramfsHasBtrfs(vm);
    await vm.succeed(`test -f ${CONVERTED}/ext2_saved/image`, { hint: "btrfs-convert keeps the original filesystem in ext2_saved/image; without it there is no way back" });
    await vm.succeed(`umount ${CONVERTED}/boot && umount ${CONVERTED}`);
  });
}

/**
 * The way back: from a temporary root (the one used for the conversion, as
 * it is), `btrfs-convert -r` restores the original ext3 from ext2_saved.
 * Everything written on btrfs since the conversion is gone.
 */
export async function btrfsRollback(ctx: ScenarioContext, o: BtrfsConvertOptions): Promise<void> {
  const { vm, step, log } = ctx;
  const lvPath = `/dev/${o.vg}/${o.tempLv}`;
  await step(`pivot into the temporary root ${o.vg}/${o.tempLv} again`, async () => {
    const q = await stopRootWriters(vm, log);
    await remountRootReadOnly(vm, q);
    await vm.succeed(`mkdir -p ${NEW_ROOT}`);
    await pivotInto(vm, lvPath, log);
    await restartOnNewRoot(vm, q, log);
    if ((await releaseOldRoot(vm, log)) === "lazy") await vm.succeed("sleep 2");
    await expectReleased(vm, o.device);
  });
  await step(`btrfs-convert -r ${o.device}`, async () => {
    const out = await vm.succeed(`btrfs-convert -r ${o.device} 2>&1`, { timeoutMs: 30 * 60_000 });
    log(out.trim().split("\n").slice(-2).join("; "));
    await vm.succeed(`e2fsck -f -y ${o.device} >/dev/null`);
    const type = (await vm.succeed(`blkid -s TYPE -o value ${o.device}`)).trim();
    if (type !== "ext3") throw new VmlabError(`${o.device} is ${type} after the rollback, expected ext3`);
  });
  // /boot is not part of the rollback: its initramfs was built for a btrfs
  // root, with fsck.btrfs and without e2fsck, and would stop at "fsck.ext3
  // not found". Rebuild it from the restored root, whose fstab says ext3.
  await step("rebuild the initramfs and grub.cfg for ext3 from a chroot into the restored root", async () => {
    await vm.succeed(`mkdir -p ${CONVERTED} && mount ${o.device} ${CONVERTED} && mount --bind /boot ${CONVERTED}/boot`);
    await vm.succeed(inChroot(CONVERTED, "update-initramfs -u -k all && update-grub"), { timeoutMs: 20 * 60_000 });
    const fsck = await vm.run(`lsinitramfs $(ls -1 /boot/initrd.img-* | sort -V | tail -n 1) | grep -E 'sbin/(e2fsck|fsck\.ext3)$'`);
    if (fsck.exitCode !== 0) throw new VmlabError("the initramfs cannot check an ext3 root (no e2fsck)", { hint: "rebuild it from a root whose fstab says ext3" });
    await vm.succeed(`umount ${CONVERTED}/boot && umount ${CONVERTED}`);
  });
}
