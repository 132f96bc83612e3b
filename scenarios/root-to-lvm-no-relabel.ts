import { scenario } from "../src/scenario/types.ts";
import { rootIdentity, rootInfo } from "../src/procedures/pivot.ts";
import { MARKER, rootToLvm } from "../src/procedures/root-to-lvm.ts";
import { VmlabError } from "../src/errors.ts";

/**
 * Negative twin of root-to-lvm: the admin forgets to relabel the old root.
 * dd copied the filesystem's UUID and LABEL, so after the reboot two
 * filesystems answer to root=UUID=... and to LABEL=root in fstab, and device
 * discovery order decides which one is mounted as `/`. On Debian 12 the LV
 * usually wins (it appears last), which hides the mistake until a boot where
 * it does not. The lab must see it either way: the twin passes only when the
 * machine came back on the old root, failed to boot, or carries two
 * filesystems with the root's identity.
 */
export default scenario({
  name: "root-to-lvm-no-relabel",
  description: "twin of root-to-lvm that skips relabelling the old root: the lab must see the duplicate root identity",
  image: "debian12-bios",
  expect: {
    failure: [
      { says: "the machine came back on the old root /dev/sda2: the file written after the migration is lost", boot: { outcome: "ssh" }, root: { device: "/dev/sda2" }, facts: [{ path: "observedFailure.kind", equals: "old-root" }] },
      { says: "two filesystems carry the root's UUID (blkid -t UUID=...)", boot: { outcome: "ssh" }, facts: [{ path: "rootIdentity.sameUuid", minItems: 2 }] },
      { says: "the boot stopped in the initramfs at the root's fsck or mount", boot: { outcome: "initramfs-shell", detail: ["fsck", "mount-failed"], evidence: "requires a manual fsck|Failed to mount" } },
      { says: "the boot stopped in emergency mode mounting the duplicate root's filesystems", boot: { outcome: "emergency-mode", evidence: "Dependency failed for|Failed to mount" } },
    ],
  },
  tags: ["lvm", "pivot", "twin", "slow"],
  kind: "twin",
  // Run with root-to-lvm, it forks from root-to-lvm's checkpoint before this step instead of repeating the prefix.
  variantOf: { scenario: "root-to-lvm", fromStep: "relabel the old root (new LABEL and UUID)" },
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  async run(ctx) {
    const { vm, step, record, log } = ctx;
    await rootToLvm(ctx, { vg: "sys", lv: "root", size: "3G", oldRoot: "/dev/sda2", skip: ["relabel-old-root"] });
    const boot = await step("reboot through firmware", () => vm.reboot());
    await step("observe the forgotten step", async () => {
      if (boot.outcome !== "ssh") {
        record("observedFailure", { kind: "boot", outcome: boot.outcome, evidence: boot.evidence });
        log(`boot ended as ${boot.outcome}: the failure is observed`);
        return;
      }
      const root = await rootInfo(vm);
      const marker = (await vm.run(`test -e ${MARKER}`)).exitCode === 0;
      const id = await rootIdentity(vm);
      record("root", root);
      record("rootIdentity", id);
      if (root.device !== "/dev/mapper/sys-root" || !marker) {
        record("observedFailure", { kind: "old-root", root: root.device, writtenAfterMigration: marker ? "present" : "lost" });
        log(`booted ${root.device}, the old root; the file written after the migration is ${marker ? "present" : "lost"}`);
        return;
      }
      if (id.sameUuid.length > 1 || id.sameLabel.length > 1) {
        record("observedFailure", { kind: "duplicate-root-identity", root: root.device, sameUuid: id.sameUuid, sameLabel: id.sameLabel });
        log(`booted ${root.device} this time, but UUID ${id.uuid} is also on ${id.sameUuid.filter((d) => d !== root.device).join(", ")}`);
        return;
      }
      throw new VmlabError("the lab saw nothing wrong although the old root was not relabelled", {
        hint: "the twin expects the old root to keep the root's UUID and LABEL; check the procedure's skip list",
      });
    });
  },
});
