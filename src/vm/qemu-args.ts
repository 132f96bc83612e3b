/**
 * Building the qemu-system-x86_64 command line. Pure: unit-tested without QEMU.
 */
import { availableParallelism } from "node:os";
import { shellQuote } from "../util/proc.ts";

/**
 * vCPUs per guest. Under TCG each vCPU is a host thread, and the lab runs
 * two guests at a time: on a host with fewer than 4 cores, two 2-vCPU
 * guests are four threads on two cores, and MTTCG's cross-vCPU
 * synchronisation stalls whenever one of them is off its core. Measured on
 * a 2-core TCG host (`npm run bench:smp`): two guests at once boot in 33 s
 * with 1 vCPU against 54 s with 2, and rebuild their initramfs in 41 s
 * against 81 s; one guest alone is slower with 1 (37 s against 27 s, 51 s
 * against 40 s). Four cores or more: 2 vCPUs. VMLAB_SMP overrides it.
 */
export const GUEST_SMP = Number(process.env.VMLAB_SMP) > 0 ? Math.floor(Number(process.env.VMLAB_SMP)) : availableParallelism() < 4 ? 1 : 2;

export interface DiskAttachment {
  /** Image file on the host. */
  path: string;
  format: "qcow2" | "raw";
  /** QEMU id of the drive and its scsi-hd device; also the guest-visible serial. */
  id: string;
  readOnly?: boolean;
  /** SCSI target; defaults to the disk's place in the list. Kept when another disk is pulled. */
  scsiId?: number;
}

export interface QemuConfig {
  name: string;
  accel: { accel: "kvm" | "tcg"; cpu: string };
  memoryMiB: number;
  smp: number;
  /** Disks in guest order: the first is /dev/sda, the second /dev/sdb, ... */
  disks: DiskAttachment[];
  serialSocket: string;
  serialLog: string;
  qmpSocket: string;
  /** Host port forwarded to the guest's port 22; omit for no network. */
  sshPort?: number;
  /** Direct kernel boot, for provisioning and rescue only. */
  kernel?: { path: string; initrd?: string; append: string };
  /** Exit QEMU instead of resetting when the guest reboots. */
  noReboot?: boolean;
  /** Resume a saved running state from this file instead of booting (`-incoming exec:`). */
  incomingFile?: string;
  /**
   * UEFI instead of SeaBIOS: OVMF's code as a read-only pflash (shared by
   * every machine), and the machine's own variable store (its NVRAM: boot
   * entries) as a writable one.
   */
  uefi?: { code: string; vars: string };
}

export function buildQemuArgs(c: QemuConfig): string[] {
  const args = [
    "-name", `vmlab-${c.name}`,
    "-machine", "pc,graphics=off",
    "-accel", c.accel.accel,
    "-cpu", c.accel.cpu,
    "-m", String(c.memoryMiB),
    "-smp", String(c.smp),
    "-nodefaults",
    "-no-user-config",
    "-display", "none",
    "-chardev", `socket,id=ser0,path=${c.serialSocket},server=on,wait=off,logfile=${c.serialLog},logappend=on`,
    "-serial", "chardev:ser0",
    "-qmp", `unix:${c.qmpSocket},server=on,wait=off`,
    // A new generation ID at every start: a guest resumed from a saved state
    // reseeds its random number generator instead of repeating the saver's.
    "-device", "vmgenid,guid=auto",
  ];
  if (c.uefi) {
    args.push(
      "-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${c.uefi.code}`,
      "-drive", `if=pflash,format=raw,unit=1,file=${c.uefi.vars}`,
    );
  }
  if (c.disks.length > 0) {
    args.push("-device", "virtio-scsi-pci,id=scsi0");
    c.disks.forEach((d, i) => {
      const ro = d.readOnly ? ",read-only=on" : "";
      // OVMF connects only the disks QEMU lists in its boot order: without a
      // bootindex it never finds a disk beyond SCSI target 0 (measured: its
      // shell maps one disk of two, and a boot entry on the second fails with
      // Not Found). Every UEFI disk gets one: its target + 1, since a direct
      // kernel boot (-kernel) takes bootindex 0 for itself. OVMF then rebuilds
      // its boot order from QEMU's disk order at each boot.
      const bootindex = c.uefi ? `,bootindex=${(d.scsiId ?? i) + 1}` : "";
      args.push(
        "-drive", `file=${d.path},format=${d.format},if=none,id=${d.id},cache=writeback,discard=unmap${ro}`,
        "-device", `scsi-hd,drive=${d.id},id=dev-${d.id},bus=scsi0.0,channel=0,scsi-id=${d.scsiId ?? i},lun=0,serial=${d.id}${bootindex}`,
      );
    });
  }
  if (c.sshPort !== undefined) {
    args.push(
      "-netdev", `user,id=net0,hostfwd=tcp:127.0.0.1:${c.sshPort}-:22`,
      // romfile= skips the iPXE option ROM: the lab never network-boots. Under
      // UEFI the card is an e1000, for which OVMF has no driver of its own
      // (it has one for virtio-net): otherwise OVMF offers PXE and HTTP boot
      // over IPv4 and IPv6 and tries each before it gives up on a disk,
      // minutes under TCG. Linux drives either card.
      "-device", `${c.uefi ? "e1000" : "virtio-net-pci"},netdev=net0,romfile=`,
    );
  }
  if (c.kernel) {
    args.push("-kernel", c.kernel.path, "-append", c.kernel.append);
    if (c.kernel.initrd) args.push("-initrd", c.kernel.initrd);
  }
  if (c.noReboot) args.push("-no-reboot");
  // QEMU runs an exec: URI with /bin/sh -c (dash on Debian): POSIX quoting.
  if (c.incomingFile) args.push("-incoming", `exec:cat ${shellQuote(c.incomingFile)}`);
  return args;
}
