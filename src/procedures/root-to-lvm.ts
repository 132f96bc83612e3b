/**
 * Move `/` from a partition into an LVM logical volume over SSH, without a
 * reboot until the end: the root-replacement runbook, step by step.
 */
import type { ScenarioContext } from "../scenario/types.ts";
import { VmlabError } from "../errors.ts";
import { kernelIoMessages } from "../faults/index.ts";
import type { Machine } from "../vm/machine.ts";
import {
  type Log,
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
  /** Called once the new LV exists (a fault scenario injects I/O errors into it here). */
  onLvCreated?: (lvPath: string) => Promise<void>;
  /** Stop right after the pivot, for a scenario that finishes another way (over the serial console). */
  stopAfter?: "pivot";
}

/** A file written on the new root after the pivot: present after reboot only if the new root booted. */
export const MARKER = "/var/lib/vmlab/written-after-migration";

export async function rootToLvm(ctx: ScenarioContext, o: RootToLvmOptions): Promise<Quiesced> {
  const { vm, step, log } = ctx;
  const lvPath = `/dev/${o.vg}/${o.lv}`;
  const skip = new Set(o.skip ?? []);
  let q: Quiesced = { stopped: [] };

  // Until the pivot, a failure (a busy root, an I/O error) is undone: the
  // machine is left as it was, with no half-made LV.
  let created = false;
  try {
    await step(`create LV ${o.vg}/${o.lv} ${o.size}`, async () => {
      await vm.succeed(`lvcreate -y -L ${o.size} -n ${o.lv} ${o.vg}`);
      created = true;
      await vm.succeed(`mkdir -p ${NEW_ROOT} ${OLD_ROOT}`);
      await o.onLvCreated?.(lvPath);
    });
    await step("stop writers on / and remount it read-only", async () => {
      q = await stopRootWriters(vm, log);
      await remountRootReadOnly(vm, q);
    });
    await step(`dd ${o.oldRoot} to ${lvPath}, fsck, resize2fs`, async () => {
      // The size of the copy: a fault during it is judged against this (did it fall inside the copy?).
      ctx.record("copyBytes", Number((await vm.succeed(`blockdev --getsize64 ${o.oldRoot}`)).trim()));
      await vm.succeed(`dd if=${o.oldRoot} of=${lvPath} bs=8M conv=fsync status=none`);
      // e2fsck exits 1 when it fixed something, which a clean copy never needs.
      await vm.succeed(`e2fsck -f -y ${lvPath}`);
      await vm.succeed(`resize2fs -p ${lvPath}`);
    });
  } catch (err) {
    // The machine went away (a power cut): there is nothing to undo from here.
    if (!vm.running) throw err;
    // The kernel's view of a failed copy (I/O errors) goes with the error.
    const kernel = await kernelIoMessages(vm).catch(() => []);
    await step("abort: leave the machine as it was", () => abortBeforePivot(vm, q, created ? lvPath : undefined, log));
    if (kernel.length && err instanceof VmlabError) {
      throw new VmlabError(err.message, {
        where: err.where,
        output: `${err.output ?? ""}\nguest kernel messages:\n${kernel.join("\n")}`.trim(),
        hint: "the device under the copy failed; the machine was left as it was (old root, writable, no new LV)",
        cause: err,
      });
    }
    throw err;
  }
  await step("mount the copy and pivot_root into it", () => pivotInto(vm, lvPath, log));
  if (o.stopAfter === "pivot") return q;
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
  return q;
}

/**
 * Undo what a root migration did before its pivot: `/` writable again, the
 * stopped services started, the new LV removed. Safe to call at any point
 * before the pivot.
 */
export async function abortBeforePivot(vm: Machine, q: Quiesced, lvPath: string | undefined, log: Log): Promise<void> {
  if ((await vm.run("findmnt -no OPTIONS / | tr , '\\n' | grep -qx ro")).exitCode === 0) {
    await vm.succeed("mount -o remount,rw /");
    log("/ is writable again");
  }
  if (q.stopped.length) {
    await vm.succeed(`systemctl start ${q.stopped.join(" ")}`);
    log(`started again: ${q.stopped.join(", ")}`);
  }
  if (q.journalRelinquished) await vm.run("journalctl --flush");
  if (lvPath) {
    // lvremove -y refuses a mounted LV; nothing mounts it before the pivot.
    await vm.succeed(`lvremove -y ${lvPath}`);
    log(`removed the half-made ${lvPath}`);
  }
}
