import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import { expectRootMountPanic } from "../src/faults/checks.ts";
import { removeInitrd } from "../src/faults/index.ts";
import { expectRoot } from "../src/procedures/pivot.ts";
import { rescue } from "../src/rescue/index.ts";

/**
 * /boot/initrd.img-* is gone (deleted to free space on a full /boot, or an
 * initramfs rebuild that failed half-way). The firmware boot must be
 * classified as a kernel panic on the root mount, with the kernel's own
 * lines as evidence. Then the rescue route: the rescue system is booted with
 * this machine's disk, chroots into it and rebuilds the initramfs and
 * grub.cfg; the machine boots from its own disk again with the data intact.
 */
export default scenario({
  name: "missing-initrd",
  description: "rm /boot/initrd.img-*: kernel panic on the root mount; rescue (chroot, update-initramfs) to a firmware boot",
  image: "debian12-bios",
  expect: {
    failure: [{ says: "without an initrd the kernel cannot mount / and panics", boot: { outcome: "kernel-panic", detail: "no-root", evidence: "VFS: Unable to mount root fs" } }],
    final: { boot: "ssh", root: "/dev/sda2", fstype: "ext3", data: "intact" },
  },
  tags: ["fault", "missing-initrd", "rescue"],
  kind: "twin",
  async run(ctx) {
    const { vm, step, data, record } = ctx;
    const fault = ctx.injected(await step("fault: remove /boot/initrd.img-*", () => removeInitrd(vm)));
    await step("reboot through firmware: a kernel panic on the root mount", async () => {
      const b = await vm.reboot();
      fault.observed.push(`boot: ${b.outcome}${b.detail ? ` (${b.detail})` : ""}`, ...b.evidence);
      expectRootMountPanic(b, "without an initrd");
    });
    const { record: r, boot } = await rescue(ctx, { repairs: ["initramfs", "grub"] });
    await step("verify: booted from its own disk, / on sda2, initrd back, data set intact", async () => {
      if (boot.outcome !== "ssh") throw new VmlabError(`after rescue the boot ended as ${boot.outcome}`, { output: boot.evidence.join("\n") });
      if (boot.via !== "firmware") throw new VmlabError(`after rescue the machine booted via ${boot.via}, not its own firmware`);
      record("root", await expectRoot(vm, "/dev/sda2", "ext3"));
      await vm.succeed("ls /boot/initrd.img-*", { hint: "the rescue did not bring the initrd back" });
      record("rescuedRoot", r.root);
      record("data", await data.expectIntact(vm));
    });
  },
});
