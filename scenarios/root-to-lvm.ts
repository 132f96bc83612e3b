import { scenario } from "../src/scenario/types.ts";
import { expectBoot } from "../src/vm/machine.ts";
import { expectRoot, expectUniqueRoot } from "../src/procedures/pivot.ts";
import { MARKER, rootToLvm } from "../src/procedures/root-to-lvm.ts";
import { VmlabError } from "../src/errors.ts";

/**
 * The flagship rehearsal: move `/` from /dev/sda2 into LV sys/root over SSH,
 * grow it from 2G to 3G, and prove the machine boots from the LV through
 * SeaBIOS, GRUB and the initramfs with the data set intact.
 */
export default scenario({
  name: "root-to-lvm",
  description: "move / from sda2 into LVM sys/root (3G) over SSH with pivot_root, then reboot through firmware",
  image: "debian12-bios",
  expect: { final: { boot: "ssh", root: "/dev/mapper/sys-root", fstype: "ext3", data: "intact" } },
  tags: ["lvm", "pivot", "flagship", "slow"],
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  async run(ctx) {
    const { vm, step, data, record } = ctx;
    await rootToLvm(ctx, { vg: "sys", lv: "root", size: "3G", oldRoot: "/dev/sda2" });
    await step("reboot through firmware", async () => {
      const boot = await vm.reboot();
      await expectBoot(vm, boot, "ssh");
    });
    await step("verify / is sys-root, ext3, 3G", async () => {
      const root = await expectRoot(vm, "/dev/mapper/sys-root", "ext3");
      record("root", root);
      const gib = root.sizeBytes / 2 ** 30;
      if (gib < 2.8 || gib > 3.05) throw new VmlabError(`/ is ${gib.toFixed(2)} GiB, expected about 3 GiB`, { hint: "resize2fs did not grow the copy" });
      await vm.succeed(`test -s ${MARKER}`, { hint: "the file written after the pivot is missing: the old root booted" });
    });
    await step("verify no other filesystem answers to the root's UUID or LABEL", async () => record("rootIdentity", await expectUniqueRoot(vm)));
    await step("verify the data set", async () => record("data", await data.expectIntact(vm)));
  },
});
