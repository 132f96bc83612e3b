/**
 * `vmlab dr backup-boot|restore-boot` and `vmlab inspect`: disaster-recovery
 * commands on disk image files (qcow2 or raw) of lab machines, without root
 * and without qemu-nbd. Bad input is a UsageError (exit 2) and writes nothing.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { UsageError } from "../src/errors.ts";
import { backupBootImage, restoreBootImage } from "../src/disk/boot-backup.ts";
import { formatPartitionTable, mountCommand, readImagePartitions } from "../src/disk/partitions.ts";
import { findBuilt, imagesDir, listImages } from "../src/image/build.ts";
import { loadRecipe, recipeNames } from "../src/scenario/registry.ts";

function out(line = ""): void {
  process.stdout.write(line + "\n");
}

export async function cmdDr(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { sectors: { type: "string" }, json: { type: "boolean" } } });
  switch (sub) {
    case "backup-boot": {
      const [image, backup] = positionals;
      if (!image || !backup || positionals.length > 2) {
        throw new UsageError("vmlab dr backup-boot needs a disk image and a backup file", { hint: "vmlab dr backup-boot reports/RUN/sda.qcow2 boot-backup.img" });
      }
      let sectors: number | undefined;
      if (values.sectors !== undefined) {
        sectors = Number(values.sectors);
        if (!/^\d+$/.test(values.sectors) || sectors < 1) throw new UsageError(`bad --sectors "${values.sectors}": use a whole number of sectors, 1 or more`);
      }
      const meta = await backupBootImage(image, backup, { sectors });
      if (values.json) out(JSON.stringify(meta, null, 2));
      else {
        out(`backed up ${meta.sectors} sectors (${meta.sectors * meta.sectorSize} bytes, ${meta.reason}) of ${image} to ${backup}`);
        out(`  description: ${backup}.json (source disk ${meta.sourceBytes} bytes, sha256 ${meta.sha256.slice(0, 16)}...)`);
      }
      return 0;
    }
    case "restore-boot": {
      const [backup, image] = positionals;
      if (!backup || !image || positionals.length > 2) {
        throw new UsageError("vmlab dr restore-boot needs a backup file and a disk image", { hint: "vmlab dr restore-boot boot-backup.img new-disk.qcow2" });
      }
      const r = await restoreBootImage(backup, image);
      if (values.json) out(JSON.stringify({ backup, image, bytes: r.bytes, sectors: r.meta.sectors, sha256: r.meta.sha256 }, null, 2));
      else {
        out(`restored ${r.meta.sectors} sectors (${r.bytes} bytes) from ${backup} onto ${image}; read back and verified`);
        out("  the swap partition was not in the backup: after booting, `mkswap -L LABEL /dev/sdX2` with the label fstab names");
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown dr command "${sub ?? ""}"`, { hint: "vmlab dr backup-boot <disk-image> <backup-file> | vmlab dr restore-boot <backup-file> <disk-image>" });
  }
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

export async function cmdInspect(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean" } } });
  if (positionals.length !== 1) {
    throw new UsageError("vmlab inspect needs one disk image (qcow2 or raw) or cached image name", { hint: "vmlab inspect debian12-bios" });
  }
  const { image, disks } = await resolveTarget(positionals[0]!);
  const results = [];
  for (const d of disks) results.push({ path: d, table: await readImagePartitions(d) });
  if (values.json) {
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
