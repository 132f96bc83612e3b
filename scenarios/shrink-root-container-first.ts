import { VmlabError } from "../src/errors.ts";
import { shrinkRoot } from "../src/procedures/shrink-root.ts";
import { scenario } from "../src/scenario/types.ts";

/**
 * Negative twin of shrink-root: the partition is shrunk before the
 * filesystem. The filesystem then claims more blocks than its partition has,
 * e2fsck refuses it, and the next boot cannot check or mount /. The twin
 * passes only when the lab sees the damage (fsck errors, a failed mount or a
 * failed boot), never a clean machine.
 */
export default scenario({
  name: "shrink-root-container-first",
  description: "twin of shrink-root that shrinks the partition before the filesystem: the lab must see fsck errors and a failed boot",
  image: "debian12-bios",
  expect: {
    failure: [
      {
        says: "e2fsck refuses a filesystem larger than its partition, and the initramfs stops at the root's fsck or mount",
        facts: [{ path: "fsck.exitCode", oneOf: [4, 8, 12] }],
        boot: { outcome: "initramfs-shell", detail: ["fsck", "mount-failed"], evidence: "root filesystem on /dev/sda2 requires a manual fsck|Failed to mount /dev/sda2" },
      },
      {
        says: "e2fsck refuses a filesystem larger than its partition, and the kernel cannot mount /",
        facts: [{ path: "fsck.exitCode", oneOf: [4, 8, 12] }],
        boot: { outcome: "kernel-panic", detail: "no-root", evidence: "VFS: Unable to mount root fs" },
      },
    ],
  },
  tags: ["shrink", "pivot", "twin"],
  kind: "twin",
  // Run with shrink-root, it forks from shrink-root's checkpoint before this step instead of repeating the prefix.
  variantOf: { scenario: "shrink-root", fromStep: "e2fsck -f, then resize2fs /dev/sda2 to 1200 MiB" },
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  async run(ctx) {
    const { vm, step, record, log } = ctx;
    const { fsck } = await shrinkRoot(ctx, { disk: "/dev/sda", part: 2, size: "1200M", vg: "sys", tempLv: "tmproot", order: "container-first" });
    record("fsck", fsck);
    const boot = await step("reboot through firmware", () => vm.reboot());
    await step("observe the damage", async () => {
      const seen: string[] = [];
      if (fsck.exitCode !== 0) seen.push(`e2fsck -f -n exit ${fsck.exitCode}`);
      if (boot.outcome !== "ssh") seen.push(`boot ${boot.outcome}${boot.detail ? ` (${boot.detail})` : ""}`);
      record("observedFailure", { fsckExit: fsck.exitCode, boot: { outcome: boot.outcome, detail: boot.detail, evidence: boot.evidence } });
      if (seen.length === 0) {
        throw new VmlabError("the lab saw nothing wrong although the partition was shrunk before the filesystem", {
          hint: "the twin expects e2fsck to refuse the filesystem and the boot to fail",
        });
      }
      log(`damage observed: ${seen.join("; ")}`);
    });
  },
});
