/**
 * A machine's disks: those plugged in (on QEMU's command line at the next
 * start, or hot-plugged while it runs), and those pulled out or left out,
 * which can go back in their old SCSI slot.
 */
import { resolve } from "node:path";
import { VmlabError } from "../errors.ts";
import type { DiskAttachment } from "./qemu-args.ts";
import type { QmpEvent } from "./qmp.ts";

/** What the bay needs of the running machine: QMP. */
export interface DiskBayQmp {
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T>;
  waitForEvent(event: string, timeoutMs: number, match: (e: QmpEvent) => boolean): Promise<void>;
}

export class DiskBay {
  /** Plugged in, each pinned to its SCSI target so that pulling one leaves the others where they were. */
  private plugged: DiskAttachment[];
  /** Pulled out or left out, by id. */
  private readonly outside = new Map<string, DiskAttachment>();
  /** Block nodes of hot-plugged disks by disk id, removed again when the disk is pulled. */
  private readonly hotNodes = new Map<string, string>();
  private hotplugs = 0;

  constructor(
    private readonly machine: string,
    disks: DiskAttachment[],
    /** UEFI: each disk plugged in gets a bootindex, as on the command line (src/vm/qemu-args.ts), or OVMF never sees it. */
    private readonly bootIndex = false,
  ) {
    this.plugged = disks.map((d, i) => ({ ...d, scsiId: d.scsiId ?? i }));
  }

  /** The disks plugged in now, in SCSI target order. */
  get disks(): readonly DiskAttachment[] {
    return this.plugged;
  }

  /** Ids of the disks plugged in while the machine ran (not on its command line). */
  get hotPlugged(): string[] {
    return [...this.hotNodes.keys()];
  }

  /** Ids of the disks out now. */
  get out(): string[] {
    return [...this.outside.keys()];
  }

  private find(id: string): DiskAttachment {
    const disk = this.plugged.find((d) => d.id === id);
    if (!disk) throw new VmlabError(`machine ${this.machine} has no disk "${id}"`, { hint: `its disks: ${this.plugged.map((d) => d.id).join(", ") || "none"}` });
    return disk;
  }

  /** Pull a disk out of the running machine (QMP device_del); the guest sees it vanish, later starts leave it out. */
  async pull(qmp: DiskBayQmp, id: string, timeoutMs: number): Promise<DiskAttachment> {
    const disk = this.find(id);
    const device = `dev-${id}`;
    await qmp.execute("device_del", { id: device });
    try {
      await qmp.waitForEvent("DEVICE_DELETED", timeoutMs, (e) => (e.data as { device?: string } | undefined)?.device === device);
    } catch (err) {
      throw new VmlabError(`disk ${id} was not released by the guest`, { where: `machine ${this.machine}`, cause: err, hint: "the guest must acknowledge a SCSI hot-unplug; is it still running?" });
    }
    // A disk from the command line goes with its device; a hot-plugged one leaves its block node behind.
    const node = this.hotNodes.get(id);
    if (node) {
      await qmp.execute("blockdev-del", { "node-name": node });
      this.hotNodes.delete(id);
    }
    this.plugged = this.plugged.filter((d) => d !== disk);
    this.outside.set(id, disk);
    return disk;
  }

  /** Leave a disk out of the next start, as if it were unplugged while the machine was off. */
  leaveOut(id: string): void {
    const disk = this.find(id);
    this.plugged = this.plugged.filter((d) => d !== disk);
    this.outside.set(id, disk);
  }

  /** Take a pulled or left-out disk back: the caller plugs it into a running machine, or it goes in at the next start. */
  takeBack(id: string): DiskAttachment {
    const disk = this.outside.get(id);
    if (!disk) throw new VmlabError(`machine ${this.machine} has no disk "${id}" out`, { hint: `out now: ${this.out.join(", ") || "none"}` });
    this.outside.delete(id);
    return disk;
  }

  /** Put a disk back for the next start, in its old SCSI slot. */
  insertCold(disk: DiskAttachment): void {
    this.plugged = [...this.plugged, disk].sort((a, b) => (a.scsiId ?? 0) - (b.scsiId ?? 0));
  }

  /**
   * Plug a disk into the running machine (QMP blockdev-add + device_add) at
   * the next free SCSI target; later starts keep it. The guest names it
   * (sdX) in the order it finds it, as with a real hot-plugged disk.
   */
  async plugHot(qmp: DiskBayQmp, disk: DiskAttachment): Promise<void> {
    if (this.plugged.some((d) => d.id === disk.id)) throw new VmlabError(`machine ${this.machine} already has a disk "${disk.id}"`);
    const node = `${disk.id}-hot${++this.hotplugs}`;
    await qmp.execute("blockdev-add", {
      driver: disk.format,
      "node-name": node,
      "read-only": disk.readOnly ?? false,
      file: { driver: "file", filename: resolve(disk.path) },
    });
    this.hotNodes.set(disk.id, node);
    const used = new Set(this.plugged.map((d) => d.scsiId));
    let target = 0;
    while (used.has(target)) target++;
    await qmp.execute("device_add", {
      driver: "scsi-hd",
      drive: node,
      id: `dev-${disk.id}`,
      bus: "scsi0.0",
      channel: 0,
      "scsi-id": target,
      lun: 0,
      serial: disk.id,
      ...(this.bootIndex ? { bootindex: target + 1 } : {}),
    });
    this.plugged = [...this.plugged, { ...disk, scsiId: target }];
  }

  /** Replace a plugged disk's attachment (a checkpoint swaps each disk for its new overlay). */
  replace(id: string, disk: DiskAttachment): void {
    this.plugged = this.plugged.map((d) => (d.id === id ? disk : d));
  }
}
