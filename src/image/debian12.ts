/**
 * What every Debian 12 lab guest shares, whatever its disks: the packages the
 * rehearsed procedures need, the units a lab guest never runs, and the
 * initramfs and module settings. Plain data, so each recipe's hash is the
 * same as if it were written out in full.
 */
export const DEBIAN12_PACKAGES = [
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
];

export const DEBIAN12_KERNEL_CMDLINE = "console=ttyS0,115200 net.ifnames=0";

export const DEBIAN12_MASKED_UNITS = [
  "apt-daily.timer",
  "apt-daily-upgrade.timer",
  "e2scrub_all.timer",
  "e2scrub_reap.service",
  "fstrim.timer",
  "man-db.timer",
  "getty@tty1.service",
  "getty-static.service",
  "systemd-networkd-wait-online.service",
];

// Debian's defaults (MODULES=most, zstd -19) make a 40 MB initrd that takes
// ten minutes to rebuild under TCG. MODULES=dep keeps what this machine
// needs; the lvm2 and mdadm hooks still add their modules after a migration.
export const DEBIAN12_INITRAMFS = { MODULES: "dep", COMPRESS: "lz4" };

// -cpu max shows svm/vmx to the guest; loading KVM inside it only costs boot time.
export const DEBIAN12_BLACKLIST = ["kvm", "kvm_amd", "kvm_intel"];
