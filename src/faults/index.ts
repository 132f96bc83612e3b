/**
 * The fault library: the slips and accidents the runbooks warn about, each a
 * function that injects it into a running machine and returns a record of
 * what it did. Scenarios call these from their steps; `vmlab run --fault` and
 * `vmlab sweep` inject them at a step boundary of any scenario (see
 * src/faults/inject.ts).
 */
import { randomUUID } from "node:crypto";
import { UsageError, VmlabError } from "../errors.ts";
import type { DiskAttachment } from "../vm/qemu-args.ts";
import { sh } from "../vm/guest-sh.ts";
import type { Machine } from "../vm/machine.ts";
import { sshRun } from "../vm/ssh.ts";

export const FAULTS = {
  "dropped-ssh": "the network link goes down (QMP set_link): no new SSH session can be opened; the serial console still works",
  "busy-root": "a process in a login session holds a file on / open for writing, so `mount -o remount,ro /` is refused",
  "missing-initrd": "/boot/initrd.img-* is removed: the next boot has no initramfs to find the root",
  "power-cut": "QEMU quits at once (QMP quit): what the guest had not written is lost; the next start goes through firmware",
  "pulled-disk": "a disk is unplugged from the running machine (QMP device_del) and stays out at the next start",
  "io-errors": "a range of a device-mapper device (an LV) is remapped to the `error` target: reads and writes there fail",
  "stale-fstab": "an fstab entry (/boot by default) names a UUID that no filesystem has",
  "forgotten-mdadm-conf": "the ARRAY and DEVICE lines are removed from /etc/mdadm/mdadm.conf and the initramfs is rebuilt",
} as const;

export type FaultName = keyof typeof FAULTS;

export function isFaultName(s: string): s is FaultName {
  return Object.hasOwn(FAULTS, s);
}

/** Resolve a fault name from the command line; an unknown one is a usage error (exit 2). */
export function faultByName(s: string): FaultName {
  if (isFaultName(s)) return s;
  throw new UsageError(`unknown fault "${s}"`, { hint: `the faults are: ${Object.keys(FAULTS).join(", ")}` });
}

/** What the report says about one injected fault. */
export interface FaultRecord {
  fault: FaultName;
  /** How it was injected: the QMP command or guest command. */
  how: string;
  /** Milliseconds since the start of the run. */
  atMs: number;
  /** The step before which (or in which) it was injected. */
  step?: string;
  details: Record<string, unknown>;
  /** What the lab saw afterwards: classified boots, refused commands, kernel messages. */
  observed: string[];
}

export type Injection = Omit<FaultRecord, "atMs" | "step" | "observed">;

/** dropped SSH: the machine's network link goes down. The serial console is unaffected. */
export async function dropLink(vm: Machine): Promise<Injection> {
  await vm.block();
  return { fault: "dropped-ssh", how: "QMP set_link net0 up=false", details: {} };
}

/** Bring the link back up (the end of a dropped-SSH window). */
export async function restoreLink(vm: Machine): Promise<void> {
  await vm.unblock();
}

/** True when a new SSH session can be opened and run a command within `timeoutMs`. */
export async function sshAnswers(vm: Machine, timeoutMs = 15_000): Promise<boolean> {
  const r = await sshRun(vm.ssh, "true", { timeoutMs, connectTimeoutS: Math.max(1, Math.floor(timeoutMs / 1000) - 1) });
  return r.exitCode === 0;
}

/**
 * busy root: a process in an SSH login session (the kind of process a
 * procedure does not stop) appends to a file on `/` every few seconds and
 * keeps it open. Returns its pid in `details.pid`.
 */
export async function holdRootBusy(vm: Machine, file = "/root/busy-root.log"): Promise<Injection> {
  const pid = (
    await vm.succeed(
      sh`setsid sh -c ${`exec 3>>${file}; while :; do date >&3; sleep 5; done`} </dev/null >/dev/null 2>&1 & echo $!`,
    )
  ).trim();
  // The file is open for writing once the shell has run its exec.
  await vm.succeed(`for i in $(seq 50); do ls -l /proc/${pid}/fd/3 >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1`);
  return { fault: "busy-root", how: `a process in the login session keeps ${file} open for writing`, details: { pid: Number(pid), file } };
}

/** Let go of `/` again: end the busy-root process. */
export async function releaseBusyRoot(vm: Machine, inj: Injection): Promise<void> {
  await vm.run(`kill ${Number(inj.details.pid)} 2>/dev/null; true`);
}

/** missing initrd: remove every /boot/initrd.img-*. */
export async function removeInitrd(vm: Machine): Promise<Injection> {
  const removed = (await vm.succeed("ls /boot/initrd.img-* && rm -f /boot/initrd.img-* && sync")).trim().split("\n");
  return { fault: "missing-initrd", how: "rm /boot/initrd.img-*", details: { removed } };
}

/** power cut: QEMU quits at once, or the machine is reset without a shutdown. */
export async function cutPower(vm: Machine, how: "quit" | "reset" = "quit"): Promise<Injection> {
  if (how === "quit") await vm.powerCut();
  else await vm.qmpExecute("system_reset");
  return { fault: "power-cut", how: how === "quit" ? "QMP quit" : "QMP system_reset", details: {} };
}

/** pulled disk: unplug one of the lab's disks (by id: sda, sdb, ...); it stays out at the next start. */
export async function pullDisk(vm: Machine, id: string): Promise<Injection & { disk: DiskAttachment }> {
  const disk = await vm.pullDisk(id);
  return { fault: "pulled-disk", how: `QMP device_del dev-${id}`, details: { disk: id }, disk };
}

/**
 * I/O errors: remap sectors [start, start+count) of a device-mapper device
 * (an LV, "sys-root") to the `error` target, keeping the rest of its linear
 * mapping. The LV's table is reloaded in place, as `dmsetup` would.
 */
export async function failSectors(vm: Machine, dmName: string, start: number, count: number): Promise<Injection> {
  const table = (await vm.succeed(sh`dmsetup table ${dmName}`)).trim();
  const next = errorZoneTable(table, start, count);
  await vm.succeed(sh`dmsetup suspend ${dmName} && printf '%s\\n' ${next} | dmsetup reload ${dmName} && dmsetup resume ${dmName}`);
  return { fault: "io-errors", how: `dmsetup reload ${dmName}: sectors ${start}-${start + count - 1} -> error`, details: { device: dmName, start, count, before: table, after: next } };
}

/**
 * A device-mapper table with sectors [start, start+count) remapped to
 * `error`: each `linear` segment is cut around the zone. Pure, for tests.
 */
export function errorZoneTable(table: string, start: number, count: number): string[] {
  const end = start + count;
  const out: string[] = [];
  const lines = table.split("\n").map((l) => l.trim()).filter(Boolean);
  let size = 0;
  for (const line of lines) {
    const [s0, len0, target, dev, off0] = line.split(/\s+/);
    const s = Number(s0);
    const len = Number(len0);
    if (target !== "linear" || !dev || !Number.isInteger(s) || !Number.isInteger(len) || !Number.isInteger(Number(off0))) {
      throw new VmlabError(`cannot put an error zone into this device-mapper table line: ${line}`, { hint: "use a linear LV (lvcreate without --type)" });
    }
    const off = Number(off0);
    size = Math.max(size, s + len);
    const a = Math.max(s, start);
    const b = Math.min(s + len, end);
    if (a >= b) {
      out.push(line.replace(/\s+/g, " "));
      continue;
    }
    if (a > s) out.push(`${s} ${a - s} linear ${dev} ${off}`);
    out.push(`${a} ${b - a} error`);
    if (b < s + len) out.push(`${b} ${s + len - b} linear ${dev} ${off + (b - s)}`);
  }
  if (count <= 0 || start < 0 || end > size) {
    throw new VmlabError(`error zone ${start}+${count} does not fit a device of ${size} sectors`);
  }
  return out;
}

/** stale fstab: the entry for `mountpoint` names a UUID no filesystem has. */
export async function staleFstab(vm: Machine, mountpoint = "/boot"): Promise<Injection> {
  const uuid = randomUUID();
  const before = (await vm.succeed(`awk '$2 == ${JSON.stringify(mountpoint)}' /etc/fstab`)).trim();
  if (!before) throw new VmlabError(`/etc/fstab has no entry for ${mountpoint}`, { output: (await vm.run("cat /etc/fstab")).stdout });
  await vm.succeed(`awk -v u=UUID=${uuid} '$2 == ${JSON.stringify(mountpoint)} {$1 = u} {print}' /etc/fstab > /etc/fstab.new && mv /etc/fstab.new /etc/fstab && sync`);
  const after = (await vm.succeed(`awk '$2 == ${JSON.stringify(mountpoint)}' /etc/fstab`)).trim();
  return { fault: "stale-fstab", how: `fstab entry for ${mountpoint} rewritten to a UUID no filesystem has`, details: { mountpoint, before, after } };
}

/**
 * forgotten mdadm.conf: drop the DEVICE and ARRAY lines, as an admin who never
 * wrote them would have it, and rebuild the initramfs from that.
 */
export async function forgetMdadmConf(vm: Machine): Promise<Injection> {
  const before = (await vm.run("grep -E '^(DEVICE|ARRAY)' /etc/mdadm/mdadm.conf")).stdout.trim();
  await vm.succeed("sed -i -E '/^(DEVICE|ARRAY)/d' /etc/mdadm/mdadm.conf && update-initramfs -u -k all", { timeoutMs: 20 * 60_000 });
  return { fault: "forgotten-mdadm-conf", how: "sed -i '/^(DEVICE|ARRAY)/d' /etc/mdadm/mdadm.conf; update-initramfs -u", details: { removed: before.split("\n").filter(Boolean) } };
}

/** The guest's recent kernel messages about I/O: the evidence a failed step is reported with. */
export async function kernelIoMessages(vm: Machine, lines = 12): Promise<string[]> {
  const r = await vm.run(`dmesg | grep -Ei 'I/O error|critical (target|medium) error|blk_update_request|Buffer I/O|EXT[234]-fs error' | tail -n ${lines}`);
  return r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
}
