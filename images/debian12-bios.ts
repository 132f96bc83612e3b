import { recipe } from "../src/image/recipe.ts";

/**
 * Debian 12 on one 8 GiB BIOS/msdos disk, laid out like the server in the
 * root-replacement runbook: a small /boot, a 2 GiB ext3 root, and the rest as
 * an LVM PV in VG "sys" with free space to migrate into.
 */
export default recipe({
  name: "debian12-bios",
  description: "Debian 12, SeaBIOS + GRUB on msdos: sda1 /boot ext2, sda2 / ext3, sda3 LVM PV in VG sys",
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
  disk: {
    size: "8G",
    label: "msdos",
    partitions: [
      { name: "boot", size: "200M", type: "83", bootable: true, fs: { type: "ext2", label: "boot", mount: "/boot" } },
      { name: "root", size: "2G", type: "83", fs: { type: "ext3", label: "root", mount: "/" } },
      { name: "sys", type: "8e", lvm: { vg: "sys" } },
    ],
  },
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
