import { VmlabError } from "../src/errors.ts";
import { BTRFS_MARKER, ext3ToBtrfsCopy } from "../src/procedures/ext3-to-btrfs.ts";
import { rootInfo } from "../src/procedures/pivot.ts";
import { scenario } from "../src/scenario/types.ts";

/**
 * Negative twin of ext3-to-btrfs-copy: the initramfs is not rebuilt. The image
 * builds its initramfs with MODULES=dep, which takes only the modules the
 * root of the time needed (ext4 for ext3), so the old initramfs has no btrfs
 * module and cannot mount the new root. The twin passes only when the lab
 * sees the boot fail, or come back on something other than the btrfs root.
 */
export default scenario({
  name: "ext3-to-btrfs-copy-no-initramfs",
  description: "twin of ext3-to-btrfs-copy that skips the initramfs rebuild: the boot must fail without the btrfs module",
  image: "debian12-bios",
  expect: {
    failure: [
      { says: "the initramfs cannot mount the btrfs root (no btrfs module)", boot: { outcome: "initramfs-shell", detail: ["mount-failed", "no-root-device"], evidence: "Failed to mount /dev/mapper/sys-root|ALERT! .* does not exist" } },
      { says: "the kernel cannot mount the btrfs root", boot: { outcome: "kernel-panic", detail: "no-root", evidence: "VFS: Unable to mount root fs" } },
      { says: "the machine came back on something other than the btrfs root", boot: { outcome: "ssh" }, facts: [{ path: "observedFailure.kind", equals: "wrong-root" }] },
    ],
  },
  tags: ["btrfs", "lvm", "pivot", "twin"],
  kind: "twin",
  // Run with ext3-to-btrfs-copy, it forks from ext3-to-btrfs-copy's checkpoint before this step instead of repeating the prefix.
  variantOf: { scenario: "ext3-to-btrfs-copy", fromStep: "rebuild the initramfs with btrfs" },
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  async run(ctx) {
    const { vm, step, record, log } = ctx;
    await ext3ToBtrfsCopy(ctx, { vg: "sys", lv: "root", size: "3G", oldRoot: "/dev/sda2", skip: ["rebuild-initramfs"] });
    const boot = await step("reboot through firmware", () => vm.reboot());
    await step("observe the forgotten step", async () => {
      if (boot.outcome !== "ssh") {
        record("observedFailure", { kind: "boot", outcome: boot.outcome, detail: boot.detail, evidence: boot.evidence });
        log(`boot ended as ${boot.outcome}${boot.detail ? ` (${boot.detail})` : ""}: the failure is observed`);
        return;
      }
      const root = await rootInfo(vm);
      const marker = (await vm.run(`test -e ${BTRFS_MARKER}`)).exitCode === 0;
      record("root", root);
      if (root.fstype !== "btrfs" || !marker) {
        record("observedFailure", { kind: "wrong-root", root: root.device, fstype: root.fstype });
        return;
      }
      throw new VmlabError("the machine booted its btrfs root with the old initramfs", {
        hint: "the twin expects the pre-migration initramfs to lack the btrfs module; check MODULES in the image's initramfs.conf",
      });
    });
  },
});
