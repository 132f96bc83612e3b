import { VmlabError } from "../src/errors.ts";
import { DEFAULT_MIRRORS, arrays, MD_MARKER, rootToMdraid } from "../src/procedures/root-to-mdraid.ts";
import { rootInfo } from "../src/procedures/pivot.ts";
import { scenario } from "../src/scenario/types.ts";

/**
 * Negative twin of root-to-mdraid1: mdadm.conf is left as the package wrote
 * it, with no ARRAY lines, and the initramfs is rebuilt from it. The
 * initramfs then knows no arrays of its own; whatever it assembles, it does
 * as foreign arrays under names of its choosing, or not at all. The twin
 * passes only when the lab sees the boot fail, come back on another root, or
 * come back with the arrays not under the names the machine was set up with.
 */
export default scenario({
  name: "root-to-mdraid1-no-mdadm-conf",
  description: "twin of root-to-mdraid1 that leaves mdadm.conf without ARRAY lines: the boot must fail or bring the arrays up as foreign ones",
  image: "debian12-bios",
  tags: ["raid", "pivot", "twin", "slow"],
  kind: "twin",
  runbook: "raid1-migration-howto.txt",
  hardware: { extraDisks: ["8G"] },
  async run(ctx) {
    const { vm, step, record, log } = ctx;
    const [source, target] = [await vm.guestDisk("sda"), await vm.guestDisk("sdb")];
    await rootToMdraid(ctx, { source, target, mirrors: DEFAULT_MIRRORS, skip: ["mdadm-conf"] });
    const boot = await step("reboot through firmware", () => vm.reboot());
    await step("observe the forgotten step", async () => {
      if (boot.outcome !== "ssh") {
        record("observedFailure", { kind: "boot", outcome: boot.outcome, detail: boot.detail, evidence: boot.evidence });
        log(`boot ended as ${boot.outcome}${boot.detail ? ` (${boot.detail})` : ""}`);
        return;
      }
      const root = await rootInfo(vm);
      const marker = (await vm.run(`test -e ${MD_MARKER}`)).exitCode === 0;
      const names = (await arrays(vm)).map((a) => a.md);
      record("root", root);
      record("arrays", names);
      if (!root.device.startsWith("/dev/md") || !marker) {
        record("observedFailure", { kind: "wrong-root", root: root.device });
        return;
      }
      const expected = DEFAULT_MIRRORS.map((m) => m.md);
      if (expected.some((md) => !names.includes(md))) {
        record("observedFailure", { kind: "foreign-array-names", expected, found: names });
        log(`the arrays came up as ${names.join(", ")}, not ${expected.join(", ")}: the initramfs assembled them as foreign arrays`);
        return;
      }
      throw new VmlabError("the lab saw nothing wrong although mdadm.conf has no ARRAY lines", {
        hint: "the twin expects the initramfs to lack the array definitions",
      });
    });
  },
});
