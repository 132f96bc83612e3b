/**
 * Parsers for the outputs `vmlab layout capture` records, one per format:
 * `lsblk --json --bytes -O`, `sfdisk -d`, the LVM JSON reports,
 * `mdadm --detail --scan --verbose`, /proc/mdstat, fstab, and ReaR's
 * disklayout.conf. Pure: text in, data out. Bad input is a UsageError that
 * names the file and, where there is one, the line.
 */
import { UsageError } from "../errors.ts";
import type { FstabEntry } from "./types.ts";

function bad(file: string, what: string, line?: number, hint?: string): UsageError {
  return new UsageError(`${file}${line ? `:${line}` : ""}: ${what}`, {
    where: file,
    hint: hint ?? "give the file exactly as the command wrote it (`vmlab layout capture` prints the commands)",
  });
}

/** "/dev/sda1" -> "sda1"; "/dev/mapper/vg-root" and "/dev/vg/root" -> "vg/root" (with the VG names known). */
export function deviceName(path: string, vgNames: string[] = []): string {
  let p = path.trim();
  const mapper = /^\/dev\/mapper\/(.+)$/.exec(p);
  if (mapper) {
    // device-mapper doubles a "-" inside a VG or LV name.
    const parts = mapper[1]!.split(/(?<!-)-(?!-)/);
    if (parts.length === 2) return `${parts[0]!.replace(/--/g, "-")}/${parts[1]!.replace(/--/g, "-")}`;
    return mapper[1]!;
  }
  const vgPath = /^\/dev\/([^/]+)\/([^/]+)$/.exec(p);
  if (vgPath && (vgNames.includes(vgPath[1]!) || !["disk", "md", "mapper"].includes(vgPath[1]!))) return `${vgPath[1]}/${vgPath[2]}`;
  const md = /^\/dev\/md\/(.+)$/.exec(p);
  if (md) return /^\d+$/.test(md[1]!) ? `md${md[1]}` : `md/${md[1]}`;
  p = p.replace(/^\/dev\//, "");
  return p;
}

// ---------------------------------------------------------------- lsblk

export interface LsblkDevice {
  name: string;
  path?: string;
  type: string;
  size: number;
  fstype?: string;
  uuid?: string;
  label?: string;
  parttype?: string;
  parttypename?: string;
  partlabel?: string;
  pttype?: string;
  tran?: string;
  serial?: string;
  mountpoints: string[];
  pkname?: string;
  children: LsblkDevice[];
}

/** `lsblk --json --bytes -O`: the device tree. A device with two parents (an array's members) appears under each. */
export function parseLsblk(text: string, file = "lsblk.json"): LsblkDevice[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw bad(file, `not JSON (${(e as Error).message}); a truncated or edited file?`);
  }
  const list = (json as { blockdevices?: unknown }).blockdevices;
  if (!Array.isArray(list)) throw bad(file, 'no "blockdevices" list: not the output of `lsblk --json`');
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const conv = (d: Record<string, unknown>, at: string): LsblkDevice => {
    const name = str(d.name);
    if (!name) throw bad(file, `a device at ${at} has no name`);
    const size = typeof d.size === "number" ? d.size : /^\d+$/.test(String(d.size)) ? Number(d.size) : NaN;
    if (!Number.isFinite(size)) throw bad(file, `${name}: size ${JSON.stringify(d.size)} is not a number of bytes`, undefined, "capture with `lsblk --json --bytes -O` (--bytes gives sizes in bytes)");
    const mps = Array.isArray(d.mountpoints) ? d.mountpoints : [d.mountpoint];
    return {
      name,
      path: str(d.path),
      type: str(d.type) ?? "unknown",
      size,
      fstype: str(d.fstype),
      uuid: str(d.uuid),
      label: str(d.label),
      parttype: str(d.parttype),
      parttypename: str(d.parttypename),
      partlabel: str(d.partlabel),
      pttype: str(d.pttype),
      tran: str(d.tran),
      serial: str(d.serial),
      pkname: str(d.pkname),
      mountpoints: mps.filter((m): m is string => typeof m === "string" && m !== ""),
      children: Array.isArray(d.children) ? d.children.map((c, i) => conv(c as Record<string, unknown>, `${at}.children[${i}]`)) : [],
    };
  };
  return list.map((d, i) => conv(d as Record<string, unknown>, `blockdevices[${i}]`));
}

/** Every device of the tree once, parents before children. */
export function flattenLsblk(devs: LsblkDevice[]): LsblkDevice[] {
  const seen = new Map<string, LsblkDevice>();
  const walk = (d: LsblkDevice) => {
    if (!seen.has(d.name)) seen.set(d.name, d);
    d.children.forEach(walk);
  };
  devs.forEach(walk);
  return [...seen.values()];
}

// ---------------------------------------------------------------- sfdisk -d

export interface SfdiskDump {
  label: "dos" | "gpt";
  device: string;
  sectorSize: number;
  lastLba?: number;
  partitions: { device: string; number: number; start: number; size: number; type: string; bootable: boolean; name?: string; uuid?: string }[];
}

/** `sfdisk -d /dev/DISK`. */
export function parseSfdiskDump(text: string, file = "sfdisk.dump"): SfdiskDump {
  const header: Record<string, string> = {};
  const partitions: SfdiskDump["partitions"] = [];
  const lines = text.split("\n");
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const p = /^(\/dev\/\S+?)\s*:\s*(.*)$/.exec(line);
    if (p) {
      const fields: Record<string, string> = {};
      let bootable = false;
      for (const f of p[2]!.match(/(?:[^,"]|"[^"]*")+/g) ?? []) {
        const kv = /^\s*([\w-]+)\s*=\s*(.*?)\s*$/.exec(f);
        if (kv) fields[kv[1]!] = kv[2]!.replace(/^"(.*)"$/, "$1");
        else if (f.trim() === "bootable") bootable = true;
      }
      const num = /(\d+)$/.exec(p[1]!);
      if (!fields.start || !fields.size || !fields.type || !num) throw bad(file, `partition line without start, size and type: ${line}`, i + 1);
      partitions.push({
        device: p[1]!,
        number: Number(num[1]),
        start: Number(fields.start),
        size: Number(fields.size),
        type: fields.type.length > 2 ? fields.type.toUpperCase() : fields.type.toLowerCase().replace(/^0(?=.)/, ""),
        bootable,
        name: fields.name,
        uuid: fields.uuid,
      });
      return;
    }
    const h = /^([\w-]+)\s*:\s*(.*)$/.exec(line);
    if (h) header[h[1]!] = h[2]!;
    else throw bad(file, `not a line of \`sfdisk -d\`: ${line}`, i + 1);
  });
  if (header.label !== "dos" && header.label !== "gpt") throw bad(file, `label "${header.label ?? ""}": sfdisk -d of a disk with an msdos or GPT table was expected`);
  if (header.unit && header.unit !== "sectors") throw bad(file, `unit "${header.unit}": only sectors are understood`);
  return {
    label: header.label,
    device: header.device ?? "",
    sectorSize: header["sector-size"] ? Number(header["sector-size"]) : 512,
    lastLba: header["last-lba"] ? Number(header["last-lba"]) : undefined,
    partitions,
  };
}

// ---------------------------------------------------------------- LVM JSON reports

/** One of `pvs`/`vgs`/`lvs --reportformat json`: its rows, values as strings. */
export function parseLvmReport(text: string, kind: "pv" | "vg" | "lv", file: string): Record<string, string>[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw bad(file, `not JSON (${(e as Error).message}); a truncated or edited file?`);
  }
  const report = (json as { report?: Record<string, unknown>[] }).report;
  const rows = Array.isArray(report) ? report.flatMap((r) => (Array.isArray(r[kind]) ? (r[kind] as Record<string, string>[]) : [])) : undefined;
  if (!rows) throw bad(file, `no "report" with "${kind}" rows: not the output of \`${kind}s --reportformat json\``);
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v).trim()])));
}

/** A size of an LVM report made with `--units b --nosuffix` ("10737418240"; older LVM writes "10737418240B"). */
export function lvmBytes(v: string | undefined, file: string, what: string): number {
  const m = /^(\d+)(?:\.0+)?B?$/.exec(v ?? "");
  if (!m) throw bad(file, `${what}: "${v ?? ""}" is not a size in bytes`, undefined, "capture the LVM reports with --units b --nosuffix");
  return Number(m[1]);
}

// ---------------------------------------------------------------- mdadm

export interface MdArrayScan {
  device: string;
  level?: string;
  numDevices?: number;
  metadata?: string;
  name?: string;
  uuid?: string;
  devices: string[];
}

/** `mdadm --detail --scan --verbose` (or the ARRAY lines of mdadm.conf): one entry per ARRAY, with its devices= line. */
export function parseMdadmScan(text: string, file = "mdadm-detail-scan.txt"): MdArrayScan[] {
  const arrays: MdArrayScan[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) return;
    const words = line.split(/\s+/);
    if (words[0] === "ARRAY") {
      const a: MdArrayScan = { device: words[1] ?? "", devices: [] };
      if (!a.device || a.device.includes("=")) throw bad(file, `ARRAY without a device: ${line}`, i + 1);
      for (const w of words.slice(2)) applyMdWord(a, w);
      arrays.push(a);
    } else if (/^\w+=/.test(words[0]!) && arrays.length && /^\s/.test(raw)) {
      for (const w of words) applyMdWord(arrays[arrays.length - 1]!, w);
    } else if (!["DEVICE", "HOMEHOST", "MAILADDR", "CREATE", "PROGRAM", "AUTO", "POLICY", "MAILFROM"].includes(words[0]!)) {
      throw bad(file, `not a line of \`mdadm --detail --scan\`: ${line}`, i + 1);
    }
  });
  return arrays;
}

function applyMdWord(a: MdArrayScan, w: string): void {
  const kv = /^([\w-]+)=(.*)$/.exec(w);
  if (!kv) return;
  const [, k, v] = kv as unknown as [string, string, string];
  switch (k.toLowerCase()) {
    case "level": a.level = v; break;
    case "num-devices": a.numDevices = Number(v); break;
    case "metadata": a.metadata = v; break;
    case "name": a.name = v; break;
    case "uuid": a.uuid = v; break;
    case "devices": a.devices = v.split(",").filter(Boolean); break;
  }
}

export interface MdstatArray {
  name: string;
  state: string;
  level: string;
  /** Members by role number. */
  members: { device: string; role: number; faulty: boolean; spare: boolean }[];
  blocks?: number;
}

/** /proc/mdstat. */
export function parseMdstat(text: string): MdstatArray[] {
  const arrays: MdstatArray[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^(md\S+)\s*:\s*(\S+)\s+(?:\((?:auto-)?read-only\)\s+)?(raid\d+|linear|multipath)?\s*(.*)$/.exec(lines[i]!);
    if (!m) continue;
    const members = [...m[4]!.matchAll(/(\S+?)\[(\d+)\](\([FS]\))?/g)].map((x) => ({ device: x[1]!, role: Number(x[2]), faulty: x[3] === "(F)", spare: x[3] === "(S)" }));
    const blocks = /^\s+(\d+) blocks/.exec(lines[i + 1] ?? "");
    arrays.push({ name: m[1]!, state: m[2]!, level: m[3] ?? "", members: members.sort((a, b) => a.role - b.role), blocks: blocks ? Number(blocks[1]) : undefined });
  }
  return arrays;
}

// ---------------------------------------------------------------- fstab

export function parseFstab(text: string, file = "fstab"): FstabEntry[] {
  const out: FstabEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) return;
    const f = line.split(/\s+/);
    if (f.length < 3) throw bad(file, `an fstab line has at least a device, a mount point and a type: ${line}`, i + 1);
    const spec = f[0]!;
    const eq = /^(UUID|LABEL|PARTUUID|PARTLABEL)=/i.exec(spec);
    out.push({
      spec,
      by: eq ? (eq[1]!.toLowerCase() as FstabEntry["by"]) : "device",
      mount: f[1]!.replace(/\\040/g, " "),
      type: f[2]!,
      options: f[3] ?? "defaults",
      dump: Number(f[4] ?? 0),
      pass: Number(f[5] ?? 0),
    });
  });
  return out;
}

/** The value an fstab spec names, without quotes ("UUID=\"x\"" -> "x"). */
export function fstabValue(e: FstabEntry): string {
  return e.spec.replace(/^[A-Z]+=/i, "").replace(/^"(.*)"$/, "$1");
}

// ---------------------------------------------------------------- ReaR disklayout.conf

export interface DisklayoutLine {
  keyword: string;
  words: string[];
  line: number;
  /** Commented out by ReaR: a component it excluded. */
  excluded: boolean;
}

/** ReaR's disklayout.conf: keyword lines; a "#" before a keyword marks a component ReaR excluded. */
export function parseDisklayout(text: string): DisklayoutLine[] {
  const KEYWORDS = /^(disk|part|raid|raidarray|raiddisk|lvmdev|lvmgrp|lvmvol|fs|btrfsdefaultsubvol|btrfsnormalsubvols|btrfsmountedsubvols|swap|crypt|multipath|opaldisk|drbd|zfs|logicaldrive|smartarray)$/;
  const out: DisklayoutLine[] = [];
  text.split("\n").forEach((raw, i) => {
    let line = raw.trim();
    let excluded = false;
    if (line.startsWith("#")) {
      // ReaR comments a component out with "#" right before its keyword; "# lvmvol <volume_group> ..." is documentation.
      if (!/^#[a-z]/.test(line)) return;
      const rest = line.slice(1);
      if (!KEYWORDS.test(rest.split(/\s+/)[0] ?? "")) return;
      excluded = true;
      line = rest;
    }
    if (!line) return;
    const words = line.split(/\s+/);
    out.push({ keyword: words[0]!, words: words.slice(1), line: i + 1, excluded });
  });
  return out;
}

/** key=value words of a disklayout.conf line. */
export function disklayoutOptions(words: string[]): Record<string, string> {
  return Object.fromEntries(words.filter((w) => /^[\w-]+=/.test(w)).map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]));
}
