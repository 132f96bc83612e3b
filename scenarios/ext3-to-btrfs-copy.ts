import { VmlabError } from "../src/errors.ts";
import { BTRFS_MARKER, ext3ToBtrfsCopy } from "../src/procedures/ext3-to-btrfs.ts";
import { expectRoot, expectUniqueRoot } from "../src/procedures/pivot.ts";
import { scenario } from "../src/scenario/types.ts";
import { expectBoot } from "../src/vm/machine.ts";

/**
 * ext3 → btrfs by copy: a fresh btrfs on LV sys/root, the running system
 * copied onto it, pivot_root, fstab (type, options, fsck pass), an initramfs
 * with the btrfs module and a new grub.cfg; proven by a firmware reboot.
 */
export default scenario({
  name: "ext3-to-btrfs-copy",
  description: "copy / from ext3 on sda2 onto a fresh btrfs LV over SSH with pivot_root, then reboot through firmware",
  image: "debian12-bios",
  expect: { final: { boot: "ssh", root: "/dev/mapper/sys-root", fstype: "btrfs", data: "intact" } },
  tags: ["btrfs", "lvm", "pivot"],
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  async run(ctx) {
    const { vm, step, data, record } = ctx;
    await ext3ToBtrfsCopy(ctx, { vg: "sys", lv: "root", size: "3G", oldRoot: "/dev/sda2" });
    await step("reboot through firmware", async () => expectBoot(vm, await vm.reboot(), "ssh"));
    await step("verify / is btrfs on sys-root", async () => {
      record("root", await expectRoot(vm, "/dev/mapper/sys-root", "btrfs"));
      await vm.succeed(`test -s ${BTRFS_MARKER}`, { hint: "the file written after the pivot is missing: the old root booted" });
      const opts = (await vm.succeed("findmnt -no OPTIONS /")).trim();
      if (!/(^|,)rw(,|$)/.test(opts)) throw new VmlabError(`/ is mounted ${opts}`, { hint: "fstab's options for / do not suit btrfs; systemd could not remount it read-write" });
      record("rootOptions", opts);
    });
    await step("verify no other filesystem answers to the root's UUID or LABEL", async () => record("rootIdentity", await expectUniqueRoot(vm)));
    await step("verify the data set", async () => record("data", await data.expectIntact(vm)));
  },
});
