import { recipe } from "../src/image/recipe.ts";

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
  packages: [
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "kmod",
    "initramfs-tools",
    "grub-pc",
    "openssh-server",
    "lvm2",
    "dmsetup",
    "mdadm",
    "btrfs-progs",
    "e2fsprogs",
    "rsync",
    "lsof",
    "psmisc",
    "fdisk",
    "uuid-runtime",
    "util-linux",
    "iproute2",
    "procps",
    "attr",
    "lz4",
  ],
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
  kernelCmdline: "console=ttyS0,115200 net.ifnames=0",
  maskUnits: [
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
    "getty@tty1.service",
    "getty-static.service",
    "systemd-networkd-wait-online.service",
  ],
  // Debian's defaults (MODULES=most, zstd -19) make a 40 MB initrd that takes
  // ten minutes to rebuild under TCG. MODULES=dep keeps what this machine
  // needs; the lvm2 and mdadm hooks still add their modules after a migration.
  initramfs: { MODULES: "dep", COMPRESS: "lz4" },
  // -cpu max shows svm/vmx to the guest; loading KVM inside it only costs boot time.
  blacklistModules: ["kvm", "kvm_amd", "kvm_intel"],
});
