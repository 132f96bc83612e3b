/**
 * An image recipe: which Debian packages, which disk layout, which first-boot
 * settings. Recipes live in images/ and are plain data, so that their hash
 * keys the image cache.
 */
export interface PartitionSpec {
  /** Partition role, used in logs and by `vmlab inspect`. */
  name: string;
  /** Size like "200M"; omit for "the rest of the disk". */
  size?: string;
  /**
   * Partition type, in msdos codes: 83 Linux, 8e LVM, 82 swap, fd RAID, ef
   * EFI system. On a GPT disk each becomes its GPT type (Linux filesystem,
   * Linux LVM, Linux swap, Linux RAID, EFI System).
   */
  type: "83" | "8e" | "82" | "fd" | "ef";
  bootable?: boolean;
  /**
   * A filesystem: ext made on the host with `mkfs -d`, filled from the tree;
   * vfat (an ESP) made empty in the provisioning boot, where grub-install fills it.
   */
  fs?: { type: "ext2" | "ext3" | "ext4" | "vfat"; label: string; mount: string };
  /** An LVM physical volume, created inside the guest at provisioning time. */
  lvm?: { vg: string };
  /** A swap area made on the host with `mkswap -L`; fstab activates it by LABEL. */
  swap?: { label: string };
}

/**
 * One disk of an image. "msdos": a partition table with up to four primary
 * partitions. "gpt": a GUID partition table (up to 128 partitions, its backup
 * in the disk's last 33 sectors). "none": no partition table; the single entry of `partitions`
 * is a filesystem on the whole disk (like a LUN formatted directly), and the
 * first sector stays empty, so the firmware never takes the disk for a boot disk.
 */
export interface DiskSpec {
  size: string;
  label: "msdos" | "gpt" | "none";
  partitions: PartitionSpec[];
}

export interface ImageRecipe {
  name: string;
  description: string;
  suite: string;
  /** Debian packages on top of mmdebstrap's minbase variant. */
  packages: string[];
  hostname: string;
  /**
   * The firmware the image boots through: "bios" (SeaBIOS, GRUB in the MBR;
   * the default) or "uefi" (OVMF, GRUB on the ESP mounted at /boot/efi with a
   * boot entry in the image's own NVRAM, which ships with it as efivars.fd).
   */
  firmware?: "bios" | "uefi";
  /** The first disk (sda): the one the firmware boots and GRUB is installed on. */
  disk: DiskSpec;
  /** The image's further disks (sdb, sdc, ...), in order. Blank extra disks of a scenario come after them. */
  moreDisks?: DiskSpec[];
  /** Kernel command line shared by GRUB and provisioning boots. */
  kernelCmdline: string;
  /** systemd units masked in the image because a lab guest never needs them. */
  maskUnits: string[];
  /** Settings for /etc/initramfs-tools/initramfs.conf, e.g. MODULES and COMPRESS. */
  initramfs: Record<string, string>;
  /** Kernel modules the guest never loads (e.g. nested KVM under an emulated CPU). */
  blacklistModules: string[];
  /**
   * systemd's DefaultDeviceTimeoutSec= (system.conf.d): how long a boot
   * waits for a device named in fstab before emergency mode. Debian's is 90s.
   */
  deviceTimeout?: string;
  /**
   * Built from a captured production layout (src/layout/): its disks,
   * arrays, volumes and filesystems are made by the install script in the
   * rescue system instead of from `disk`/`moreDisks`' partitions, which
   * then only give the disks' sizes.
   */
  layout?: import("../layout/types.ts").Layout;
  /**
   * Keep the kernel and an initramfs next to the disk image (vmlinuz,
   * initrd.img), for machines that boot it by direct kernel boot: the rescue
   * system boots this way with another machine's disks attached.
   */
  directBoot?: {
    append: string;
    /**
     * Never booted through firmware: the image gets no bootloader and no
     * provisioning boot, and keeps the initramfs its kernel package made.
     * It cannot hold LVM volumes, which only a provisioning boot creates.
     */
    only?: boolean;
  };
}

export function recipe(r: ImageRecipe): ImageRecipe {
  return r;
}

/** All of a recipe's disks in guest order: sda, sdb, ... */
export function recipeDisks(r: ImageRecipe): DiskSpec[] {
  return [r.disk, ...(r.moreDisks ?? [])];
}

/** Guest device name of a disk (0 = sda) or of one of its partitions (0 = the whole disk). */
export function guestDevice(diskIndex: number, partition = 0): string {
  return `/dev/sd${String.fromCharCode(97 + diskIndex)}${partition || ""}`;
}
