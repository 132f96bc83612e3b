/**
 * The fidelity check: the lab machine built from a layout, captured with the
 * same script as production and imported the same way, against the layout.
 * Every difference is named. The layout's sizes are the scaled ones, and the
 * lab makes exactly those, so sizes must match to the byte.
 */
import { labName } from "./scale.ts";
import type { Layout } from "./types.ts";

/**
 * The capture with its disks named as the lab names them (sda for the
 * layout's first disk, ...), found by serial: the guest kernel's SCSI scan
 * may name them in another order on any boot.
 */
export function byLabNames(got: Layout, serials: string[]): Layout {
  const rename = new Map<string, string>();
  for (const d of got.disks) {
    const i = d.serial ? serials.indexOf(d.serial) : -1;
    if (i >= 0) rename.set(d.name, `sd${String.fromCharCode(97 + i)}`);
  }
  if (![...rename].some(([a, b]) => a !== b)) return got;
  const dev = (n: string) => {
    for (const [from, to] of rename) if (n === from || (n.startsWith(from) && /^\d+$/.test(n.slice(from.length)))) return to + n.slice(from.length);
    return n;
  };
  const l = JSON.parse(JSON.stringify(got)) as Layout;
  for (const d of l.disks) {
    d.name = dev(d.name);
    for (const p of d.partitions) p.name = dev(p.name);
  }
  l.disks.sort((a, b) => a.name.localeCompare(b.name));
  for (const r of l.raids) r.devices = r.devices.map(dev);
  for (const v of l.vgs) for (const p of v.pvs) p.device = dev(p.device);
  for (const f of l.filesystems) f.device = dev(f.device);
  return l;
}

/** Differences between a layout (source names) and the capture of its lab machine (lab names). None means faithful. */
export function compareLayouts(want: Layout, got: Layout): string[] {
  const diffs: string[] = [];
  const lab = (d: string) => labName(want, d);
  if (want.firmware !== got.firmware) diffs.push(`firmware: ${got.firmware}, the layout has ${want.firmware}`);
  for (const d of want.disks) {
    const g = got.disks.find((x) => x.name === lab(d.name));
    if (!g) {
      diffs.push(`disk ${lab(d.name)} (${d.name}) is missing`);
      continue;
    }
    if (g.size !== d.size) diffs.push(`disk ${g.name}: ${g.size} bytes, the layout has ${d.size}`);
    if (g.table !== d.table) diffs.push(`disk ${g.name}: ${g.table} table, the layout has ${d.table}`);
    if (Boolean(g.grub) !== Boolean(d.grub)) diffs.push(`disk ${g.name}: GRUB ${g.grub ? "in" : "not in"} its MBR, the layout has it ${d.grub ? "there" : "elsewhere"}`);
    for (const p of d.partitions) {
      const gp = g.partitions.find((x) => x.number === p.number);
      const name = `${g.name}${p.number}`;
      if (!gp) {
        diffs.push(`partition ${name} (${p.name}) is missing`);
        continue;
      }
      if (gp.start !== p.start || gp.size !== p.size) diffs.push(`partition ${name}: sectors ${gp.start}+${gp.size / 512}, the layout has ${p.start}+${p.size / 512}`);
      if (gp.type !== p.type) diffs.push(`partition ${name}: type ${gp.type}, the layout has ${p.type}`);
      if (Boolean(gp.bootable) !== Boolean(p.bootable)) diffs.push(`partition ${name}: ${gp.bootable ? "" : "not "}bootable, the layout has it ${p.bootable ? "bootable" : "not bootable"}`);
      if ((gp.partName ?? "") !== (p.partName ?? "")) diffs.push(`partition ${name}: name "${gp.partName ?? ""}", the layout has "${p.partName ?? ""}"`);
    }
    for (const gp of g.partitions) if (!d.partitions.some((p) => p.number === gp.number)) diffs.push(`partition ${g.name}${gp.number} is not in the layout`);
  }
  for (const g of got.disks) if (!want.disks.some((d) => lab(d.name) === g.name)) diffs.push(`disk ${g.name} is not in the layout`);
  for (const r of want.raids) {
    const g = got.raids.find((x) => x.name === r.name);
    if (!g) {
      diffs.push(`array ${r.name} is missing`);
      continue;
    }
    if (g.level !== r.level) diffs.push(`array ${r.name}: ${g.level}, the layout has ${r.level}`);
    const members = r.devices.map(lab);
    if (g.devices.join(",") !== members.join(",")) diffs.push(`array ${r.name}: members ${g.devices.join(", ")}, the layout has ${members.join(", ")}`);
    if (r.uuid && g.uuid !== r.uuid) diffs.push(`array ${r.name}: UUID ${g.uuid}, the layout has ${r.uuid}`);
    if (r.mdName && g.mdName !== r.mdName) diffs.push(`array ${r.name}: name ${g.mdName}, the layout has ${r.mdName}`);
    if (r.metadata && g.metadata !== r.metadata) diffs.push(`array ${r.name}: metadata ${g.metadata}, the layout has ${r.metadata}`);
  }
  for (const g of got.raids) if (!want.raids.some((r) => r.name === g.name)) diffs.push(`array ${g.name} is not in the layout`);
  for (const v of want.vgs) {
    const g = got.vgs.find((x) => x.name === v.name);
    if (!g) {
      diffs.push(`volume group ${v.name} is missing`);
      continue;
    }
    const pvs = v.pvs.map((p) => lab(p.device)).sort();
    if (g.pvs.map((p) => p.device).sort().join(",") !== pvs.join(",")) diffs.push(`volume group ${v.name}: PVs ${g.pvs.map((p) => p.device).join(", ")}, the layout has ${pvs.join(", ")}`);
    if (g.extentSize !== v.extentSize) diffs.push(`volume group ${v.name}: extent size ${g.extentSize}, the layout has ${v.extentSize}`);
    for (const lv of v.lvs) {
      const gl = g.lvs.find((x) => x.name === lv.name);
      if (!gl) diffs.push(`logical volume ${v.name}/${lv.name} is missing`);
      else {
        if (gl.size !== lv.size) diffs.push(`logical volume ${v.name}/${lv.name}: ${gl.size} bytes, the layout has ${lv.size}`);
        if (gl.type !== lv.type) diffs.push(`logical volume ${v.name}/${lv.name}: ${gl.type}, the layout has ${lv.type}`);
      }
    }
    for (const gl of g.lvs) if (!v.lvs.some((x) => x.name === gl.name)) diffs.push(`logical volume ${v.name}/${gl.name} is not in the layout`);
  }
  for (const g of got.vgs) if (!want.vgs.some((v) => v.name === g.name)) diffs.push(`volume group ${g.name} is not in the layout`);
  for (const f of want.filesystems) {
    const dev = lab(f.device);
    const g = got.filesystems.find((x) => x.device === dev);
    if (!g) {
      diffs.push(`filesystem on ${dev} is missing`);
      continue;
    }
    if (g.type !== f.type) diffs.push(`${dev}: ${g.type}, the layout has ${f.type}`);
    if (f.uuid && g.uuid?.toLowerCase() !== f.uuid.toLowerCase()) diffs.push(`${dev}: UUID ${g.uuid}, the layout has ${f.uuid}`);
    if ((f.label ?? "") !== (g.label ?? "")) diffs.push(`${dev}: label "${g.label ?? ""}", the layout has "${f.label ?? ""}"`);
    if ((f.mount ?? "") !== (g.mount ?? "")) diffs.push(`${dev}: mounted at ${g.mount ?? "nothing"} by fstab, the layout has ${f.mount ?? "nothing"}`);
    if (f.fstab && g.fstab && f.fstab.by !== g.fstab.by) diffs.push(`${dev}: fstab names it by ${g.fstab.by}, the layout by ${f.fstab.by}`);
    if (f.fstab && !g.fstab) diffs.push(`${dev}: no fstab line, the layout has one`);
    // What the booted machine really mounted (lsblk), when the capture says.
    if (g.mounted && f.mount && !g.mounted.includes(f.mount)) diffs.push(`${dev}: the booted machine has it at ${g.mounted.join(", ")}, not at ${f.mount}`);
    if (g.mounted && f.type === "swap" && f.mount === undefined && !g.mounted.includes("[SWAP]")) diffs.push(`${dev}: swap not in use on the booted machine`);
  }
  return diffs;
}
