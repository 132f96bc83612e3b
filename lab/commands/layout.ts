/**
 * `vmlab layout capture` and `vmlab layout import`: a production machine's
 * storage layout, recorded there by a read-only script and normalised here
 * into layout.json, scaled into the lab's disk budget.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { UsageError } from "../../src/errors.ts";
import { humanBytes } from "../../src/disk/partitions.ts";
import { parseSize } from "../../src/disk/size.ts";
import { CAPTURED_FILES, captureScript } from "../../src/layout/capture.ts";
import { importLayout } from "../../src/layout/import.ts";
import { scaleLayout } from "../../src/layout/scale.ts";
import { alignColumns } from "../../src/util/table.ts";
import { out } from "../output.ts";

export async function cmdLayoutCapture(o: { tar?: boolean; list?: boolean }): Promise<number> {
  if (o.list) {
    for (const l of alignColumns([["file", "what it holds"], ...CAPTURED_FILES.map((f) => [f.file, f.from])])) out(l);
    return 0;
  }
  process.stdout.write(captureScript({ tar: o.tar }));
  return 0;
}

export async function cmdLayoutImport(source: string, o: { output?: string; scaleTo?: string; disks?: string; json?: boolean }): Promise<number> {
  const budget = parseSize(o.scaleTo ?? "16G", "--scale-to");
  const target = o.output ?? "layout.json";
  if (target !== "-" && existsSync(target)) throw new UsageError(`${target} already exists`, { hint: "give another file with -o, or remove it first" });
  const disks = o.disks?.split(",").map((d) => d.trim().replace(/^\/dev\//, "")).filter(Boolean);
  const imported = await importLayout(source, { disks });
  const { layout, rows } = scaleLayout(imported, budget, source);
  const text = JSON.stringify(layout, null, 2) + "\n";
  if (target === "-") {
    process.stdout.write(text);
    return 0;
  }
  await writeFile(target, text);
  if (o.json) {
    out(JSON.stringify({ layout: target, rows }, null, 2));
    return 0;
  }
  out(`${layout.source.kind === "capture" ? "capture" : "ReaR disklayout.conf"}${layout.source.host ? ` of ${layout.source.host}` : ""}: ${layout.firmware}, ${layout.disks.length} disk(s), ${layout.raids.length} array(s), ${layout.vgs.length} volume group(s), ${layout.filesystems.length} filesystem(s)`);
  for (const l of alignColumns([["source", "lab", "before", "after", ""], ...rows.map((r) => [r.source, r.lab, humanBytes(r.before), humanBytes(r.after), r.note])])) out(l);
  const fsRows = layout.filesystems.map((f) => [f.device, f.type, f.mount ?? (f.type === "swap" ? "swap" : "-"), f.fstab?.by ?? "-", f.label ?? "", f.uuid ?? ""]);
  out("");
  for (const l of alignColumns([["device", "fs", "mount", "fstab by", "label", "uuid"], ...fsRows])) out(l);
  const grub = layout.disks.filter((d) => d.grub).map((d) => d.name);
  out("");
  out(`bootloader: ${layout.firmware === "uefi" ? `UEFI${layout.efiEntries?.length ? `, ${layout.efiEntries.length} line(s) of efibootmgr` : ""}` : grub.length ? `GRUB in the MBR of ${grub.join(", ")}` : "no GRUB found in any MBR"}`);
  for (const a of layout.assumed ?? []) out(`assumed: ${a}`);
  out(`wrote ${target}`);
  return 0;
}
