import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import { expectRootMountPanic } from "../src/faults/checks.ts";
import { removeInitrd } from "../src/faults/index.ts";
import { rescue } from "../src/rescue/index.ts";

/**
 * The rescue route's negative twin. The initrd is gone, as in
 * `missing-initrd`, but the rescue does the repair people reach for first
 * when a machine will not boot: it checks fstab and reinstalls GRUB, and
 * never rebuilds the initramfs. GRUB then loads a kernel with no initrd and
 * the next firmware boot panics on the root mount again. The twin passes only
 * when the lab observes that second panic: a rescue that skipped the real
 * repair must not be reported as a machine that boots.
 */
export default scenario({
  name: "missing-initrd-grub-only",
  description: "rm /boot/initrd.img-*, then a rescue that only checks fstab and reinstalls GRUB: the firmware boot must panic again",
  image: "debian12-bios",
  expect: {
    failure: [
      {
        says: "after a rescue that never rebuilt the initramfs, the firmware boot panics on the root mount again",
        boot: { outcome: "kernel-panic", detail: "no-root", evidence: "VFS: Unable to mount root fs" },
        facts: [{ path: "unrepaired.outcome", equals: "kernel-panic" }, { path: "unrepaired.detail", equals: "no-root" }],
      },
    ],
  },
  tags: ["fault", "missing-initrd", "rescue"],
  kind: "twin",
  async run(ctx) {
    const { vm, step, record } = ctx;
    const fault = ctx.injected(await step("fault: remove /boot/initrd.img-*", () => removeInitrd(vm)));
    await step("reboot through firmware: a kernel panic on the root mount", async () => {
      const b = await vm.reboot();
      fault.observed.push(`boot: ${b.outcome}${b.detail ? ` (${b.detail})` : ""}`, ...b.evidence);
      expectRootMountPanic(b, "without an initrd");
    });
    const { boot } = await rescue(ctx, { repairs: ["fstab", "grub"] });
    await step("verify: the wrong repair left a machine that still panics on the root mount", async () => {
      if (boot.via !== "firmware") throw new VmlabError(`after rescue the machine booted via ${boot.via}, not its own firmware`);
      fault.observed.push(`boot after the rescue: ${boot.outcome}${boot.detail ? ` (${boot.detail})` : ""}`, ...boot.evidence);
      if (boot.outcome === "ssh") {
        throw new VmlabError("the machine booted although the rescue never rebuilt the initramfs", {
          hint: "the lab would pass a rescue that skipped the real repair: check that the fault removed every initrd and that GRUB found none",
        });
      }
      expectRootMountPanic(boot, "after a rescue that left the initrd out,");
      record("unrepaired", { outcome: boot.outcome, detail: boot.detail, evidence: boot.evidence });
    });
  },
});
