import { recipe } from "../src/image/recipe.ts";
import { DEBIAN12_BLACKLIST, DEBIAN12_INITRAMFS, DEBIAN12_KERNEL_CMDLINE, DEBIAN12_MASKED_UNITS, DEBIAN12_PACKAGES } from "../src/image/debian12.ts";

/**
 * The rescue system: Debian 12 with the same tools as the lab guests (lvm2,
 * mdadm, btrfs-progs, grub-pc, initramfs-tools), booted by direct kernel boot
 * with a broken machine's disks attached (src/rescue). Its labels are its own,
 * and mke2fs gives its filesystems fresh UUIDs, so `LABEL=root`, `LABEL=boot`
 * and every UUID on the target's disks still mean the target's filesystems.
 */
export default recipe({
  name: "rescue",
  description: "rescue system: Debian 12 on one 3 GiB disk, LABEL=rescue-root, booted by direct kernel boot",
  suite: "bookworm",
  packages: DEBIAN12_PACKAGES,
  hostname: "vmlab-rescue",
  disk: {
    size: "3G",
    label: "msdos",
    partitions: [
      { name: "boot", size: "200M", type: "83", bootable: true, fs: { type: "ext2", label: "rescue-boot", mount: "/boot" } },
      { name: "root", type: "83", fs: { type: "ext4", label: "rescue-root", mount: "/" } },
    ],
  },
  kernelCmdline: DEBIAN12_KERNEL_CMDLINE,
  maskUnits: DEBIAN12_MASKED_UNITS,
  initramfs: DEBIAN12_INITRAMFS,
  blacklistModules: DEBIAN12_BLACKLIST,
  // Booted directly only: no GRUB and no provisioning boot; the initramfs is
  // the one the kernel package made in the tree (MODULES=most finds any disk).
  directBoot: { append: `root=LABEL=rescue-root ro ${DEBIAN12_KERNEL_CMDLINE}`, only: true },
});
