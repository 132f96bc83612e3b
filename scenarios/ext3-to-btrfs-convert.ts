import { VmlabError } from "../src/errors.ts";
import { btrfsRollback, ext3ToBtrfsConvert } from "../src/procedures/ext3-to-btrfs.ts";
import { expectRoot, expectUniqueRoot } from "../src/procedures/pivot.ts";
import { scenario } from "../src/scenario/types.ts";
import { expectBoot } from "../src/vm/machine.ts";

const OPTS = { device: "/dev/sda2", vg: "sys", tempLv: "tmproot" };
const AFTER_CONVERT = "/var/lib/vmlab/written-after-convert";

/**
 * ext3 → btrfs in place, and back. The root partition is freed by pivoting
 * into a temporary root, converted with btrfs-convert, fixed from a chroot
 * (fstab, initramfs, grub.cfg) and booted through firmware as btrfs. Then the
 * way back: from the temporary root again, btrfs-convert -r restores the
 * ext3 from the saved image, and the machine boots ext3 again.
 */
export default scenario({
  name: "ext3-to-btrfs-convert",
  description: "convert / on sda2 from ext3 to btrfs in place from a pivoted temporary root, boot it, roll back with btrfs-convert -r, boot ext3",
  image: "debian12-bios",
  expect: { final: { boot: "ssh", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  tags: ["btrfs", "pivot", "slow"],
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  async run(ctx) {
    const { vm, step, data, record, log } = ctx;
    await ext3ToBtrfsConvert(ctx, OPTS);
    await step("reboot through firmware into the converted root", async () => expectBoot(vm, await vm.reboot(), "ssh"));
    await step("verify / is btrfs on sda2, the saved ext3 image is there, data intact", async () => {
      record("rootAfterConvert", await expectRoot(vm, "/dev/sda2", "btrfs"));
      await vm.succeed("test -f /ext2_saved/image");
      record("rootIdentityAfterConvert", await expectUniqueRoot(vm));
      record("dataAfterConvert", await data.expectIntact(vm));
      await vm.succeed(`mkdir -p $(dirname ${AFTER_CONVERT}) && date -u > ${AFTER_CONVERT} && sync`);
    });
    await btrfsRollback(ctx, OPTS);
    await step("reboot through firmware into the restored ext3", async () => expectBoot(vm, await vm.reboot(), "ssh"));
    await step("verify / is ext3 on sda2 again, data intact", async () => {
      record("rootAfterRollback", await expectRoot(vm, "/dev/sda2", "ext3"));
      record("rootIdentityAfterRollback", await expectUniqueRoot(vm));
      record("dataAfterRollback", await data.expectIntact(vm));
      // The rollback returns the filesystem to the moment of conversion: later writes are gone, by design.
      const kept = (await vm.run(`test -e ${AFTER_CONVERT}`)).exitCode === 0;
      if (kept) throw new VmlabError("a file written on btrfs after the conversion survived the rollback", { hint: "btrfs-convert -r did not restore the saved image" });
      log("the file written on btrfs after the conversion is gone, as a rollback must leave it");
    });
  },
});
