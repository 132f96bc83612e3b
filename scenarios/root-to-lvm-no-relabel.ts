import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import { rootInfo } from "../src/procedures/pivot.ts";
import { MARKER, rootToLvm } from "../src/procedures/root-to-lvm.ts";

/**
 * Negative twin of root-to-lvm: the admin forgets to relabel the old root.
 * dd copied the filesystem UUID and LABEL, so two filesystems now answer to
 * root=UUID=... and LABEL=root. The lab must see the machine come back on the
 * OLD root, with everything written after the migration gone. The twin passes
 * only when the lab observes that failure.
 */
export default scenario({
  name: "root-to-lvm-no-relabel",
  description: "twin of root-to-lvm that skips relabelling the old root: must be seen booting the old root",
  image: "debian12-bios",
  tags: ["lvm", "pivot", "twin"],
  kind: "twin",
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
      record("root", root);
      if (root.device === "/dev/mapper/sys-root" && marker) {
        throw new VmlabError("the machine booted the new root although the old root was not relabelled", {
          hint: "the twin expects the duplicate UUID to pick the old root; if this is now safe, the twin needs another forgotten step",
        });
      }
      record("observedFailure", { kind: "old-root", root: root.device, writtenAfterMigration: marker ? "present" : "lost" });
      log(`booted ${root.device}, the old root; the file written after the migration is ${marker ? "present" : "lost"}`);
    });
  },
});
