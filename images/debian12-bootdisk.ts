import { recipe } from "../src/image/recipe.ts";
import { DEBIAN12_BLACKLIST, DEBIAN12_DEVICE_TIMEOUT, DEBIAN12_INITRAMFS, DEBIAN12_KERNEL_CMDLINE, DEBIAN12_MASKED_UNITS, DEBIAN12_PACKAGES } from "../src/image/debian12.ts";

/**
 * Debian 12 laid out like the MBR + /boot backup runbook's server: a local
 * boot disk holds /boot and swap, and / lives elsewhere (there on iSCSI, here
 * on a second disk). Losing the boot disk is the whole disaster; a dd image
 * of its first sectors (MBR, GRUB's core image in the post-MBR gap, /boot)
 * brings the machine back.
 */
export default recipe({
  name: "debian12-bootdisk",
  description: "Debian 12, SeaBIOS + GRUB on a 1 GiB boot disk (sda1 /boot ext2, sda2 swap LABEL=SWAP-sda2); / ext3 on the whole of a second disk (sdb)",
  suite: "bookworm",
  packages: DEBIAN12_PACKAGES,
  hostname: "vmlab",
  // The local boot disk: /boot and swap, GRUB in its MBR and post-MBR gap.
  disk: {
    size: "1G",
    label: "msdos",
    partitions: [
      { name: "boot", size: "256M", type: "83", bootable: true, fs: { type: "ext2", label: "boot", mount: "/boot" } },
      { name: "swap", type: "82", swap: { label: "SWAP-sda2" } },
    ],
  },
  // The disk that stands for the iSCSI LUN: / directly on the whole disk. Its
  // first sector is empty, so the firmware never boots from it.
  moreDisks: [{ size: "4G", label: "none", partitions: [{ name: "root", type: "83", fs: { type: "ext3", label: "root", mount: "/" } }] }],
  kernelCmdline: DEBIAN12_KERNEL_CMDLINE,
  maskUnits: DEBIAN12_MASKED_UNITS,
  initramfs: DEBIAN12_INITRAMFS,
  blacklistModules: DEBIAN12_BLACKLIST,
  deviceTimeout: DEBIAN12_DEVICE_TIMEOUT,
});
