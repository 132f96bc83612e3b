/**
 * Scaling a layout into the lab's disk budget. Every disk larger than the
 * budget is made that size: partitions of 1 GiB or less (/boot, an ESP, a
 * BIOS boot partition) keep their real size, the others share what is left
 * in proportion, on 1 MiB boundaries. Arrays follow their members, volume
 * groups their physical volumes, and logical volumes their group (in
 * proportion, on extent boundaries, so the group keeps its share of free
 * space for snapshots). No filesystem goes below what it needs: 1.75 GiB
 * for / (the base system and the data set), 512 MiB for /var and /usr,
 * 256 MiB for /boot, 300 MiB for any xfs (mkfs.xfs's least). A layout that
 * cannot fit that way is refused. Pure.
 */
import { UsageError } from "../errors.ts";
import { humanBytes } from "../disk/partitions.ts";
import type { Layout, LayoutDisk, LayoutFilesystem, LayoutRaid, LayoutVg } from "./types.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Partitions up to this size keep their real size. */
export const KEEP_AT_MOST = GiB;
const ALIGN = 2048;

/** What a filesystem needs at least, by where it is mounted and what it is. */
export function minimumFor(fs: LayoutFilesystem | undefined, layout: Layout): number {
  if (!fs) return 16 * MiB;
  if (fs.type === "swap") return 16 * MiB;
  const separate = (m: string) => layout.filesystems.some((f) => f.mount === m);
  let need = 64 * MiB;
  if (fs.mount === "/") need = separate("/usr") ? 768 * MiB : separate("/var") ? 1536 * MiB : 1792 * MiB;
  else if (fs.mount === "/usr") need = 1280 * MiB;
  else if (fs.mount === "/var") need = 512 * MiB;
  else if (fs.mount === "/boot") need = 256 * MiB;
  else if (fs.mount === "/boot/efi") need = 32 * MiB;
  if (fs.type === "xfs") need = Math.max(need, 300 * MiB);
  if (fs.type === "btrfs") need = Math.max(need, 256 * MiB);
  return need;
}

export interface ScaleRow {
  source: string;
  lab: string;
  before: number;
  after: number;
  note: string;
}

/** The lab's disk names for a layout's disks, in order: sda, sdb, ... */
export function labDiskNames(layout: Layout): Map<string, string> {
  return new Map(layout.disks.map((d, i) => [d.name, `sd${String.fromCharCode(97 + i)}`]));
}

/** A layout device's name in the lab ("nvme0n1p2" -> "sda2"); arrays and volumes keep theirs. */
export function labName(layout: Layout, device: string): string {
  const names = labDiskNames(layout);
  for (const d of layout.disks) {
    if (device === d.name) return names.get(d.name)!;
    const p = d.partitions.find((x) => x.name === device);
    if (p) return `${names.get(d.name)!}${p.number}`;
  }
  return device;
}

/** How much a device must hold, at least, for what is built on it. */
function needOf(layout: Layout, device: string, seen = new Set<string>()): number {
  if (seen.has(device)) return 0;
  seen.add(device);
  const fs = layout.filesystems.find((f) => f.device === device);
  if (fs) return minimumFor(fs, layout);
  const raid = layout.raids.find((r) => r.devices.includes(device));
  if (raid) {
    const n = raid.devices.length;
    const inner = needOf(layout, raid.name, seen);
    const per = raid.level === "raid1" ? inner : raid.level === "raid0" ? inner / n : raid.level === "raid5" ? inner / (n - 1) : (inner * 2) / n;
    return Math.ceil(per) + 8 * MiB;
  }
  const vg = layout.vgs.find((v) => v.pvs.some((p) => p.device === device));
  if (vg) {
    const lvs = vg.lvs.filter((lv) => lv.type !== "thin").reduce((s, lv) => s + lvNeed(layout, vg, lv.name), 0);
    return Math.ceil(lvs / vg.pvs.length) + 4 * MiB;
  }
  return MiB;
}

function lvNeed(layout: Layout, vg: LayoutVg, lv: string): number {
  const l = vg.lvs.find((x) => x.name === lv)!;
  if (l.type === "thin-pool") return vg.lvs.filter((x) => x.pool === lv).reduce((s, x) => s + needOf(layout, `${vg.name}/${x.name}`), 0) + 64 * MiB;
  return needOf(layout, `${vg.name}/${lv}`);
}

/**
 * Share `total` among items: fixed ones keep their size, the others scale in
 * proportion; one that would fall below its need gets its need, and the
 * rest share what is left. Returns undefined when the needs alone do not fit.
 */
export function share(items: { size: number; need: number; fixed: boolean }[], total: number, unit: number): number[] | undefined {
  const out = items.map((i) => (i.fixed ? i.size : -1));
  for (;;) {
    const fixedSum = out.reduce((s, v) => s + (v >= 0 ? v : 0), 0);
    const free = items.filter((_, k) => out[k]! < 0);
    if (!free.length) return fixedSum <= total ? out : undefined;
    const room = total - fixedSum;
    const sum = free.reduce((s, i) => s + i.size, 0);
    const f = Math.min(1, room / sum);
    let raised = false;
    items.forEach((it, k) => {
      if (out[k]! >= 0) return;
      if (Math.floor((it.size * f) / unit) * unit < it.need) {
        out[k] = Math.ceil(it.need / unit) * unit;
        raised = true;
      }
    });
    if (raised) continue;
    items.forEach((it, k) => {
      if (out[k]! < 0) out[k] = Math.max(unit, Math.floor((it.size * f) / unit) * unit);
    });
    return out.reduce((s, v) => s + v, 0) <= total ? out : undefined;
  }
}

/** The layout scaled so that no disk is larger than `budget` bytes, and a table of what changed. */
export function scaleLayout(layout: Layout, budget: number, where = "the layout"): { layout: Layout; rows: ScaleRow[] } {
  const l: Layout = JSON.parse(JSON.stringify(layout)) as Layout;
  const before: Record<string, number> = {};
  const notes = new Map<string, string>();
  for (const d of l.disks) scaleDisk(l, d, budget, before, notes, where);
  for (const r of l.raids) raidSize(l, r, before);
  for (const v of l.vgs) scaleVg(l, v, before, notes, where);
  if (Object.keys(before).length) l.scaled = { diskBudget: budget, before };
  const rows: ScaleRow[] = [];
  const row = (name: string, size: number | undefined) => {
    const b = before[name] ?? size ?? 0;
    const a = size ?? 0;
    rows.push({ source: name, lab: labName(l, name), before: b, after: a, note: notes.get(name) ?? (a === b ? "unchanged" : "scaled") });
  };
  for (const d of l.disks) {
    row(d.name, d.size);
    for (const p of d.partitions) row(p.name, p.size);
  }
  for (const r of l.raids) row(r.name, r.size);
  for (const v of l.vgs) {
    row(`VG ${v.name}`, v.size);
    for (const lv of v.lvs) row(`${v.name}/${lv.name}`, lv.size);
  }
  return { layout: l, rows };
}

function scaleDisk(l: Layout, d: LayoutDisk, budget: number, before: Record<string, number>, notes: Map<string, string>, where: string): void {
  if (d.size <= budget) return;
  before[d.name] = d.size;
  const sectors = Math.floor(budget / 512);
  const first = Math.min(...d.partitions.map((p) => p.start), ALIGN);
  // Room for the partitions: after the first one's start, before the GPT backup (or the disk's end).
  const room = (sectors - first - (d.table === "gpt" ? 2048 : 0)) * 512;
  const outer = d.partitions.filter((p) => p.kind !== "logical");
  const logical = d.partitions.filter((p) => p.kind === "logical");
  // An extended partition is sized by its logical ones; each logical one costs a 1 MiB gap for its EBR.
  const items = [...outer.filter((p) => p.kind !== "extended"), ...logical].map((p) => ({
    size: p.size,
    need: needOf(l, p.name),
    fixed: p.size <= KEEP_AT_MOST,
  }));
  const gaps = logical.length * MiB + (outer.length - 1) * MiB;
  const sizes = share(items, room - gaps, MiB);
  if (!sizes) {
    const needs = items.reduce((s, i) => s + (i.fixed ? i.size : i.need), 0);
    throw new UsageError(`${d.name} cannot be scaled into the lab's disk budget of ${humanBytes(budget)}: what is on it needs ${humanBytes(needs + gaps)}`, {
      where,
      hint: "give a larger --scale-to, like 32G",
    });
  }
  const parts = [...outer.filter((p) => p.kind !== "extended"), ...logical];
  parts.forEach((p, k) => {
    before[p.name] = p.size;
    if (p.size <= KEEP_AT_MOST) notes.set(p.name, "kept: small");
    else if (sizes[k]! === Math.ceil(items[k]!.need / MiB) * MiB && sizes[k]! > (p.size * (room - gaps)) / items.reduce((s, i) => s + i.size, 0)) notes.set(p.name, `raised to what it holds needs`);
    p.size = sizes[k]!;
  });
  // New starts: the same order, each on the next 1 MiB boundary.
  let cursor = first;
  for (const p of [...d.partitions].sort((a, b) => a.start - b.start)) {
    if (p.kind === "logical") continue;
    p.start = cursor === first ? first : Math.ceil(cursor / ALIGN) * ALIGN;
    if (p.kind === "extended") {
      before[p.name] = p.size;
      let inner = p.start;
      for (const q of logical.sort((a, b) => a.number - b.number)) {
        // Each logical partition leaves room for its EBR before it.
        q.start = Math.ceil((inner + 1) / ALIGN) * ALIGN;
        inner = q.start + q.size / 512;
      }
      p.size = (inner - p.start) * 512;
    }
    cursor = p.start + p.size / 512;
  }
  d.size = Math.floor(budget / MiB) * MiB;
}

function raidSize(l: Layout, r: LayoutRaid, before: Record<string, number>): void {
  const partSize = (m: string) => l.disks.flatMap((d) => d.partitions).find((p) => p.name === m)?.size ?? l.disks.find((d) => d.name === m)?.size;
  if (!r.devices.some((m) => m in before && before[m] !== partSize(m)) && r.size !== undefined) return;
  const sizes = r.devices.map((m) => l.disks.flatMap((d) => d.partitions).find((p) => p.name === m)?.size ?? l.disks.find((d) => d.name === m)?.size ?? 0);
  if (!sizes.length || sizes.some((s) => !s)) return;
  const min = Math.min(...sizes) - 4 * MiB; // metadata 1.2 keeps its superblock and bitmap at the start
  const n = sizes.length;
  const size = r.level === "raid1" ? min : r.level === "raid0" ? min * n : r.level === "raid5" ? min * (n - 1) : (min * n) / 2;
  if (r.size !== undefined) before[r.name] = r.size;
  r.size = Math.floor(size / MiB) * MiB;
}

function scaleVg(l: Layout, v: LayoutVg, before: Record<string, number>, notes: Map<string, string>, where: string): void {
  const devSize = (dev: string) =>
    l.raids.find((r) => r.name === dev)?.size ?? l.disks.flatMap((d) => d.partitions).find((p) => p.name === dev)?.size ?? l.disks.find((d) => d.name === dev)?.size ?? 0;
  const pvSizes = v.pvs.map((p) => devSize(p.device));
  const pvChanged = v.pvs.some((p, k) => Math.abs(p.size - pvSizes[k]!) > 64 * MiB);
  if (!pvChanged) return;
  v.pvs.forEach((p, k) => (p.size = pvSizes[k]!));
  const newSize = Math.floor(pvSizes.reduce((s, x) => s + x - 1 * MiB, 0) / v.extentSize) * v.extentSize;
  const oldSize = v.size ?? v.lvs.reduce((s, x) => s + (x.type === "thin" ? 0 : x.size), 0);
  before[`VG ${v.name}`] = oldSize;
  v.size = newSize;
  const used = v.lvs.filter((x) => x.type !== "thin");
  // Each volume keeps its share of the group, so the group keeps its share of free space.
  const sizes = share(
    used.map((x) => ({ size: x.size, need: lvNeed(l, v, x.name), fixed: x.size <= KEEP_AT_MOST })),
    Math.floor((newSize * Math.min(1, used.reduce((s, x) => s + x.size, 0) / oldSize)) / v.extentSize) * v.extentSize,
    v.extentSize,
  ) ?? share(used.map((x) => ({ size: x.size, need: lvNeed(l, v, x.name), fixed: x.size <= KEEP_AT_MOST })), newSize, v.extentSize);
  if (!sizes) {
    throw new UsageError(`volume group ${v.name} cannot be scaled into the lab's disk budget: its volumes need more than its ${humanBytes(newSize)}`, { where, hint: "give a larger --scale-to, like 32G" });
  }
  used.forEach((x, k) => {
    before[`${v.name}/${x.name}`] = x.size;
    if (x.size <= KEEP_AT_MOST) notes.set(`${v.name}/${x.name}`, "kept: small");
    x.size = sizes[k]!;
  });
  // Thin volumes keep their virtual size: it is a promise, not space.
}
