/**
 * `vmlab dr backup-boot|restore-boot` and `vmlab inspect`: disaster-recovery
 * commands on disk image files (qcow2 or raw) of lab machines, without root
 * and without qemu-nbd. Bad input is a UsageError (exit 2) and writes nothing.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../../src/errors.ts";
import { backupBootImage, restoreBootImage } from "../../src/disk/boot-backup.ts";
import { formatPartitionTable, mountCommand, readImagePartitions } from "../../src/disk/partitions.ts";
import { findBuilt, imagesDir, listImages } from "../../src/image/build.ts";
import { loadRecipe, recipeNames } from "../../src/image/recipes.ts";
import { out } from "../output.ts";

function sectorsOf(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1) throw new UsageError(`bad --sectors "${v}": use a whole number of sectors, 1 or more`);
  return n;
}

export async function cmdBackupBoot(image: string, backup: string, o: { sectors?: string; json?: boolean }): Promise<number> {
  const meta = await backupBootImage(image, backup, { sectors: sectorsOf(o.sectors) });
  if (o.json) out(JSON.stringify(meta, null, 2));
  else {
    out(`backed up ${meta.sectors} sectors (${meta.sectors * meta.sectorSize} bytes, ${meta.reason}) of ${image} to ${backup}`);
    out(`  description: ${backup}.json (source disk ${meta.sourceBytes} bytes, sha256 ${meta.sha256.slice(0, 16)}...)`);
  }
  return 0;
}

export async function cmdRestoreBoot(backup: string, image: string, o: { json?: boolean }): Promise<number> {
  const r = await restoreBootImage(backup, image);
  if (o.json) out(JSON.stringify({ backup, image, bytes: r.bytes, sectors: r.meta.sectors, sha256: r.meta.sha256 }, null, 2));
  else {
    out(`restored ${r.meta.sectors} sectors (${r.bytes} bytes) from ${backup} onto ${image}; read back and verified`);
    out("  the swap partition was not in the backup: after booting, `mkswap -L LABEL /dev/sdX2` with the label fstab names");
  }
  return 0;
}

/** A path, or the name of a cached image: its disks in order. */
async function resolveTarget(target: string): Promise<{ image?: string; disks: string[] }> {
  if (existsSync(target) || target.includes("/")) return { disks: [target] };
  // The build of the current recipe first, else the newest cached build of that name.
  const recipe = (await recipeNames()).includes(target) ? await loadRecipe(target) : undefined;
  const current = recipe ? await findBuilt(recipe) : null;
  if (current) return { image: target, disks: current.disks };
  const metas = (await listImages()).filter((m) => m.name === target).sort((a, b) => b.builtAt.localeCompare(a.builtAt));
  const meta = metas[0];
  if (!meta) {
    throw new UsageError(`${target} is neither a file nor a cached image`, {
      hint: "give the path of a qcow2 or raw disk image, or the name of a cached image (`vmlab image list`)",
    });
  }
  const dir = join(imagesDir(), `${meta.name}-${meta.hash}`);
  return { image: target, disks: (meta.disks?.map((d) => d.file) ?? ["disk.qcow2"]).map((f) => join(dir, f)) };
}

export async function cmdInspect(target: string, o: { json?: boolean }): Promise<number> {
  const { image, disks } = await resolveTarget(target);
  const results = [];
  for (const d of disks) results.push({ path: d, table: await readImagePartitions(d) });
  if (o.json) {
    const json = results.map(({ path, table }) => ({
      path,
      format: table.format,
      diskBytes: table.diskBytes,
      sectorSize: table.sectorSize,
      label: table.label,
      ...(table.content ? { content: table.content } : {}),
      partitions: table.partitions.map((p) => ({ ...p, mount: mountCommand(p, table.format === "raw" ? path : "disk.raw") })),
    }));
    out(JSON.stringify(image ? { image, disks: json } : json[0], null, 2));
    return 0;
  }
  out(results.map(({ path, table }) => formatPartitionTable(path, table)).join("\n\n"));
  return 0;
}
