import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HostError, UsageError, VmlabError } from "../errors.ts";
import { cacheDir } from "../paths.ts";
import { withDirLock } from "../util/lock.ts";
import { checkCacheEntry, writeManifest } from "../util/manifest.ts";
import { diskUsage, formatBytes, noSpaceError, requireSpace } from "../util/space.ts";
import { convertImage } from "../disk/qemu-img.ts";
import { chooseAccel } from "../host/kvm.ts";
import { Machine } from "../vm/machine.ts";
import { labKey } from "./keys.ts";
import type { PlannedPartition } from "./layout.ts";
import { guestDevice, recipeDisks, type ImageRecipe } from "./recipe.ts";
import { assembleDisks, customizeTree, grubDefaults, planDisks, provisionScript, shapingSource } from "./customize.ts";
import { BUILD_NICE, copyTree, ensureTree, treeHash } from "./tree.ts";
import { installScript } from "../layout/install.ts";

/** Bump when the build procedure changes in a way that changes the image. */
const BUILD_VERSION = 2;

export interface BuiltImage {
  name: string;
  hash: string;
  dir: string;
  /** The read-only base disk every run overlays: the first disk (sda). */
  disk: string;
  /** All of the image's disks in guest order (sda, sdb, ...); `disks[0]` is `disk`. */
  disks: string[];
  /** A UEFI image's NVRAM (OVMF's variable store with its boot entry); each machine starts from a copy. */
  efiVars?: string;
  meta: ImageMeta;
}

/** The file name of a UEFI image's NVRAM in its cache directory. */
export const IMAGE_EFIVARS = "efivars.fd";

export interface ImageMeta {
  name: string;
  hash: string;
  description: string;
  builtAt: string;
  buildMs: number;
  kernel: string;
  /** The firmware it boots through; absent in images made before UEFI images existed: BIOS. */
  firmware?: "bios" | "uefi";
  /** The shared Debian tree it was copied from (src/image/tree.ts). */
  tree?: { hash: string; builtNow: boolean };
  /** False for an image booted only directly: no GRUB, no provisioning boot. */
  provisioned?: boolean;
  /** The first disk's partitions. */
  partitions: MetaPartition[];
  /** Every disk of an image with more than one: file name in the image directory, size, label, partitions. */
  disks?: { file: string; sizeBytes: number; label: "msdos" | "gpt" | "none"; partitions: MetaPartition[] }[];
  steps: { name: string; ms: number }[];
}

export interface MetaPartition {
  name: string;
  /** Partition number; 0 for a filesystem on the whole disk. */
  index: number;
  startSector: number;
  sizeSectors: number;
  type: string;
  label?: string;
  fs?: string;
}

/** File names of an image's disks in its cache directory: disk.qcow2, then disk-sdb.qcow2, ... */
export function imageDiskFiles(recipe: ImageRecipe): string[] {
  return recipeDisks(recipe).map((_, i) => (i === 0 ? "disk.qcow2" : `disk-${guestDevice(i).slice(5)}.qcow2`));
}

export type Progress = (message: string) => void;

export function imagesDir(): string {
  return join(cacheDir(), "images");
}

/**
 * The cache key: the recipe, the tree it starts from, the lab key that goes
 * into the image, and everything that shapes it on top of the tree: the
 * source of src/image/customize.ts and layout.ts, the provisioning script
 * and GRUB's defaults as they come out for this recipe.
 */
export function recipeHash(recipe: ImageRecipe, publicKey: string): string {
  const h = createHash("sha256");
  h.update(
    JSON.stringify({
      BUILD_VERSION,
      recipe,
      publicKey,
      tree: treeHash(recipe),
      provision: recipe.layout ? installScript(recipe.layout) : provisionScript(recipe),
      grub: grubDefaults(recipe),
      shaping: shapingSource(),
    }),
  );
  return h.digest("hex").slice(0, 16);
}

function allLvm(recipe: ImageRecipe): boolean {
  return planDisks(recipe).allParts.some((p) => p.lvm);
}

/** An image that is only ever booted by direct kernel boot needs no bootloader and no provisioning boot. */
export function needsProvisioning(recipe: ImageRecipe): boolean {
  return !recipe.directBoot?.only;
}

/**
 * Before the tree is copied: the cache's file system must hold what a build
 * writes at its peak, about three times the tree (its copy, the
 * filesystems made from it in the raw disks, and the qcow2 beside them).
 */
async function requireBuildSpace(recipe: ImageRecipe, treeDir: string): Promise<number> {
  const tree = await diskUsage(treeDir);
  const needed = 3 * tree;
  await requireSpace(imagesDir(), needed, `build image ${recipe.name}`, `the Debian tree ${treeDir} takes ${formatBytes(tree)}; a build holds its copy, the disks made from it and their qcow2 at once`);
  return needed;
}

/**
 * The cached build of this recipe, verified against its manifest first
 * (src/util/manifest.ts): a damaged or unverifiable entry is named through
 * `progress` (else on stderr), removed, and null is returned.
 */
export async function findBuilt(recipe: ImageRecipe, opts: { progress?: Progress } = {}): Promise<BuiltImage | null> {
  const { publicKey } = await labKey();
  const hash = recipeHash(recipe, publicKey);
  const dir = join(imagesDir(), `${recipe.name}-${hash}`);
  const metaPath = join(dir, "meta.json");
  const say = opts.progress ?? ((m: string) => void process.stderr.write(`vmlab: ${m}\n`));
  if (!(await checkCacheEntry(dir, { what: `cached image ${recipe.name} (${hash})`, redo: "building it again", say }))) return null;
  const meta = JSON.parse(await readFile(metaPath, "utf8")) as ImageMeta;
  const disks = imageDiskFiles(recipe).map((f) => join(dir, f));
  return { name: recipe.name, hash, dir, disk: disks[0]!, disks, ...efiVarsOf(dir, meta), meta };
}

function efiVarsOf(dir: string, meta: Pick<ImageMeta, "firmware">): { efiVars?: string } {
  return meta.firmware === "uefi" ? { efiVars: join(dir, IMAGE_EFIVARS) } : {};
}

/** The Machine option that boots a machine of this image through its firmware: OVMF with the image's NVRAM, or SeaBIOS. */
export function firmwareOf(image: Pick<BuiltImage, "efiVars">): { uefi?: { varsFrom: string } } {
  return image.efiVars ? { uefi: { varsFrom: image.efiVars } } : {};
}

/** Build the image unless an identical recipe was built before; a cached build costs a stat of each of its files (src/util/manifest.ts). */
export async function ensureImage(recipe: ImageRecipe, opts: { progress?: Progress; rebuild?: boolean } = {}): Promise<BuiltImage> {
  if (!opts.rebuild) {
    const found = await findBuilt(recipe, opts);
    if (found) return found;
  }
  // One build per recipe at a time: a second caller waits, then takes the first one's image.
  const { publicKey } = await labKey();
  return withDirLock(
    join(imagesDir(), `.lock-${recipe.name}-${recipeHash(recipe, publicKey)}`),
    async (waited) => {
      if (waited && !opts.rebuild) {
        const found = await findBuilt(recipe, opts);
        if (found) return found;
      }
      return buildImage(recipe, opts.progress ?? (() => undefined));
    },
    { onWait: () => opts.progress?.(`waiting for another build of ${recipe.name} to finish`) },
  );
}

/** What every build starts with: its timer and steps, the lab key, the hash, a fresh work directory. */
async function startBuild(recipe: ImageRecipe, progress: Progress) {
  const started = Date.now();
  const steps: ImageMeta["steps"] = [];
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    progress(name);
    const t = Date.now();
    const r = await fn();
    steps.push({ name, ms: Date.now() - t });
    return r;
  };
  const { publicKey, privateKey } = await labKey();
  const hash = recipeHash(recipe, publicKey);
  const finalDir = join(imagesDir(), `${recipe.name}-${hash}`);
  const work = join(imagesDir(), `.build-${recipe.name}-${hash}-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  return { started, steps, timed, publicKey, privateKey, hash, finalDir, work };
}

async function buildImage(recipe: ImageRecipe, progress: Progress): Promise<BuiltImage> {
  if (process.getuid?.() !== 0) {
    throw new HostError(`building image ${recipe.name} needs root`, {
      hint: "run `sudo npx vmlab image build " + recipe.name + "` once; runs afterwards need no root",
    });
  }
  if (recipe.layout) return buildLayoutImage(recipe, progress);
  if (!needsProvisioning(recipe) && allLvm(recipe)) {
    throw new UsageError(`image ${recipe.name} is booted directly only but asks for LVM volumes`, {
      hint: "only a provisioning boot creates LVM physical volumes; drop directBoot.only or the lvm partitions",
    });
  }
  const { started, steps, timed, publicKey, privateKey, hash, finalDir, work } = await startBuild(recipe, progress);
  let needed: number | undefined;
  const tree = join(work, "tree");
  const { planned, allParts } = planDisks(recipe);
  const diskFiles = imageDiskFiles(recipe);
  const raws = planned.map((d) => join(work, diskFiles[d.di]!.replace(/\.qcow2$/, ".raw")));
  try {
    const shared = await timed("debian tree (mmdebstrap, shared)", () => ensureTree(recipe, progress));
    needed = await requireBuildSpace(recipe, shared.dir);
    await timed("copy tree", () => copyTree(shared.dir, tree));
    await timed("customize", () => customizeTree(tree, recipe, publicKey, allParts));
    const kernels = (await readdir(join(tree, "boot"))).filter((f) => f.startsWith("vmlinuz-"));
    if (kernels.length !== 1) throw new VmlabError(`expected one kernel in the image, found ${kernels.length}`, { where: join(tree, "boot") });
    const kver = kernels[0]!.slice("vmlinuz-".length);
    await timed("assemble disk", () => assembleDisks(work, tree, planned, allParts, raws));
    const bootSrc = join(work, `fs-${allParts.find((p) => p.fs?.mount === "/boot")!.key}`);
    const rootPart = allParts.find((p) => p.fs?.mount === "/")!;
    if (needsProvisioning(recipe)) await timed("provision boot (GRUB, LVM, initramfs)", async () => {
      const accel = await chooseAccel();
      const m = new Machine({
        name: "provision",
        runDir: work,
        disks: raws.map((path, i) => ({ path, format: "raw" as const, id: guestDevice(i).slice(5) })),
        accel,
        sshKey: privateKey,
        network: false,
        noReboot: true,
        nice: BUILD_NICE,
        // A UEFI image is provisioned under OVMF, so that grub-install's
        // boot entry lands in the NVRAM the image ships (efivars.fd).
        ...(recipe.firmware === "uefi" ? { uefi: {} } : {}),
        kernel: {
          path: join(bootSrc, `vmlinuz-${kver}`),
          initrd: join(bootSrc, `initrd.img-${kver}`),
          // panic=-1: a failed provisioning reboots at once, and -no-reboot turns that into an exit.
          append: `root=LABEL=${rootPart.fs!.label} rw init=/usr/local/sbin/vmlab-provision panic=-1 ${recipe.kernelCmdline}`,
        },
      });
      try {
        await m.start();
        // Generous: under TCG on a host busy with other guests the initramfs alone can take minutes.
        const deadline = Date.now() + 15 * 60_000;
        while (m.running && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
      } finally {
        await m.kill();
      }
      const log = await m.consoleSince(0);
      // The marker alone on a line: `set -x` also echoes the command that prints it.
      if (!/^VMLAB-PROVISION-OK\r?$/m.test(log)) {
        throw new VmlabError(`provisioning boot of image ${recipe.name} failed`, {
          where: `direct kernel boot, console log ${m.serialLog}`,
          output: await m.consoleTail(40),
          hint: "the console tail shows the failing command; fix the recipe and build again",
        });
      }
    });
    if (recipe.firmware === "uefi") {
      await copyFile(join(work, "provision.efivars.fd"), join(work, IMAGE_EFIVARS));
      await rm(join(work, "provision.efivars.fd"));
      await chmod(join(work, IMAGE_EFIVARS), 0o444);
    }
    await timed("convert to qcow2", async () => {
      for (const d of planned) {
        const disk = join(work, diskFiles[d.di]!);
        await convertImage(raws[d.di]!, disk, { format: "qcow2", sourceFormat: "raw" });
        await rm(raws[d.di]!);
        await chmod(disk, 0o444);
      }
    });
    if (recipe.directBoot) {
      // The initramfs the provisioning boot just used: proven to find this root.
      await copyFile(join(bootSrc, `vmlinuz-${kver}`), join(work, "vmlinuz"));
      await copyFile(join(bootSrc, `initrd.img-${kver}`), join(work, "initrd.img"));
    }
    await rm(bootSrc, { recursive: true, force: true });
    await rm(join(work, `fs-${rootPart.key}`), { recursive: true, force: true });
    const metaParts = (parts: PlannedPartition[]): MetaPartition[] =>
      parts.map((p) => ({
        name: p.name,
        index: p.index,
        startSector: p.startSector,
        sizeSectors: p.sizeSectors,
        type: p.type,
        label: p.fs?.label ?? p.swap?.label,
        fs: p.fs?.type ?? (p.lvm ? "LVM2_member" : p.swap ? "swap" : undefined),
      }));
    const meta: ImageMeta = {
      name: recipe.name,
      hash,
      description: recipe.description,
      builtAt: new Date().toISOString(),
      buildMs: Date.now() - started,
      kernel: kver,
      firmware: recipe.firmware ?? "bios",
      tree: { hash: shared.hash, builtNow: shared.built },
      provisioned: needsProvisioning(recipe),
      partitions: metaParts(planned[0]!.partitions),
      ...(planned.length > 1
        ? { disks: planned.map((d) => ({ file: diskFiles[d.di]!, sizeBytes: d.diskBytes, label: d.spec.label, partitions: metaParts(d.partitions) })) }
        : {}),
      steps,
    };
    await writeFile(join(work, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
    // Written last, so a build cut short never looks finished; checked at every use.
    await writeManifest(work);
    await rm(finalDir, { recursive: true, force: true });
    await rename(work, finalDir);
    const disks = diskFiles.map((f) => join(finalDir, f));
    return { name: recipe.name, hash, dir: finalDir, disk: disks[0]!, disks, ...efiVarsOf(finalDir, meta), meta };
  } catch (err) {
    // Keep nothing half-built in the cache but the console log the error points at.
    for (const f of await readdir(work)) {
      if (!f.endsWith(".console.log")) await rm(join(work, f), { recursive: true, force: true });
    }
    throw (await noSpaceError(err, imagesDir(), `build image ${recipe.name}`, needed)) ?? err;
  }
}

/**
 * An image from a captured layout (src/layout/image.ts): the tree copied
 * and customised, then laid out on the layout's disks and installed by the
 * rescue system. No provisioning boot: the install's chroot does its work.
 */
async function buildLayoutImage(recipe: ImageRecipe, progress: Progress): Promise<BuiltImage> {
  const { started, steps, timed, publicKey, privateKey, hash, finalDir, work } = await startBuild(recipe, progress);
  let needed: number | undefined;
  const diskFiles = imageDiskFiles(recipe);
  const raws = diskFiles.map((f) => join(work, f.replace(/\.qcow2$/, ".raw")));
  const layoutImage = await import("../layout/image.ts");
  try {
    const rescueRecipe = await (await import("./recipes.ts")).loadRecipe("rescue");
    const rescue = await timed("rescue image", () => ensureImage(rescueRecipe, { progress }));
    const shared = await timed("debian tree (mmdebstrap, shared)", () => ensureTree(recipe, progress));
    const tree = join(work, "tree");
    needed = await requireBuildSpace(recipe, shared.dir);
    await timed("copy tree", () => copyTree(shared.dir, tree));
    const kernels = (await readdir(join(tree, "boot"))).filter((f) => f.startsWith("vmlinuz-"));
    const kver = kernels[0]?.slice("vmlinuz-".length) ?? "unknown";
    await layoutImage.buildLayoutDisks({
      recipe,
      work,
      tree,
      raws,
      publicKey,
      privateKey,
      rescue: { dir: rescue.dir, disk: rescue.disk, append: rescueRecipe.directBoot!.append },
      progress,
      timed,
    });
    await rm(tree, { recursive: true, force: true });
    await timed("convert to qcow2", async () => {
      await layoutImage.convertLayoutDisks(raws, diskFiles.map((f) => join(work, f)));
      for (const f of diskFiles) await chmod(join(work, f), 0o444);
    });
    const layout = recipe.layout!;
    const metaParts = (di: number): MetaPartition[] =>
      layout.disks[di]!.partitions.map((p) => ({ name: p.name, index: p.number, startSector: p.start, sizeSectors: p.size / 512, type: p.type, ...(() => {
        const f = layout.filesystems.find((x) => x.device === p.name);
        return f ? { fs: f.type, label: f.label } : {};
      })() }));
    const meta: ImageMeta = {
      name: recipe.name,
      hash,
      description: recipe.description,
      builtAt: new Date().toISOString(),
      buildMs: Date.now() - started,
      kernel: kver,
      tree: { hash: shared.hash, builtNow: shared.built },
      provisioned: true,
      partitions: metaParts(0),
      disks: layout.disks.map((d, di) => ({ file: diskFiles[di]!, sizeBytes: d.size, label: d.table, partitions: metaParts(di) })),
      steps,
    };
    await writeFile(join(work, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
    await writeFile(join(work, "layout.json"), JSON.stringify(layout, null, 2) + "\n");
    for (const f of await readdir(work)) if (f.endsWith(".sock")) await rm(join(work, f), { force: true });
    // Written last, so a build cut short never looks finished; checked at every use.
    await writeManifest(work);
    await rm(finalDir, { recursive: true, force: true });
    await rename(work, finalDir);
    const disks = diskFiles.map((f) => join(finalDir, f));
    return { name: recipe.name, hash, dir: finalDir, disk: disks[0]!, disks, meta };
  } catch (err) {
    for (const f of await readdir(work)) {
      if (!f.endsWith(".console.log") && !["install.log", "install.sh", "fidelity.json"].includes(f)) await rm(join(work, f), { recursive: true, force: true });
    }
    throw (await noSpaceError(err, imagesDir(), `build image ${recipe.name}`, needed)) ?? err;
  }
}

export async function listImages(): Promise<ImageMeta[]> {
  if (!existsSync(imagesDir())) return [];
  const out: ImageMeta[] = [];
  for (const d of await readdir(imagesDir())) {
    if (d.startsWith(".")) continue;
    try {
      out.push(JSON.parse(await readFile(join(imagesDir(), d, "meta.json"), "utf8")));
    } catch {
      /* not a finished image */
    }
  }
  return out;
}

/** Remove every cached build of an image name; returns how many were removed. */
export async function removeImage(name: string): Promise<number> {
  const metas = (await listImages()).filter((m) => m.name === name);
  if (metas.length === 0) throw new UsageError(`no cached image named ${name}`, { hint: "`vmlab image list` shows the cached images" });
  for (const m of metas) await rm(join(imagesDir(), `${m.name}-${m.hash}`), { recursive: true, force: true });
  return metas.length;
}
