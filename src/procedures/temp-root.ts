/**
 * A pivoted temporary root: the way to get the root partition unmounted on a
 * running machine, so that a tool that needs it unmounted (resize2fs to
 * shrink, btrfs-convert) can work on it over SSH. A copy of `/` goes into a
 * scratch LV, the machine pivots into the copy, and the real root partition
 * is released. The next firmware boot goes back to the real root partition.
 */
import { VmlabError } from "../errors.ts";
import type { ScenarioContext } from "../scenario/types.ts";
import { sh } from "../vm/guest-sh.ts";
import type { Machine } from "../vm/machine.ts";
import { NEW_ROOT, OLD_ROOT, pivotInto, releaseOldRoot, remountRootReadOnly, restartOnNewRoot, stopRootWriters } from "./pivot.ts";

export interface TempRootOptions {
  /** The root partition to free, e.g. /dev/sda2. */
  device: string;
  vg: string;
  /** Scratch LV for the copy (created; must not exist). */
  lv: string;
}

export const TEMP_ROOT_LABEL = "tmproot";

/** Throw unless nothing has `device` mounted or open: a lazily unmounted filesystem is still in use. */
export async function expectReleased(vm: Machine, device: string): Promise<void> {
  const mounted = (await vm.run(`findmnt -rno TARGET --source ${device}`)).stdout.trim();
  // e2fsprogs refuse a device that is mounted or busy (open O_EXCL by the kernel); ask one that only reads.
  const busy = (await vm.run(`e2fsck -n ${device} 2>&1 | grep -iE 'in use|is mounted' || true`)).stdout.trim();
  if (mounted || busy) {
    throw new VmlabError(`${device} is still in use`, {
      output: `${mounted ? `mounted on ${mounted}\n` : ""}${busy}\n${(await vm.run(`lsof -n ${OLD_ROOT} 2>/dev/null | head -20`)).stdout}`,
      hint: "a process still holds the old root; the lazy unmount keeps it alive until it exits: restart or stop it",
    });
  }
}

/**
 * Copy `/` into a scratch LV, give the copy its own UUID and LABEL (so the
 * next boot cannot take it for the real root), pivot into it, and release the
 * real root partition.
 */
export async function pivotToTemporaryRoot(ctx: ScenarioContext, o: TempRootOptions): Promise<string> {
  const { vm, step, log } = ctx;
  const lvPath = `/dev/${o.vg}/${o.lv}`;
  await step(`copy / into a temporary root ${o.vg}/${o.lv} and pivot into it`, async () => {
    const bytes = (await vm.succeed(`blockdev --getsize64 ${o.device}`)).trim();
    await vm.succeed(`lvcreate -y -L ${bytes}b -n ${o.lv} ${o.vg} && mkdir -p ${NEW_ROOT} ${OLD_ROOT}`);
    const q = await stopRootWriters(vm, log);
    await remountRootReadOnly(vm, q);
    await vm.succeed(`dd if=${o.device} of=${lvPath} bs=8M conv=fsync status=none`, { timeoutMs: 20 * 60_000 });
    await vm.succeed(`e2fsck -f -y ${lvPath} >/dev/null && tune2fs -U random -L ${TEMP_ROOT_LABEL} ${lvPath} >/dev/null`);
    await pivotInto(vm, lvPath, log);
    await restartOnNewRoot(vm, q, log);
    const how = await releaseOldRoot(vm, log);
    if (how === "lazy") await vm.succeed("sleep 2");
    await expectReleased(vm, o.device);
    log(`${o.device} is free; / is ${lvPath}`);
  });
  return lvPath;
}

/**
 * Bind the API filesystems into a mounted root and run a script chrooted
 * into it. `dir` is a plain path (/mnt/target): the trap's single-quoted text
 * takes it as it is.
 */
export function inChroot(dir: string, script: string): string {
  return `set -e
for d in dev proc sys run; do mount --bind /$d ${dir}/$d; done
trap 'for d in run sys proc dev; do umount -l ${dir}/$d; done' EXIT
${sh`chroot ${dir} /bin/sh -ec ${script}`}`;
}
