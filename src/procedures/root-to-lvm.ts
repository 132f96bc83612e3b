/**
 * Move `/` from a partition into an LVM logical volume over SSH, without a
 * reboot until the end: the root-replacement runbook, step by step.
 */
import type { ScenarioContext } from "../scenario/types.ts";
import {
  NEW_ROOT,
  OLD_ROOT,
  pivotInto,
  releaseOldRoot,
  remountRootReadOnly,
  restartOnNewRoot,
  stopRootWriters,
  type Quiesced,
} from "./pivot.ts";

export interface RootToLvmOptions {
  vg: string;
  lv: string;
  size: string;
  /** The partition `/` lives on now. */
  oldRoot: string;
  /** Steps a twin leaves out, the way a hurried admin would. */
  skip?: ("relabel-old-root" | "rebuild-initramfs" | "update-grub")[];
}

/** A file written on the new root after the pivot: present after reboot only if the new root booted. */
export const MARKER = "/var/lib/vmlab/written-after-migration";

export async function rootToLvm(ctx: ScenarioContext, o: RootToLvmOptions): Promise<void> {
  const { vm, step, log } = ctx;
  const lvPath = `/dev/${o.vg}/${o.lv}`;
  const skip = new Set(o.skip ?? []);
  let q: Quiesced = { stopped: [] };

  await step(`create LV ${o.vg}/${o.lv} ${o.size}`, async () => {
    await vm.succeed(`lvcreate -y -L ${o.size} -n ${o.lv} ${o.vg}`);
    await vm.succeed(`mkdir -p ${NEW_ROOT} ${OLD_ROOT}`);
  });
  await step("stop writers on / and remount it read-only", async () => {
    q = await stopRootWriters(vm, log);
    await remountRootReadOnly(vm, q);
  });
  await step(`dd ${o.oldRoot} to ${lvPath}, fsck, resize2fs`, async () => {
    await vm.succeed(`dd if=${o.oldRoot} of=${lvPath} bs=8M conv=fsync status=none`);
    // e2fsck exits 1 when it fixed something, which a clean copy never needs.
    await vm.succeed(`e2fsck -f -y ${lvPath}`);
    await vm.succeed(`resize2fs -p ${lvPath}`);
  });
  await step("mount the copy and pivot_root into it", () => pivotInto(vm, lvPath, log));
  await step("restart init and sshd on the new root; new SSH session", () => restartOnNewRoot(vm, q, log));
  await step("write on the new root", () => vm.succeed(`mkdir -p $(dirname ${MARKER}) && date -u > ${MARKER} && sync`));
  await step("unmount the old root", () => releaseOldRoot(vm, log));
  if (!skip.has("relabel-old-root")) {
    await step("relabel the old root (new LABEL and UUID)", () => vm.succeed(`tune2fs -L oldroot -U random ${o.oldRoot}`));
  } else log("skipped: relabel the old root");
  if (!skip.has("rebuild-initramfs")) {
    await step("rebuild the initramfs", () => vm.succeed("update-initramfs -u -k all", { timeoutMs: 20 * 60_000 }));
  } else log("skipped: rebuild the initramfs");
  if (!skip.has("update-grub")) {
    await step("grub-install and update-grub", () => vm.succeed("grub-install /dev/sda && update-grub", { timeoutMs: 10 * 60_000 }));
  } else log("skipped: grub-install and update-grub");
}
