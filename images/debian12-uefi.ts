import { recipe } from "../src/image/recipe.ts";
import { DEBIAN12_BLACKLIST, DEBIAN12_DEVICE_TIMEOUT, DEBIAN12_INITRAMFS, DEBIAN12_KERNEL_CMDLINE, DEBIAN12_MASKED_UNITS, DEBIAN12_PACKAGES } from "../src/image/debian12.ts";

/**
 * Debian 12 on one 8 GiB UEFI/GPT disk: the BIOS image's server as it is
 * installed today. An ESP at /boot/efi with GRUB at \EFI\debian\grubx64.efi
 * and a boot entry for it in the image's own NVRAM (efivars.fd, made by
 * grub-install through efibootmgr under OVMF), a small /boot, a 2 GiB ext3
 * root, and the rest as an LVM PV in VG "sys" with free space to migrate
 * into. Like a Debian install, nothing sits at the removable-media path
 * \EFI\BOOT\BOOTX64.EFI: without its NVRAM entry the machine has nothing to boot.
 */
export default recipe({
  name: "debian12-uefi",
  description: "Debian 12, OVMF + GRUB on GPT: sda1 ESP vfat /boot/efi, sda2 /boot ext2, sda3 / ext3, sda4 LVM PV in VG sys",
  suite: "bookworm",
  packages: DEBIAN12_PACKAGES,
  hostname: "vmlab",
  firmware: "uefi",
  disk: {
    size: "8G",
    label: "gpt",
    partitions: [
      { name: "esp", size: "64M", type: "ef", fs: { type: "vfat", label: "ESP", mount: "/boot/efi" } },
      { name: "boot", size: "200M", type: "83", fs: { type: "ext2", label: "boot", mount: "/boot" } },
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
