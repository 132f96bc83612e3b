/**
 * LVM snapshots as an upgrade safety net: a fake disk from a loop file, a
 * volume group on it, a snapshot before a risky change, and the two ways back
 * (copy the files back from the mounted snapshot, or merge the snapshot into
 * its origin with `lvconvert --merge`). Both ways refuse an invalid snapshot:
 * a snapshot that overflowed holds a partial copy, and rolling back from it
 * would silently destroy data.
 */
import { VmlabError } from "../errors.ts";
import type { Machine } from "../vm/machine.ts";

/** One row of `lvs`. */
export interface LvRow {
  name: string;
  attr: string;
  origin: string;
  /** How full a snapshot's copy-on-write space is, in percent; null for other volumes. */
  snapPercent: number | null;
  sizeBytes: number;
}

/** The `lv_attr` string, decoded as far as snapshots are concerned (see lvs(8), "lv_attr bits"). */
export interface LvAttr {
  /** First character: s snapshot, S merging snapshot, o origin, O origin with a merging snapshot, - plain. */
  volumeType: string;
  /** Fifth character: a active, I invalid snapshot, S invalid suspended snapshot, m merge failed, - inactive, ... */
  state: string;
  snapshot: boolean;
  origin: boolean;
  active: boolean;
  /** The snapshot overflowed (or failed) and was dropped by the kernel: its contents are unusable. */
  invalidSnapshot: boolean;
  mergeFailed: boolean;
  open: boolean;
}

export function parseLvAttr(attr: string): LvAttr {
  if (!/^[\w-]{10}$/.test(attr)) throw new VmlabError(`"${attr}" is not an lv_attr string`, { hint: "lv_attr has 10 characters, e.g. swi-a-s---" });
  const type = attr[0]!;
  const state = attr[4]!;
  return {
    volumeType: type,
    state,
    snapshot: type === "s" || type === "S",
    origin: type === "o" || type === "O",
    active: state === "a",
    invalidSnapshot: state === "I" || state === "S",
    mergeFailed: state === "m" || state === "M",
    open: attr[5] === "o",
  };
}

/** Parse `lvs --reportformat json -o lv_name,lv_attr,origin,snap_percent,lv_size --units b --nosuffix`. */
export function parseLvsJson(text: string): LvRow[] {
  let doc: { report?: { lv?: Record<string, string>[] }[] };
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new VmlabError("lvs did not print JSON", { output: text.slice(0, 2000), cause: err, hint: "lvm2 2.02.158 or later is needed for --reportformat json" });
  }
  return (doc.report ?? []).flatMap((r) => r.lv ?? []).map((lv) => ({
    name: lv.lv_name ?? "",
    attr: lv.lv_attr ?? "",
    origin: lv.origin ?? "",
    snapPercent: lv.snap_percent ? Number(lv.snap_percent) : null,
    sizeBytes: Number(lv.lv_size ?? 0),
  }));
}

const LVS_JSON = "lvs --reportformat json -o lv_name,lv_attr,origin,snap_percent,lv_size --units b --nosuffix";

export async function lvs(vm: Machine, vg: string): Promise<LvRow[]> {
  const out = await vm.succeed(`${LVS_JSON} ${vg}`, {
    hint: `does VG ${vg} exist? \`vgs\` lists them`,
  });
  return parseLvsJson(out);
}

/** The plain `lvs` table for a report, as an admin would read it. */
export async function lvsTable(vm: Machine, vg: string): Promise<string> {
  return (await vm.succeed(`lvs -o lv_name,lv_attr,lv_size,origin,snap_percent,lv_snapshot_invalid ${vg}`)).trimEnd();
}

export interface LoopVg {
  /** The backing file of the fake disk. */
  file: string;
  /** Its loop device, e.g. /dev/loop0. */
  loop: string;
  vg: string;
}

/** A fake disk: a sparse file, a loop device over it, a PV and a VG on that. */
export async function createLoopVg(vm: Machine, o: { file: string; size: string; vg: string }): Promise<LoopVg> {
  const loop = (
    await vm.succeed(`mkdir -p "$(dirname ${o.file})" && truncate -s ${o.size} ${o.file} && losetup --find --show ${o.file}`, {
      hint: "losetup needs a free loop device and the loop module",
    })
  ).trim();
  await vm.succeed(`pvcreate -y ${loop} && vgcreate ${o.vg} ${loop}`, { hint: `is a VG called ${o.vg} already there? \`vgs\`` });
  return { file: o.file, loop, vg: o.vg };
}

/** An LV with a fresh ext4, mounted. */
export async function createExt4Lv(vm: Machine, o: { vg: string; lv: string; size: string; mountpoint: string }): Promise<void> {
  await vm.succeed(`lvcreate -y -n ${o.lv} -L ${o.size} ${o.vg}`, { hint: `is there ${o.size} free in VG ${o.vg}? \`vgs\`` });
  await vm.succeed(`mkfs.ext4 -q /dev/${o.vg}/${o.lv} && mkdir -p ${o.mountpoint} && mount /dev/${o.vg}/${o.lv} ${o.mountpoint}`);
}

/** The configured autoextend threshold: 100 means a snapshot is never grown automatically. */
export async function snapshotAutoextendThreshold(vm: Machine): Promise<number> {
  const out = await vm.succeed("lvmconfig --type full activation/snapshot_autoextend_threshold");
  const m = /=\s*(\d+)/.exec(out);
  if (!m) throw new VmlabError("could not read activation/snapshot_autoextend_threshold", { output: out });
  return Number(m[1]);
}

/**
 * `lvcreate --snapshot`. Snapshots are created unmonitored (`--monitor n`):
 * dmeventd never grows them, whatever `snapshot_autoextend_threshold` says, so
 * the size given here is the size the snapshot has until it is removed.
 */
export async function takeSnapshot(vm: Machine, o: { vg: string; origin: string; name: string; size: string }): Promise<LvRow> {
  await vm.succeed(`sync && lvcreate -y --monitor n --snapshot -n ${o.name} -L ${o.size} /dev/${o.vg}/${o.origin}`, {
    hint: `is there ${o.size} free in VG ${o.vg}? is there already an LV ${o.vg}/${o.name}?`,
  });
  return snapshotRow(vm, o.vg, o.name);
}

async function snapshotRow(vm: Machine, vg: string, name: string): Promise<LvRow> {
  const row = (await lvs(vm, vg)).find((r) => r.name === name);
  if (!row) throw new VmlabError(`snapshot ${vg}/${name} does not exist`, { hint: `\`lvs ${vg}\` lists the volumes; was it removed or merged?` });
  return row;
}

export interface SnapshotState {
  name: string;
  attr: string;
  percent: number | null;
  invalid: boolean;
  /** The kernel's view: `dmsetup status` of the snapshot device ("Invalid" once dropped). */
  dmStatus: string;
}

/** How a snapshot stands now, from LVM and from the device mapper, after flushing pending writes. */
export async function snapshotState(vm: Machine, vg: string, name: string): Promise<SnapshotState> {
  const marker = "--- dmsetup status ---";
  const out = await vm.succeed(`sync && ${LVS_JSON} ${vg} && echo '${marker}' && { dmsetup status ${dmName(vg, name)} || true; }`, {
    hint: `does VG ${vg} exist? \`vgs\` lists them`,
  });
  const [json = "", dm = ""] = out.split(marker);
  const row = parseLvsJson(json).find((r) => r.name === name);
  if (!row) throw new VmlabError(`snapshot ${vg}/${name} does not exist`, { hint: `\`lvs ${vg}\` lists the volumes; was it removed or merged?` });
  const dmStatus = dm.trim();
  return { name, attr: row.attr, percent: row.snapPercent, invalid: parseLvAttr(row.attr).invalidSnapshot || /\bInvalid\b/.test(dmStatus), dmStatus };
}

/** Refuse to go on with a snapshot that can no longer be rolled back to. */
export async function expectValidSnapshot(vm: Machine, vg: string, name: string): Promise<SnapshotState> {
  const s = await snapshotState(vm, vg, name);
  if (s.invalid) {
    throw new VmlabError(`snapshot ${vg}/${name} is invalid (lv_attr ${s.attr}, ${s.percent ?? "?"}% used): rollback is impossible`, {
      output: `${await lvsTable(vm, vg)}\ndmsetup status: ${s.dmStatus}`,
      hint: "the changes outgrew the snapshot's space; the origin holds the changed data and the snapshot holds nothing usable. Restore from a backup, and next time size the snapshot for the whole change (or lvextend it while it is still valid)",
    });
  }
  return s;
}

/**
 * The runbook's `abort`: mount the snapshot read-only and copy it back over
 * the origin with rsync, deleting what the upgrade added. `-HAX` keeps hard
 * links, ACLs and extended attributes, which `-a` alone drops; `--checksum`
 * compares contents, so a file rewritten at the same size within the same
 * second is not skipped by rsync's size-and-time check.
 */
export async function rollbackByCopy(vm: Machine, o: { vg: string; snapshot: string; mountpoint: string; snapshotMount: string }): Promise<string> {
  await expectValidSnapshot(vm, o.vg, o.snapshot);
  await vm.succeed(`mkdir -p ${o.snapshotMount} && mount -o ro /dev/${o.vg}/${o.snapshot} ${o.snapshotMount}`, {
    hint: "a snapshot of a mounted ext4 mounts read-only; `dmesg` says why it did not",
  });
  try {
    return await vm.succeed(`rsync -aHAX --checksum --del --itemize-changes ${o.snapshotMount}/ ${o.mountpoint}/ && sync`, {
      hint: `the copy back is incomplete; ${o.snapshotMount} still holds the snapshot`,
    });
  } finally {
    await vm.run(`umount ${o.snapshotMount}`);
  }
}

export interface MergeResult {
  output: string;
  /** The origin was still in use, so the merge waited for it to be re-activated. */
  deferred: boolean;
}

/**
 * The modern `abort`: `lvconvert --merge` writes the snapshot's blocks back
 * into the origin and removes the snapshot. The origin must not be in use:
 * it is unmounted first; if something still held it open the merge is
 * deferred to the next activation, so the origin is deactivated and activated
 * again and the merge is waited for.
 */
export async function rollbackByMerge(vm: Machine, o: { vg: string; snapshot: string; origin: string; mountpoint: string }): Promise<MergeResult> {
  await expectValidSnapshot(vm, o.vg, o.snapshot);
  await vm.succeed(`umount ${o.mountpoint}`, { hint: `something still uses ${o.mountpoint}: \`fuser -vm ${o.mountpoint}\`` });
  const output = await vm.succeed(`lvconvert --merge ${o.vg}/${o.snapshot}`, { timeoutMs: 10 * 60_000 });
  let deferred = false;
  if ((await lvs(vm, o.vg)).some((r) => r.name === o.snapshot)) {
    deferred = true;
    await vm.succeed(`lvchange -an ${o.vg}/${o.origin} && lvchange -ay ${o.vg}/${o.origin}`, {
      hint: `the origin ${o.vg}/${o.origin} is still open; stop what uses it, then deactivate and activate it`,
    });
    await vm.succeed(`for i in $(seq 1 120); do lvs ${o.vg}/${o.snapshot} >/dev/null 2>&1 || exit 0; sleep 1; done; exit 1`, {
      timeoutMs: 3 * 60_000,
      hint: `the merge of ${o.vg}/${o.snapshot} did not finish in 2 minutes; \`lvs -a ${o.vg}\` shows its progress`,
    });
  }
  await vm.succeed(`mount /dev/${o.vg}/${o.origin} ${o.mountpoint}`);
  return { output: output.trim(), deferred };
}

/** The runbook's `remove_snapshot`: keep the change, drop the safety net. */
export async function removeSnapshot(vm: Machine, vg: string, name: string): Promise<void> {
  await vm.succeed(`lvremove -y ${vg}/${name}`, { hint: `is ${vg}/${name} still mounted? \`findmnt /dev/${vg}/${name}\`` });
}

/** Unmount, deactivate the VG, detach the loop device and delete the backing file. */
export async function teardownLoopVg(vm: Machine, d: LoopVg, mountpoints: string[]): Promise<void> {
  for (const m of mountpoints) await vm.succeed(`! mountpoint -q ${m} || umount ${m}`, { hint: `something still uses ${m}: \`fuser -vm ${m}\`` });
  await vm.succeed(`vgchange -an ${d.vg}`);
  await vm.succeed(`vgremove -y ${d.vg} && pvremove -y ${d.loop}`);
  await vm.succeed(`losetup -d ${d.loop} && rm -f ${d.file}`);
}

/** The device-mapper name of a VG's LV (`<vg>-<lv>`, dashes in names doubled), or with no LV the prefix of all of the VG's. */
export function dmName(vg: string, lv?: string): string {
  const esc = (x: string) => x.replace(/-/g, "--");
  return lv === undefined ? `${esc(vg)}-` : `${esc(vg)}-${esc(lv)}`;
}

export interface Leftovers {
  /** `losetup -a`, one line per loop device still attached. */
  loops: string[];
  /** Device-mapper devices that should be gone and are not. */
  dm: string[];
  /** The full `dmsetup ls`, for the report. */
  dmsetupLs: string;
}

/**
 * What is still attached after a procedure: every loop device, and the
 * device-mapper devices whose names start with one of `dmPrefixes` (see
 * dmName: a whole VG, or one LV and its -cow/-real companions).
 */
export async function leftovers(vm: Machine, dmPrefixes: string[]): Promise<Leftovers> {
  // udev may still be working on the last removals.
  await vm.run("udevadm settle --timeout=10");
  const loops = (await vm.succeed("losetup -a")).split("\n").filter((l) => l.trim());
  const dmsetupLs = (await vm.succeed("dmsetup ls")).trim();
  const dm = dmsetupLs
    .split("\n")
    .map((l) => l.split(/\s+/)[0] ?? "")
    .filter((n) => dmPrefixes.some((p) => n.startsWith(p)));
  return { loops, dm, dmsetupLs };
}

export async function expectNothingLeft(vm: Machine, dmPrefixes: string[]): Promise<Leftovers> {
  const l = await leftovers(vm, dmPrefixes);
  if (l.loops.length || l.dm.length) {
    throw new VmlabError("loop or device-mapper devices were left behind", {
      output: `losetup -a:\n${l.loops.join("\n") || "(none)"}\ndmsetup ls:\n${l.dmsetupLs}`,
      hint: "unmount, deactivate the VGs (vgchange -an) and remove snapshots before detaching the loop devices (losetup -d)",
    });
  }
  return l;
}
