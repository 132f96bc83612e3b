/**
 * `vmlab layout import`: a capture directory (or its .tar.gz), any subset of
 * its files written by hand, or a ReaR disklayout.conf, normalised into one
 * Layout. What the lab cannot rebuild (LUKS, multipath, ZFS, bcache, an
 * iSCSI disk, an unknown partition type or filesystem) is refused here,
 * naming the device and the feature, before anything is written.
 */
import { existsSync, statSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { dir as tmpDir } from "tmp-promise";
import { DOS_TYPES, GPT_TYPES } from "../disk/partitions.ts";
import { UsageError } from "../errors.ts";
import { run } from "../util/proc.ts";
import {
  deviceName,
  disklayoutOptions,
  flattenLsblk,
  fstabValue,
  lvmBytes,
  parseDisklayout,
  parseFstab,
  parseLsblk,
  parseLvmReport,
  parseMdadmScan,
  parseMdstat,
  parseSfdiskDump,
  type LsblkDevice,
} from "./parse.ts";
import { FS_TYPES, RAID_LEVELS, type FsType, type FstabEntry, type Layout, type LayoutDisk, type LayoutFilesystem, type LayoutLv, type LayoutRaid, type LayoutVg } from "./types.ts";

/** The msdos types and GPT type GUIDs the lab can rebuild. */
const DOS_SUPPORTED = new Set(["83", "82", "8e", "fd", "ef", "5", "f", "85", "b", "c", "e", "6"]);
const GPT_SUPPORTED = new Set(Object.keys(GPT_TYPES));

function refuse(device: string, feature: string, where: string): UsageError {
  return new UsageError(`${device} uses ${feature}, which vmlab cannot rebuild in a lab machine`, {
    where,
    hint: `a layout with ${feature} cannot be rehearsed yet; leave that disk out with --disks, or rehearse on a layout without it`,
  });
}

/** Reads a capture directory, a .tar.gz of one, or a disklayout.conf. */
export async function importLayout(source: string, o: { disks?: string[] } = {}): Promise<Layout> {
  if (!existsSync(source)) throw new UsageError(`${source}: no such file or directory`, { hint: "give the directory `vmlab layout capture` wrote, its .tar.gz, or a ReaR disklayout.conf" });
  if (statSync(source).isDirectory()) return fromCaptureDir(source, o);
  if (/\.(tar\.gz|tgz)$/.test(source)) {
    const t = await tmpDir({ unsafeCleanup: true });
    try {
      await run("tar", ["-xzf", source, "-C", t.path], { hint: "the file should be the .tar.gz `vmlab layout capture --tar` wrote" }).catch((e: unknown) => {
        throw new UsageError(`${source}: not a readable .tar.gz`, { where: source, output: (e as Error).message, hint: "copy it again from the machine; `tar -tzf` should list it" });
      });
      const entries = await readdir(t.path, { withFileTypes: true });
      const only = entries.length === 1 && entries[0]!.isDirectory() ? join(t.path, entries[0]!.name) : t.path;
      const layout = await fromCaptureDir(only, o);
      layout.source.files = layout.source.files.map((f) => `${basename(source)}:${f}`);
      return layout;
    } finally {
      await t.cleanup();
    }
  }
  const text = await readFile(source, "utf8");
  if (/^\s*#?\s*(disk|part|lvmvol|fs)\s+\//m.test(text)) return fromDisklayout(text, source, o);
  throw new UsageError(`${source}: neither a capture directory, a .tar.gz of one, nor a ReaR disklayout.conf`, {
    hint: "run the script `vmlab layout capture` prints on the machine, and import the directory it writes",
  });
}

async function readIf(dir: string, f: string): Promise<string | undefined> {
  const p = join(dir, f);
  return existsSync(p) ? readFile(p, "utf8") : undefined;
}

/** What lsblk says makes a device unrebuildable. */
function checkLsblk(devs: LsblkDevice[], file: string): void {
  for (const d of flattenLsblk(devs)) {
    if (d.type === "crypt" || d.fstype === "crypto_LUKS") throw refuse(`/dev/${d.name}`, "LUKS encryption", file);
    if (d.type === "mpath" || d.fstype === "mpath_member") throw refuse(`/dev/${d.name}`, "multipath", file);
    if (d.fstype === "zfs_member") throw refuse(`/dev/${d.name}`, "ZFS", file);
    if (d.fstype === "bcache" || /^bcache\d/.test(d.name)) throw refuse(`/dev/${d.name}`, "bcache", file);
    if (d.type === "disk" && d.tran === "iscsi") throw refuse(`/dev/${d.name}`, "an iSCSI disk", file);
  }
}

function partitionType(table: "msdos" | "gpt", type: string, where: string, device: string): string {
  if (table === "msdos" ? DOS_SUPPORTED.has(type) : GPT_SUPPORTED.has(type)) return table === "msdos" ? DOS_TYPES[type] ?? type : GPT_TYPES[type]!;
  throw new UsageError(`${device}: partition type ${type} is not one vmlab knows how to rebuild`, {
    where,
    hint: `known ${table === "msdos" ? "msdos types: " + [...DOS_SUPPORTED].join(", ") : "GPT types: " + Object.values(GPT_TYPES).join(", ")}`,
  });
}

function fsType(t: string | undefined, device: string, where: string): FsType {
  if (t && (FS_TYPES as string[]).includes(t)) return t as FsType;
  throw new UsageError(`${device}: filesystem "${t ?? "unknown"}" is not one vmlab can make`, { where, hint: `the lab makes ${FS_TYPES.join(", ")}` });
}

async function fromCaptureDir(dir: string, o: { disks?: string[] }): Promise<Layout> {
  const files = (await readdir(dir)).filter((f) => !f.startsWith(".")).sort();
  const where = (f: string) => join(dir, f);
  const lsblkText = await readIf(dir, "lsblk.json");
  const lsblk = lsblkText !== undefined ? parseLsblk(lsblkText, where("lsblk.json")) : undefined;
  const flat = lsblk ? flattenLsblk(lsblk) : [];
  if (lsblk) checkLsblk(lsblk, where("lsblk.json"));
  const crypttab = ((await readIf(dir, "crypttab")) ?? "").split("\n").map((l) => l.replace(/#.*/, "").trim()).filter(Boolean);
  if (crypttab.length) throw refuse(crypttab[0]!.split(/\s+/)[0]!, "LUKS encryption (crypttab)", where("crypttab"));

  // Disks: sfdisk dumps, else lsblk's disks.
  const dumps = files.filter((f) => /^sfdisk-.+\.dump$/.test(f));
  const diskNames = new Set<string>([...dumps.map((f) => f.slice("sfdisk-".length, -".dump".length)), ...flat.filter((d) => d.type === "disk").map((d) => d.name)]);
  const disks: LayoutDisk[] = [];
  for (const name of [...diskNames].sort()) {
    if (/^(zram|loop|sr|fd)\d/.test(name)) continue;
    const lb = flat.find((d) => d.name === name);
    const dumpFile = `sfdisk-${name}.dump`;
    const dumpText = await readIf(dir, dumpFile);
    if (dumpText !== undefined && dumpText.trim()) {
      const dump = parseSfdiskDump(dumpText, where(dumpFile));
      const table = dump.label === "dos" ? "msdos" : "gpt";
      const lastEnd = Math.max(0, ...dump.partitions.map((p) => p.start + p.size));
      const size = lb?.size ?? (dump.lastLba ? (dump.lastLba + 34) * 512 : (lastEnd + 2048) * 512);
      disks.push({
        name,
        ...(lb?.serial ? { serial: lb.serial } : {}),
        size,
        table,
        partitions: dump.partitions.map((p) => ({
          name: deviceName(p.device),
          number: p.number,
          start: p.start,
          size: p.size * dump.sectorSize,
          type: p.type,
          typeName: partitionType(table, p.type, where(dumpFile), p.device),
          ...(table === "msdos" ? { kind: ["5", "f", "85"].includes(p.type) ? ("extended" as const) : p.number > 4 ? ("logical" as const) : ("primary" as const) } : {}),
          ...(p.bootable ? { bootable: true } : {}),
          ...(p.name ? { partName: p.name } : {}),
        })),
      });
    } else if (lb) {
      const parts = lb.children.filter((c) => c.type === "part");
      const table = lb.pttype === "gpt" ? "gpt" : lb.pttype === "dos" ? "msdos" : "none";
      if (table === "none" && parts.length) throw new UsageError(`${name}: partitions but no table type in lsblk.json`, { where: where("lsblk.json") });
      let next = 2048;
      disks.push({
        name,
        ...(lb.serial ? { serial: lb.serial } : {}),
        size: lb.size,
        table,
        partitions: parts.map((c) => {
          const number = Number(/(\d+)$/.exec(c.name)?.[1] ?? 0);
          const raw = (c.parttype ?? "").replace(/^0x/, "");
          const type = table === "gpt" ? raw.toUpperCase() : raw.toLowerCase();
          const start = next;
          next += Math.ceil(c.size / 512 / 2048) * 2048;
          return { name: c.name, number, start, size: c.size, type, typeName: partitionType(table as "msdos" | "gpt", type, where("lsblk.json"), `/dev/${c.name}`), ...(c.partlabel && table === "gpt" ? { partName: c.partlabel } : {}) };
        }),
      });
    }
  }
  if (!disks.length) throw new UsageError(`${dir}: no disk in the capture`, { where: dir, hint: "a capture needs lsblk.json or at least one sfdisk-DISK.dump" });

  // RAID: the scan, with mdstat for the members' order and lsblk for sizes.
  const scanText = (await readIf(dir, "mdadm-detail-scan.txt")) ?? (await readIf(dir, "mdadm.conf"));
  const scan = scanText ? parseMdadmScan(scanText, where(files.includes("mdadm-detail-scan.txt") ? "mdadm-detail-scan.txt" : "mdadm.conf")) : [];
  const mdstat = parseMdstat((await readIf(dir, "mdstat.txt")) ?? "");
  const raids: LayoutRaid[] = [];
  const mdNames = new Set([...scan.map((a) => deviceName(a.device)), ...mdstat.map((a) => a.name)]);
  for (const md of [...mdNames].sort()) {
    const s = scan.find((a) => deviceName(a.device) === md);
    const st = mdstat.find((a) => a.name === md);
    const level = s?.level ?? st?.level;
    if (!level || !(RAID_LEVELS as string[]).includes(level)) {
      throw new UsageError(`${md}: md level ${level ?? "unknown"} is not one vmlab rebuilds`, { where: where(s ? "mdadm-detail-scan.txt" : "mdstat.txt"), hint: `the lab makes ${RAID_LEVELS.join(", ")}` });
    }
    const devices = st?.members.length ? st.members.map((m) => m.device) : (s?.devices ?? []).map((d) => deviceName(d));
    if (!devices.length) throw new UsageError(`${md}: no member devices`, { where: where("mdadm-detail-scan.txt"), hint: "capture with `mdadm --detail --scan --verbose` (the devices= line) or include mdstat.txt" });
    const lb = flat.find((d) => d.name === md);
    raids.push({ name: md, level: level as LayoutRaid["level"], devices, metadata: s?.metadata, uuid: s?.uuid, mdName: s?.name, size: lb?.size ?? (st?.blocks ? st.blocks * 1024 : undefined) });
  }

  // LVM: the JSON reports.
  const vgs: LayoutVg[] = [];
  const pvsText = await readIf(dir, "pvs.json");
  const vgsText = await readIf(dir, "vgs.json");
  const lvsText = await readIf(dir, "lvs.json");
  if (vgsText !== undefined || lvsText !== undefined || pvsText !== undefined) {
    const pvRows = pvsText ? parseLvmReport(pvsText, "pv", where("pvs.json")) : [];
    const vgRows = vgsText ? parseLvmReport(vgsText, "vg", where("vgs.json")) : [];
    const lvRows = lvsText ? parseLvmReport(lvsText, "lv", where("lvs.json")) : [];
    const names = [...new Set([...vgRows.map((r) => r.vg_name!), ...pvRows.map((r) => r.vg_name!).filter(Boolean), ...lvRows.map((r) => r.vg_name!)])].filter(Boolean).sort();
    for (const name of names) {
      const vr = vgRows.find((r) => r.vg_name === name);
      const lvs: LayoutLv[] = [];
      for (const r of lvRows.filter((r) => r.vg_name === name)) {
        const lvName = r.lv_name ?? "";
        if (/^\[.*\]$/.test(lvName)) continue; // internal volumes of a pool or a mirror
        const seg = r.segtype ?? "linear";
        if (!["linear", "striped", "thin-pool", "thin"].includes(seg)) {
          throw new UsageError(`${name}/${lvName}: LVM segment type ${seg} is not one vmlab rebuilds`, { where: where("lvs.json"), hint: "the lab makes linear, striped, thin-pool and thin volumes" });
        }
        lvs.push({ name: lvName, size: lvmBytes(r.lv_size, where("lvs.json"), `${name}/${lvName} lv_size`), type: seg as LayoutLv["type"], ...(r.pool_lv ? { pool: r.pool_lv } : {}), ...(r.lv_uuid ? { uuid: r.lv_uuid } : {}) });
      }
      vgs.push({
        name,
        uuid: vr?.vg_uuid,
        extentSize: vr?.vg_extent_size ? lvmBytes(vr.vg_extent_size, where("vgs.json"), `${name} vg_extent_size`) : 4 * 1024 * 1024,
        size: vr?.vg_size ? lvmBytes(vr.vg_size, where("vgs.json"), `${name} vg_size`) : undefined,
        pvs: pvRows.filter((r) => r.vg_name === name).map((r) => ({ device: deviceName(r.pv_name ?? ""), size: lvmBytes(r.pv_size, where("pvs.json"), `${r.pv_name} pv_size`), ...(r.pv_uuid ? { uuid: r.pv_uuid } : {}) })),
        lvs,
      });
    }
  } else if (flat.some((d) => d.type === "lvm")) {
    throw new UsageError(`${dir}: lsblk shows LVM volumes but there is no pvs.json, vgs.json or lvs.json`, { where: dir, hint: "capture the LVM reports too (`vmlab layout capture` does)" });
  }
  const vgNames = vgs.map((v) => v.name);

  // Filesystems: lsblk's, with fstab's mount points; fstab alone names what lsblk does not show.
  const fstabText = await readIf(dir, "fstab");
  const fstab = fstabText ? parseFstab(fstabText, where("fstab")) : [];
  const filesystems = filesystemsOf(flat, fstab, vgNames, where("fstab"));

  const firmware = ((await readIf(dir, "firmware.txt")) ?? "").trim() === "uefi" ? "uefi" : filesystems.some((f) => f.mount === "/boot/efi") && !files.includes("firmware.txt") ? "uefi" : "bios";
  const boot = (await readIf(dir, "bootloader.txt")) ?? "";
  for (const m of boot.matchAll(/^mbr (\S+) grub$/gm)) {
    const d = disks.find((x) => x.name === m[1]);
    if (d) d.grub = true;
  }
  const efiEntries = boot.split("\n").filter((l) => l.startsWith("efi ")).map((l) => l.slice(4));
  const host = /^host (\S+)$/m.exec((await readIf(dir, "capture.txt")) ?? "")?.[1];
  const layout: Layout = { version: 1, source: { kind: "capture", ...(host ? { host } : {}), files }, firmware, disks, raids, vgs, filesystems, ...(efiEntries.length ? { efiEntries } : {}) };
  return selectDisks(checkLayout(layout, dir), o.disks, dir);
}

/** Filesystems from lsblk (type, UUID, label) joined with fstab (mount point, how it is named). */
function filesystemsOf(flat: LsblkDevice[], fstab: FstabEntry[], vgNames: string[], fstabFile: string): LayoutFilesystem[] {
  const out: LayoutFilesystem[] = [];
  const skip = new Set(["LVM2_member", "linux_raid_member", ""]);
  for (const d of flat) {
    if (!d.fstype || skip.has(d.fstype) || d.type === "disk" && d.children.length) continue;
    if (d.type === "rom" || d.type === "loop") continue;
    const device = d.type === "lvm" ? deviceName(`/dev/mapper/${d.name}`, vgNames) : d.name;
    const type = fsType(d.fstype, `/dev/${d.name}`, "lsblk.json");
    const entry = fstab.find((e) => matches(e, d, device, vgNames));
    // Without an fstab line (an unconfigured fstab), where lsblk saw it mounted.
    const mounted = d.mountpoints.find((m) => m.startsWith("/") && !/^\/(run|media|mnt|proc|sys|dev)(\/|$)/.test(m));
    const mount = entry ? (entry.type !== "swap" && entry.mount !== "none" ? entry.mount : undefined) : type !== "swap" ? mounted : undefined;
    out.push({ device, type, ...(d.uuid ? { uuid: d.uuid } : {}), ...(d.label ? { label: d.label } : {}), ...(mount ? { mount } : {}), ...(entry ? { fstab: entry } : {}), ...(d.mountpoints.length ? { mounted: d.mountpoints } : {}) });
  }
  for (const e of fstab) {
    if (out.some((f) => f.fstab === e)) continue;
    if (["proc", "sysfs", "tmpfs", "devpts", "nfs", "nfs4", "cifs", "none", "auto"].includes(e.type) || e.spec.startsWith("/dev/sr") || e.spec.startsWith("/dev/fd")) continue;
    if (e.by === "device" && !flat.length) {
      const device = deviceName(e.spec, vgNames);
      out.push({ device, type: fsType(e.type, e.spec, fstabFile), ...(e.type !== "swap" ? { mount: e.mount } : {}), fstab: e });
      continue;
    }
    if (/\bnoauto\b/.test(e.options) || /\bnofail\b/.test(e.options)) continue;
    throw new UsageError(`fstab names ${e.spec} (${e.mount}), and nothing in the capture is that filesystem`, {
      where: fstabFile,
      hint: flat.length ? "capture again on the machine itself: its fstab and lsblk.json must be of the same moment" : "add lsblk.json, which names each filesystem's UUID and label",
    });
  }
  return out;
}

function matches(e: FstabEntry, d: LsblkDevice, device: string, vgNames: string[]): boolean {
  const v = fstabValue(e);
  switch (e.by) {
    case "uuid": return v.toLowerCase() === (d.uuid ?? "").toLowerCase();
    case "label": return v === d.label;
    case "partlabel": return v === d.partlabel;
    case "partuuid": return false;
    case "device": return deviceName(e.spec, vgNames) === device || e.spec === d.path;
  }
}

/** Every reference points at something in the layout, and / is somewhere. */
export function checkLayout(l: Layout, where: string): Layout {
  const known = new Set<string>([...l.disks.map((d) => d.name), ...l.disks.flatMap((d) => d.partitions.map((p) => p.name)), ...l.raids.map((r) => r.name), ...l.vgs.flatMap((v) => v.lvs.map((lv) => `${v.name}/${lv.name}`))]);
  for (const r of l.raids) for (const m of r.devices) if (!known.has(m)) throw new UsageError(`${r.name}: member ${m} is not a disk or partition of the capture`, { where });
  for (const v of l.vgs) for (const pv of v.pvs) if (!known.has(pv.device)) throw new UsageError(`VG ${v.name}: physical volume ${pv.device} is not in the capture`, { where });
  for (const f of l.filesystems) if (!known.has(f.device)) throw new UsageError(`${f.fstab?.spec ?? f.device}: device ${f.device} is not in the capture`, { where });
  if (!l.filesystems.some((f) => f.mount === "/")) throw new UsageError(`${where}: no filesystem is mounted at / in its fstab or layout`, { where, hint: "the layout must say where / lives" });
  return l;
}

/** Keep only the named disks and what is built on them; anything spanning a left-out disk is an error. */
export function selectDisks(l: Layout, names: string[] | undefined, where: string): Layout {
  if (!names?.length) return l;
  for (const n of names) if (!l.disks.some((d) => d.name === n)) throw new UsageError(`--disks: ${n} is not a disk of the capture`, { where, hint: `its disks: ${l.disks.map((d) => d.name).join(", ")}` });
  const keep = new Set<string>();
  const disks = l.disks.filter((d) => names.includes(d.name));
  for (const d of disks) for (const p of [d.name, ...d.partitions.map((p) => p.name)]) keep.add(p);
  const raids = l.raids.filter((r) => {
    const inside = r.devices.filter((m) => keep.has(m));
    if (inside.length && inside.length !== r.devices.length) throw new UsageError(`${r.name} has members on ${r.devices.filter((m) => !keep.has(m)).join(", ")}, left out by --disks`, { where });
    return inside.length > 0;
  });
  for (const r of raids) keep.add(r.name);
  const vgs = l.vgs.filter((v) => {
    const inside = v.pvs.filter((p) => keep.has(p.device));
    if (inside.length && inside.length !== v.pvs.length) throw new UsageError(`VG ${v.name} has physical volumes on ${v.pvs.filter((p) => !keep.has(p.device)).map((p) => p.device).join(", ")}, left out by --disks`, { where });
    return inside.length > 0;
  });
  for (const v of vgs) for (const lv of v.lvs) keep.add(`${v.name}/${lv.name}`);
  const filesystems = l.filesystems.filter((f) => keep.has(f.device));
  const out = { ...l, disks, raids, vgs, filesystems };
  return checkLayout(out, where);
}

// ---------------------------------------------------------------- disklayout.conf

const FLAG_TYPES: Record<string, { msdos: string; gpt: string }> = {
  lvm: { msdos: "8e", gpt: "E6D6D379-F507-44C2-A23C-238F2A3DF928" },
  raid: { msdos: "fd", gpt: "A19D880F-05FC-4D3B-A006-743F0F84911E" },
  swap: { msdos: "82", gpt: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" },
  esp: { msdos: "ef", gpt: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" },
  bios_grub: { msdos: "83", gpt: "21686148-6449-6E6F-744E-656564454649" },
};

function fromDisklayout(text: string, file: string, o: { disks?: string[] }): Layout {
  const lines = parseDisklayout(text);
  const active = lines.filter((l) => !l.excluded);
  const at = (n: number) => `${file}:${n}`;
  for (const l of active) {
    if (l.keyword === "crypt") throw refuse(l.words[0] ?? "a device", "LUKS encryption", at(l.line));
    if (l.keyword === "multipath") throw refuse(l.words[0] ?? "a device", "multipath", at(l.line));
    if (l.keyword === "zfs") throw refuse(l.words[0] ?? "a device", "ZFS", at(l.line));
    if (l.keyword === "drbd") throw refuse(l.words[0] ?? "a device", "DRBD", at(l.line));
  }
  const num = (v: string | undefined, l: { line: number }, what: string) => {
    const m = /^(\d+)b?$/.exec(v ?? "");
    if (!m) throw new UsageError(`${at(l.line)}: ${what} "${v ?? ""}" is not a number`, { where: file, hint: "give disklayout.conf as ReaR wrote it" });
    return Number(m[1]);
  };
  const disks: LayoutDisk[] = active.filter((l) => l.keyword === "disk").map((l) => {
    const label = l.words[2];
    const table = label === "gpt" ? "gpt" : label === "msdos" ? "msdos" : label === "unknown" || label === undefined ? "none" : undefined;
    if (!table) throw new UsageError(`${at(l.line)}: partition table "${label}" is not msdos or gpt`, { where: file });
    return { name: deviceName(l.words[0]!), size: num(l.words[1], l, "disk size"), table, partitions: [] };
  });
  for (const l of active.filter((x) => x.keyword === "part")) {
    // part <disk> <size(B)> <start(B)> <partition type|name> <flags> <partition>
    const disk = disks.find((d) => d.name === deviceName(l.words[0]!));
    if (!disk) throw new UsageError(`${at(l.line)}: partition on ${l.words[0]}, which has no disk line`, { where: file });
    const size = num(l.words[1], l, "partition size");
    const start = num(l.words[2], l, "partition start");
    const kindOrName = l.words[3] ?? "primary";
    const flags = (l.words[4] ?? "none").split(",").filter((f) => f && f !== "none");
    const dev = l.words[5] ?? "";
    const table = disk.table === "gpt" ? "gpt" : "msdos";
    const flag = flags.find((f) => FLAG_TYPES[f]);
    let type = flag ? FLAG_TYPES[flag]![table] : table === "gpt" ? "0FC63DAF-8483-4772-8E79-3D69D8477DE4" : "83";
    if (table === "msdos" && kindOrName === "extended") type = "5";
    if (table === "gpt" && flags.includes("boot") && !flag) type = FLAG_TYPES.esp!.gpt;
    const number = Number(/(\d+)$/.exec(dev)?.[1] ?? disk.partitions.length + 1);
    disk.partitions.push({
      name: deviceName(dev),
      number,
      start: Math.round(start / 512),
      size,
      type,
      typeName: partitionType(table, type, at(l.line), dev),
      ...(table === "msdos" ? { kind: (["primary", "extended", "logical"].includes(kindOrName) ? kindOrName : "primary") as "primary" } : kindOrName !== "rear-noname" ? { partName: kindOrName } : {}),
      ...(table === "msdos" && flags.includes("boot") ? { bootable: true } : {}),
    });
  }
  // ReaR 2.7 writes "raidarray", older versions "raid"; the options are the same.
  const raids: LayoutRaid[] = active.filter((l) => l.keyword === "raidarray" || l.keyword === "raid").map((l) => {
    const opts = disklayoutOptions(l.words);
    const name = deviceName(l.words[0]!);
    if (!(RAID_LEVELS as string[]).includes(opts.level ?? "")) throw new UsageError(`${at(l.line)}: ${name}: md level ${opts.level ?? "unknown"} is not one vmlab rebuilds`, { where: file, hint: `the lab makes ${RAID_LEVELS.join(", ")}` });
    return { name, level: opts.level as LayoutRaid["level"], devices: (opts.devices ?? "").split(",").filter(Boolean).map((d) => deviceName(d)), metadata: opts.metadata, uuid: opts.uuid, mdName: opts.name, ...(opts.size ? { size: Number(opts.size) * 1024 } : {}) };
  });
  const vgs: LayoutVg[] = active.filter((l) => l.keyword === "lvmgrp").map((l) => {
    // lvmgrp <vg> <extentsize> [<size(extents)>] [<size>]: ReaR takes both sizes from `vgdisplay -c`, in KiB.
    const name = l.words[0]!.replace(/^\/dev\//, "");
    return { name, extentSize: num(l.words[1], l, "extent size") * 1024, ...(l.words[3] ? { size: num(l.words[3], l, "VG size") * 1024 } : {}), pvs: [], lvs: [] };
  });
  for (const l of active.filter((x) => x.keyword === "lvmdev")) {
    // lvmdev <vg> <device> [<uuid>] [<size>]: the size from `pvdisplay -c`, in 512-byte sectors.
    const vg = vgs.find((v) => v.name === l.words[0]!.replace(/^\/dev\//, ""));
    if (!vg) throw new UsageError(`${at(l.line)}: physical volume of ${l.words[0]}, which has no lvmgrp line`, { where: file });
    vg.pvs.push({ device: deviceName(l.words[1]!), size: l.words[3] ? num(l.words[3], l, "PV size") * 512 : 0, ...(l.words[2] ? { uuid: l.words[2] } : {}) });
  }
  for (const l of active.filter((x) => x.keyword === "lvmvol")) {
    // lvmvol <vg> <name> <size(B)>b <layout> [key:value ...]
    const vg = vgs.find((v) => v.name === l.words[0]!.replace(/^\/dev\//, ""));
    if (!vg) throw new UsageError(`${at(l.line)}: logical volume in ${l.words[0]}, which has no lvmgrp line`, { where: file });
    const seg = l.words[3] ?? "linear";
    if (!["linear", "striped", "thin-pool", "thin"].includes(seg)) throw new UsageError(`${at(l.line)}: ${vg.name}/${l.words[1]}: LVM segment type ${seg} is not one vmlab rebuilds`, { where: file });
    const pool = l.words.find((w) => w.startsWith("thinpool:"))?.slice("thinpool:".length);
    vg.lvs.push({ name: l.words[1]!, size: num(l.words[2], l, "LV size"), type: seg as LayoutLv["type"], ...(pool ? { pool } : {}) });
  }
  const vgNames = vgs.map((v) => v.name);
  const filesystems: LayoutFilesystem[] = [];
  for (const l of active.filter((x) => x.keyword === "fs" || x.keyword === "swap")) {
    const opts = disklayoutOptions(l.words);
    const device = deviceName(l.words[0]!, vgNames);
    if (l.keyword === "swap") {
      filesystems.push({ device, type: "swap", ...(opts.uuid ? { uuid: opts.uuid } : {}), ...(opts.label ? { label: opts.label } : {}), fstab: { spec: opts.uuid ? `UUID=${opts.uuid}` : l.words[0]!, by: opts.uuid ? "uuid" : "device", mount: "none", type: "swap", options: "sw", dump: 0, pass: 0 } });
      continue;
    }
    const mount = l.words[1]!;
    const type = fsType(l.words[2], l.words[0]!, at(l.line));
    const options = (opts.options ?? "defaults").replace(/^rw,?/, "") || "defaults";
    filesystems.push({
      device,
      type,
      ...(opts.uuid ? { uuid: opts.uuid } : {}),
      ...(opts.label ? { label: opts.label } : {}),
      mount,
      // ReaR records mounts, not fstab: the lab names them by UUID, as Debian's installer does.
      fstab: { spec: opts.uuid ? `UUID=${opts.uuid}` : l.words[0]!, by: opts.uuid ? "uuid" : "device", mount, type, options, dump: 0, pass: mount === "/" ? 1 : 2 },
    });
  }
  if (!disks.length) throw new UsageError(`${file}: no disk line that ReaR did not exclude`, { where: file, hint: "give disklayout.conf as `rear savelayout` wrote it (/var/lib/rear/layout/disklayout.conf)" });
  const firmware = filesystems.some((f) => f.mount === "/boot/efi") ? "uefi" : "bios";
  const assumed = ["fstab names each filesystem by UUID (disklayout.conf records mounts, not fstab)"];
  if (firmware === "bios") {
    // disklayout.conf does not say where GRUB is: the disks with a partition flagged boot, else the first.
    const flagged = disks.filter((d) => d.partitions.some((p) => p.bootable || p.type === FLAG_TYPES.bios_grub!.gpt));
    for (const d of flagged.length ? flagged : disks.slice(0, 1)) d.grub = true;
    assumed.push(`GRUB in the MBR of ${disks.filter((d) => d.grub).map((d) => d.name).join(", ")} (disklayout.conf does not record where GRUB is)`);
  }
  const layout: Layout = { version: 1, source: { kind: "disklayout.conf", files: [basename(file)] }, firmware, disks, raids, vgs, filesystems, assumed };
  return selectDisks(checkLayout(layout, file), o.disks, file);
}
