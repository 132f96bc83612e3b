/**
 * Checkpoints and forks of a running machine.
 *
 * A checkpoint freezes what a machine is at one moment, and the machine goes
 * on: with the guest paused, each disk's current overlay becomes a read-only
 * backing file under a new overlay (QMP `blockdev-snapshot-sync`), and the
 * running state is written to a file (QMP `migrate`); then the guest runs
 * again on its new overlays. The frozen overlays and the state are the
 * checkpoint.
 *
 * A fork resumes a checkpoint in a new QEMU (`-incoming`) on private overlays
 * over the frozen ones, with its own sockets, SSH port and vmgenid, and its
 * clock set from the host. No fork can change the checkpoint or another fork:
 * every write lands in the fork's own overlay.
 *
 * A checkpoint is whole only once its `checkpoint.json` exists: the state is
 * written to a temporary name and renamed, and the description comes last.
 */
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createOverlay } from "../disk/qemu-img.ts";
import { VmlabError } from "../errors.ts";
import type { BootOutcome } from "../boot/classify.ts";
import { Machine, type BootRecord, type MachineOptions } from "./machine.ts";
import { GUEST_SMP, type DiskAttachment } from "./qemu-args.ts";

export interface Checkpoint {
  /** Directory of the checkpoint's files. */
  dir: string;
  /** QEMU's migration stream of the paused guest. */
  state: string;
  /** The frozen disks, in the machine's order, with their ids and SCSI targets. */
  disks: DiskAttachment[];
  memoryMiB: number;
  smp: number;
  network: boolean;
  /** A UEFI machine's NVRAM as it was: each fork starts from a copy of it. */
  efiVars?: string;
  /** The machine it was taken of, and when. */
  machine: string;
  takenAt: string;
  /** What the machine was doing: a step boundary, in words. */
  label?: string;
  /** How long the guest was paused for it. */
  pausedMs: number;
}

/**
 * Take a checkpoint of a running machine into `dir` (created; must not hold
 * one already). The machine is paused for the length of the state write and
 * then goes on, writing to new overlays next to its old ones.
 */
export async function takeCheckpoint(vm: Machine, dir: string, label?: string): Promise<Checkpoint> {
  if (!vm.running) throw new VmlabError(`cannot checkpoint machine ${vm.opts.name}: it is not running`);
  if (vm.hotPlugged.length) {
    throw new VmlabError(`cannot checkpoint machine ${vm.opts.name}: disks ${vm.hotPlugged.join(", ")} were plugged in while it ran`, {
      hint: "a fork starts from the command line's disks; checkpoint before plugging disks in, or after a power cycle",
    });
  }
  if (existsSync(join(dir, "checkpoint.json"))) throw new VmlabError(`${dir} already holds a checkpoint`);
  await mkdir(dir, { recursive: true });
  const generation = await nextGeneration(vm);
  const t0 = Date.now();
  await vm.qmpExecute("stop");
  const frozen: DiskAttachment[] = [];
  try {
    for (const d of [...vm.disks]) {
      if (d.format !== "qcow2") throw new VmlabError(`cannot checkpoint disk ${d.id} of ${vm.opts.name}: it is ${d.format}, and only a qcow2 overlay can be frozen under a new one`);
      // The disk's current file becomes the frozen layer; new writes go to a new overlay beside it.
      const next = d.path.replace(/(\.g\d+)?\.qcow2$/, `.g${generation}.qcow2`);
      await vm.qmpExecute("blockdev-snapshot-sync", { device: d.id, "snapshot-file": next, format: "qcow2" });
      frozen.push({ ...d, readOnly: true });
      vm.replaceDisk(d.id, { ...d, path: next });
    }
    const partial = join(dir, "state.bin.partial");
    await vm.writeState(partial);
    await rename(partial, join(dir, "state.bin"));
    // The NVRAM goes with the state, copied while the guest is still paused.
    if (vm.efiVars) await copyFile(vm.efiVars, join(dir, "efivars.fd"));
  } finally {
    // The machine goes on whatever happened to the checkpoint.
    if (vm.running) await vm.qmpExecute("cont");
  }
  const pausedMs = Date.now() - t0;
  // The frozen layers are the checkpoint's: nothing may write them again.
  for (const d of frozen) await chmod(d.path, 0o444);
  const cp: Checkpoint = {
    dir,
    state: join(dir, "state.bin"),
    disks: frozen,
    memoryMiB: vm.opts.memoryMiB ?? 1024,
    smp: vm.opts.smp ?? GUEST_SMP,
    network: vm.opts.network !== false,
    ...(vm.efiVars ? { efiVars: join(dir, "efivars.fd") } : {}),
    machine: vm.opts.name,
    takenAt: new Date().toISOString(),
    label,
    pausedMs,
  };
  await writeFile(join(dir, "checkpoint.json"), JSON.stringify(cp, null, 2) + "\n");
  return cp;
}

/** A checkpoint from its directory; one without `checkpoint.json` was never finished and is refused. */
/** Remove a checkpoint: its state and its frozen disks (once no fork needs them). */
export async function removeCheckpoint(cp: Checkpoint): Promise<void> {
  await rm(cp.dir, { recursive: true, force: true });
  for (const d of cp.disks) await rm(d.path, { force: true });
}

export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  const file = join(dir, "checkpoint.json");
  if (!existsSync(file)) throw new VmlabError(`${dir} holds no finished checkpoint`, { hint: "a checkpoint interrupted while it was taken has no checkpoint.json; take it again" });
  return JSON.parse(await readFile(file, "utf8")) as Checkpoint;
}

/** The generation number for a machine's next overlays: one more than any in its disk names. */
async function nextGeneration(vm: Machine): Promise<number> {
  let g = 0;
  for (const d of vm.disks) {
    const m = /\.g(\d+)\.qcow2$/.exec(d.path);
    if (m) g = Math.max(g, Number(m[1]));
  }
  return g + 1;
}

export interface ForkOptions extends Omit<MachineOptions, "disks" | "incomingState" | "memoryMiB" | "smp" | "network" | "uefi"> {}

/**
 * A new machine resumed from a checkpoint, on private overlays in
 * `o.runDir`, running and answering SSH (or the resume's failure recorded in
 * its boot). The overlays are named `<name>-<disk id>.qcow2`.
 */
export async function fork(cp: Checkpoint, o: ForkOptions, resume: { ended?: BootOutcome } = {}): Promise<{ vm: Machine; boot: BootRecord }> {
  if (!existsSync(cp.state)) throw new VmlabError(`checkpoint ${cp.dir} has no state file`, { hint: "take the checkpoint again" });
  await mkdir(o.runDir, { recursive: true });
  const disks: DiskAttachment[] = [];
  for (const d of cp.disks) {
    const path = join(o.runDir, `${o.name}-${d.id}.qcow2`);
    await rm(path, { force: true });
    await createOverlay(path, d.path, { backingFormat: "qcow2" });
    disks.push({ path, format: "qcow2", id: d.id, scsiId: d.scsiId });
  }
  const vm = new Machine({ ...o, disks, incomingState: cp.state, memoryMiB: cp.memoryMiB, smp: cp.smp, network: cp.network, ...(cp.efiVars ? { uefi: { varsFrom: cp.efiVars } } : {}) });
  const boot = await vm.resume({ reason: "fork", ...resume });
  return { vm, boot };
}
