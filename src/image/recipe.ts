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
  /** msdos partition type: 83 Linux, 8e LVM, 82 swap, fd RAID. */
  type: "83" | "8e" | "82" | "fd";
  bootable?: boolean;
  /** A filesystem made on the host with `mkfs -d`, filled from the tree. */
  fs?: { type: "ext2" | "ext3" | "ext4"; label: string; mount: string };
  /** An LVM physical volume, created inside the guest at provisioning time. */
  lvm?: { vg: string };
}

export interface ImageRecipe {
  name: string;
  description: string;
  suite: string;
  /** Debian packages on top of mmdebstrap's minbase variant. */
  packages: string[];
  hostname: string;
  disk: { size: string; label: "msdos"; partitions: PartitionSpec[] };
  /** Kernel command line shared by GRUB and provisioning boots. */
  kernelCmdline: string;
  /** systemd units masked in the image because a lab guest never needs them. */
  maskUnits: string[];
  /** Settings for /etc/initramfs-tools/initramfs.conf, e.g. MODULES and COMPRESS. */
  initramfs: Record<string, string>;
  /** Kernel modules the guest never loads (e.g. nested KVM under an emulated CPU). */
  blacklistModules: string[];
}

export function recipe(r: ImageRecipe): ImageRecipe {
  return r;
}
