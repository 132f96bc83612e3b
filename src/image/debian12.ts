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
  // GRUB's EFI modules and the NVRAM tool, for the UEFI image and for
  // rehearsals that install GRUB on an ESP; gdisk for GPT repairs (sgdisk -e).
  "grub-efi-amd64-bin",
  "efibootmgr",
  "gdisk",
  "openssh-server",
  "lvm2",
  "dmsetup",
  "mdadm",
  "btrfs-progs",
  "e2fsprogs",
  // The filesystems a captured layout may have besides ext and btrfs (src/layout/).
  "xfsprogs",
  "dosfstools",
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

// norandmaps: no address-space randomisation in lab guests. Under TCG, QEMU
// keys its translated code by virtual address, so a libc mapped somewhere new
// in every process is translated anew at every exec. Measured on a 2-core TCG
// host: 100 execs of /bin/true 5.5 s -> 1.6 s, `update-initramfs -u` 128 s ->
// 55 s, direct boot to sshd 31 s -> 21 s. No rehearsed procedure depends on
// where a process's libraries are mapped.
export const DEBIAN12_KERNEL_CMDLINE = "console=ttyS0,115200 net.ifnames=0 norandmaps";

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

// A device named in fstab that never comes ends the boot in emergency mode
// after 45 s instead of Debian's 90 s: the same failure, the same console
// lines ("Timed out waiting for device ..."), half the wait for a trainee
// and for the suite. Above mdadm's last-resort timer (30 s), so a degraded
// array is still started before anything waiting for it gives up.
export const DEBIAN12_DEVICE_TIMEOUT = "45s";

// An emulated CPU may show svm/vmx to the guest; loading KVM inside it only costs boot time.
export const DEBIAN12_BLACKLIST = ["kvm", "kvm_amd", "kvm_intel"];
