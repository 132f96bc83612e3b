import { recipe } from "../src/image/recipe.ts";
import { DEBIAN12_BLACKLIST, DEBIAN12_DEVICE_TIMEOUT, DEBIAN12_INITRAMFS, DEBIAN12_KERNEL_CMDLINE, DEBIAN12_MASKED_UNITS, DEBIAN12_PACKAGES } from "../src/image/debian12.ts";

/**
 * Debian 12 on one 8 GiB BIOS/msdos disk, laid out like the server in the
 * root-replacement runbook: a small /boot, a 2 GiB ext3 root, and the rest as
 * an LVM PV in VG "sys" with free space to migrate into.
 */
export default recipe({
  name: "debian12-bios",
  description: "Debian 12, SeaBIOS + GRUB on msdos: sda1 /boot ext2, sda2 / ext3, sda3 LVM PV in VG sys",
  suite: "bookworm",
  packages: DEBIAN12_PACKAGES,
  hostname: "vmlab",
  disk: {
    size: "8G",
    label: "msdos",
    partitions: [
      { name: "boot", size: "200M", type: "83", bootable: true, fs: { type: "ext2", label: "boot", mount: "/boot" } },
      { name: "root", size: "2G", type: "83", fs: { type: "ext3", label: "root", mount: "/" } },
      { name: "sys", type: "8e", lvm: { vg: "sys" } },
    ],
  },
  kernelCmdline: DEBIAN12_KERNEL_CMDLINE,
  maskUnits: DEBIAN12_MASKED_UNITS,
  initramfs: DEBIAN12_INITRAMFS,
  blacklistModules: DEBIAN12_BLACKLIST,
  deviceTimeout: DEBIAN12_DEVICE_TIMEOUT,
});
