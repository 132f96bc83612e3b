/**
 * layout.json: one machine's storage layout, normalised from a capture
 * (`vmlab layout capture`), a subset of its files written by hand, or a
 * ReaR disklayout.conf. Sizes are bytes. Devices are named without /dev:
 * a disk "sda", a partition "sda1", an array "md0", a logical volume
 * "VG/LV". The README's "Layouts" section documents every field.
 */

export type PartitionTableKind = "msdos" | "gpt" | "none";
export type RaidLevel = "raid0" | "raid1" | "raid5" | "raid10";
export type FsType = "ext2" | "ext3" | "ext4" | "xfs" | "btrfs" | "vfat" | "swap";
export const FS_TYPES: FsType[] = ["ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "swap"];
export const RAID_LEVELS: RaidLevel[] = ["raid0", "raid1", "raid5", "raid10"];

export interface LayoutPartition {
  /** "sda1". */
  name: string;
  number: number;
  /** First sector (512-byte sectors), as the table has it. */
  start: number;
  size: number;
  /** msdos: the type byte in hex ("83", "fd"); gpt: the type GUID in capitals. */
  type: string;
  /** What the type means ("Linux RAID", "EFI System"). */
  typeName: string;
  /** msdos: logical partitions live in an extended one. */
  kind?: "primary" | "extended" | "logical";
  bootable?: boolean;
  /** GPT partition name. */
  partName?: string;
}

export interface LayoutDisk {
  name: string;
  /** The disk's serial, as lsblk reports it (in the lab: the lab's disk id). */
  serial?: string;
  size: number;
  table: PartitionTableKind;
  partitions: LayoutPartition[];
  /** The first sector carries GRUB's boot code (BIOS machines). */
  grub?: boolean;
}

export interface LayoutRaid {
  name: string;
  level: RaidLevel;
  /** Member devices, in their role order where known. */
  devices: string[];
  metadata?: string;
  uuid?: string;
  /** The array's name in its superblock ("host:0"). */
  mdName?: string;
  size?: number;
}

export interface LayoutLv {
  name: string;
  size: number;
  /** linear, striped, thin-pool or thin. */
  type: "linear" | "striped" | "thin-pool" | "thin";
  /** For a thin volume: its pool. */
  pool?: string;
  uuid?: string;
}

export interface LayoutVg {
  name: string;
  uuid?: string;
  extentSize: number;
  size?: number;
  pvs: { device: string; size: number; uuid?: string }[];
  lvs: LayoutLv[];
}

export interface FstabEntry {
  /** The first field as written: "UUID=...", "LABEL=root", "/dev/mapper/vg-root". */
  spec: string;
  /** How it names the filesystem. */
  by: "uuid" | "label" | "partuuid" | "partlabel" | "device";
  mount: string;
  type: string;
  options: string;
  dump: number;
  pass: number;
}

export interface LayoutFilesystem {
  /** The device it is on: "sda1", "md0", "vg/root". */
  device: string;
  type: FsType;
  uuid?: string;
  label?: string;
  /** Where fstab mounts it ("/", "/boot"); none for swap or an unmounted filesystem. */
  mount?: string;
  /** Its fstab line, where it has one. */
  fstab?: FstabEntry;
  /** Where it was mounted when captured (lsblk), swap as [SWAP]. */
  mounted?: string[];
}

export interface Layout {
  version: 1;
  source: { kind: "capture" | "disklayout.conf"; host?: string; files: string[] };
  firmware: "bios" | "uefi";
  disks: LayoutDisk[];
  raids: LayoutRaid[];
  vgs: LayoutVg[];
  filesystems: LayoutFilesystem[];
  /** EFI boot entries as efibootmgr -v printed them, where the machine boots through UEFI. */
  efiEntries?: string[];
  /** What the import had to assume because the source does not say (ReaR records no bootloader placement or fstab style). */
  assumed?: string[];
  /** Set when sizes were scaled for the lab: the budget, and each device's size before. */
  scaled?: { diskBudget: number; before: Record<string, number> };
}
