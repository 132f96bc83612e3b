import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HostError, UsageError, VmlabError } from "../errors.ts";
import { cacheDir } from "../paths.ts";
import { run } from "../util/proc.ts";
import { convertImage } from "../disk/qemu-img.ts";
import { chooseAccel } from "../host/kvm.ts";
import { Machine } from "../vm/machine.ts";
import { CONSOLE_ROOT_PASSWORD, labKey } from "./keys.ts";
import { planPartitions, sfdiskScript, SECTOR, type PlannedPartition } from "./layout.ts";
import { guestDevice, recipeDisks, type ImageRecipe } from "./recipe.ts";

/** Bump when the build procedure changes in a way that changes the image. */
const BUILD_VERSION = 1;

export interface BuiltImage {
  name: string;
  hash: string;
  dir: string;
  /** The read-only base disk every run overlays: the first disk (sda). */
  disk: string;
  /** All of the image's disks in guest order (sda, sdb, ...); `disks[0]` is `disk`. */
  disks: string[];
  meta: ImageMeta;
}

export interface ImageMeta {
  name: string;
  hash: string;
  description: string;
  builtAt: string;
  buildMs: number;
  kernel: string;
  /** The first disk's partitions. */
  partitions: MetaPartition[];
  /** Every disk of an image with more than one: file name in the image directory, size, label, partitions. */
  disks?: { file: string; sizeBytes: number; label: "msdos" | "none"; partitions: MetaPartition[] }[];
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

/** The cache key: the recipe, the build procedure and the lab key that goes into the image. */
export function recipeHash(recipe: ImageRecipe, publicKey: string): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ BUILD_VERSION, recipe, publicKey, provision: provisionScript(recipe), grub: grubDefaults(recipe) }));
  return h.digest("hex").slice(0, 16);
}

export async function findBuilt(recipe: ImageRecipe): Promise<BuiltImage | null> {
  const { publicKey } = await labKey();
  const hash = recipeHash(recipe, publicKey);
  const dir = join(imagesDir(), `${recipe.name}-${hash}`);
  const metaPath = join(dir, "meta.json");
  if (!existsSync(metaPath)) return null;
  const meta = JSON.parse(await readFile(metaPath, "utf8")) as ImageMeta;
  const disks = imageDiskFiles(recipe).map((f) => join(dir, f));
  return { name: recipe.name, hash, dir, disk: disks[0]!, disks, meta };
}

/** Build the image unless an identical recipe was built before; a cached build costs one stat. */
export async function ensureImage(recipe: ImageRecipe, opts: { progress?: Progress; rebuild?: boolean } = {}): Promise<BuiltImage> {
  if (!opts.rebuild) {
    const found = await findBuilt(recipe);
    if (found) return found;
  }
  // One build per recipe at a time: a second caller waits, then takes the first one's image.
  const { publicKey } = await labKey();
  const lock = join(imagesDir(), `.lock-${recipe.name}-${recipeHash(recipe, publicKey)}`);
  await mkdir(imagesDir(), { recursive: true });
  let waited = false;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch {
      // A lock older than an hour belongs to a build that died.
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > 60 * 60_000) await rm(lock, { recursive: true, force: true });
      if (!waited) opts.progress?.(`waiting for another build of ${recipe.name} to finish`);
      waited = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    if (waited && !opts.rebuild) {
      const found = await findBuilt(recipe);
      if (found) return found;
    }
    return await buildImage(recipe, opts.progress ?? (() => undefined));
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** The script that runs as init in the provisioning boot: LVM, GRUB, power off. */
export function provisionScript(recipe: ImageRecipe): string {
  const lvm = recipeDisks(recipe)
    .flatMap((d, di) =>
      planPartitions(d)
        .partitions.filter((p) => p.lvm)
        .map((p) => `pvcreate -ff -y ${guestDevice(di, p.index)}\nvgcreate ${p.lvm!.vg} ${guestDevice(di, p.index)}`),
    )
    .join("\n");
  return `#!/bin/sh
# vmlab provisioning: runs once as init in a direct kernel boot of the new image.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# No udev runs here: tell LVM not to wait for it.
export DM_DISABLE_UDEV=1
# Run from a copy in /run so the image keeps no trace of provisioning and
# nothing holds a file open on / when it is remounted read-only at the end.
if [ "$0" != /run/vmlab-provision ]; then
  mount -t tmpfs tmpfs /run 2>/dev/null || true
  cp "$0" /run/vmlab-provision
  exec /bin/sh /run/vmlab-provision
fi
finish() {
  set +e
  sync
  umount /boot 2>/dev/null
  mount -o remount,ro / 2>/dev/null
  echo "$1"
  echo o > /proc/sysrq-trigger
  sleep 30
}
trap 'finish VMLAB-PROVISION-FAILED' EXIT
set -ex
mount -t proc proc /proc || true
mount -t sysfs sysfs /sys || true
mount -t devtmpfs devtmpfs /dev || true
mount -o remount,rw /
mount /boot
${lvm}
# The initramfs is built here, on the guest's own hardware: MODULES=dep
# needs to see the real root device, which a build chroot cannot.
update-initramfs -u -k all
grub-install --target=i386-pc /dev/sda
update-grub
rm -f /usr/local/sbin/vmlab-provision
trap - EXIT
finish VMLAB-PROVISION-OK
`;
}

function grubDefaults(recipe: ImageRecipe): string {
  return `# Written by vmlab: GRUB and the kernel talk on the serial console.
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_TIMEOUT_STYLE=hidden
GRUB_DISTRIBUTOR=\`lsb_release -i -s 2> /dev/null || echo Debian\`
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="${recipe.kernelCmdline}"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB_DISABLE_RECOVERY=true
`;
}

async function customizeTree(tree: string, recipe: ImageRecipe, publicKey: string, parts: PlannedPartition[]): Promise<void> {
  const fstab = ["# Written by vmlab. <file system> <mount point> <type> <options> <dump> <pass>"];
  for (const p of parts) {
    if (!p.fs) continue;
    const root = p.fs.mount === "/";
    fstab.push(`LABEL=${p.fs.label}\t${p.fs.mount}\t${p.fs.type}\t${root ? "errors=remount-ro" : "defaults"}\t0\t${root ? 1 : 2}`);
  }
  // A swap area that is gone costs 20 s of boot instead of systemd's default 90 s.
  for (const p of parts) if (p.swap) fstab.push(`LABEL=${p.swap.label}\tnone\tswap\tsw,x-systemd.device-timeout=20s\t0\t0`);
  await writeFile(join(tree, "etc/fstab"), fstab.join("\n") + "\n");
  await writeFile(join(tree, "etc/hostname"), `${recipe.hostname}\n`);
  await writeFile(join(tree, "etc/hosts"), `127.0.0.1\tlocalhost\n127.0.1.1\t${recipe.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
  await mkdir(join(tree, "root/.ssh"), { recursive: true, mode: 0o700 });
  await writeFile(join(tree, "root/.ssh/authorized_keys"), `${publicKey}\n`, { mode: 0o600 });
  await writeFile(join(tree, "etc/default/grub"), grubDefaults(recipe));
  await mkdir(join(tree, "etc/systemd/network"), { recursive: true });
  await writeFile(join(tree, "etc/systemd/network/10-lab.network"), "[Match]\nName=eth0 en*\n\n[Network]\nDHCP=ipv4\n");
  await writeFile(join(tree, "etc/ssh/sshd_config.d/vmlab.conf"), "PermitRootLogin prohibit-password\nUseDNS no\n");
  await writeFile(join(tree, "usr/local/sbin/vmlab-provision"), provisionScript(recipe), { mode: 0o755 });
  for (const [k, v] of Object.entries(recipe.initramfs)) {
    await run("sed", ["-i", `s/^${k}=.*/${k}=${v}/`, join(tree, "etc/initramfs-tools/initramfs.conf")]);
  }
  if (recipe.blacklistModules.length) {
    await writeFile(join(tree, "etc/modprobe.d/vmlab.conf"), recipe.blacklistModules.map((m) => `blacklist ${m}\n`).join(""));
  }
  await run("chroot", [tree, "sh", "-c", `echo 'root:${CONSOLE_ROOT_PASSWORD}' | chpasswd`]);
  await run("systemctl", ["--root", tree, "enable", "systemd-networkd.service"]);
  if (recipe.maskUnits.length) await run("systemctl", ["--root", tree, "mask", ...recipe.maskUnits]);
}

async function buildImage(recipe: ImageRecipe, progress: Progress): Promise<BuiltImage> {
  if (process.getuid?.() !== 0) {
    throw new HostError(`building image ${recipe.name} needs root`, {
      hint: "run `sudo npx vmlab image build " + recipe.name + "` once; runs afterwards need no root",
    });
  }
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
  const tree = join(work, "tree");
  // Every disk's partitions, each tagged with its disk (0 = sda) and a key for work files.
  const planned = recipeDisks(recipe).map((spec, di) => ({ spec, di, ...planPartitions(spec) }));
  const allParts = planned.flatMap((d) => d.partitions.map((p) => ({ ...p, di: d.di, key: `${d.di}-${p.index}` })));
  const diskFiles = imageDiskFiles(recipe);
  const raws = planned.map((d) => join(work, diskFiles[d.di]!.replace(/\.qcow2$/, ".raw")));
  try {
    await timed("mmdebstrap", () =>
      run("mmdebstrap", ["--mode=root", "--variant=minbase", `--include=${recipe.packages.join(",")}`, recipe.suite, tree], {
        hint: "mmdebstrap uses the host's apt sources; check `apt-get update` works",
      }),
    );
    await timed("customize", () => customizeTree(tree, recipe, publicKey, allParts));
    const kernels = (await readdir(join(tree, "boot"))).filter((f) => f.startsWith("vmlinuz-"));
    if (kernels.length !== 1) throw new VmlabError(`expected one kernel in the image, found ${kernels.length}`, { where: join(tree, "boot") });
    const kver = kernels[0]!.slice("vmlinuz-".length);
    await timed("assemble disk", async () => {
      for (const d of planned) {
        await run("truncate", ["-s", String(d.diskBytes), raws[d.di]!]);
        if (d.spec.label === "msdos") await run("sfdisk", ["--quiet", raws[d.di]!], { input: sfdiskScript(d.partitions) });
      }
      // Filesystems from the tree, deepest mount point first, each emptied out of its parent.
      const fsParts = allParts.filter((p) => p.fs).sort((a, b) => b.fs!.mount.length - a.fs!.mount.length);
      for (const p of fsParts) {
        const src = join(work, `fs-${p.key}`);
        if (p.fs!.mount === "/") {
          await rename(tree, src);
        } else {
          await rename(join(tree, p.fs!.mount), src);
          await mkdir(join(tree, p.fs!.mount));
          // Keep the kernel and initrd reachable for the provisioning boot.
        }
        const img = join(work, `part-${p.key}.img`);
        await run("truncate", ["-s", String(p.sizeSectors * SECTOR), img]);
        await run("mke2fs", ["-q", "-F", "-t", p.fs!.type, "-L", p.fs!.label, "-d", src, img]);
        await run("dd", [`if=${img}`, `of=${raws[p.di]!}`, "bs=1M", `seek=${(p.startSector * SECTOR) / (1 << 20)}`, "conv=notrunc,sparse", "status=none"]);
        await rm(img);
      }
      for (const p of allParts.filter((x) => x.swap)) {
        const img = join(work, `part-${p.key}.img`);
        await run("truncate", ["-s", String(p.sizeSectors * SECTOR), img]);
        await run("mkswap", ["-L", p.swap!.label, img]);
        await run("dd", [`if=${img}`, `of=${raws[p.di]!}`, "bs=1M", `seek=${(p.startSector * SECTOR) / (1 << 20)}`, "conv=notrunc,sparse", "status=none"]);
        await rm(img);
      }
    });
    const bootSrc = join(work, `fs-${allParts.find((p) => p.fs?.mount === "/boot")!.key}`);
    const rootPart = allParts.find((p) => p.fs?.mount === "/")!;
    await timed("provision boot (GRUB, LVM)", async () => {
      const accel = await chooseAccel();
      const m = new Machine({
        name: "provision",
        runDir: work,
        disks: raws.map((path, i) => ({ path, format: "raw" as const, id: guestDevice(i).slice(5) })),
        accel,
        sshKey: privateKey,
        network: false,
        noReboot: true,
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
      partitions: metaParts(planned[0]!.partitions),
      ...(planned.length > 1
        ? { disks: planned.map((d) => ({ file: diskFiles[d.di]!, sizeBytes: d.diskBytes, label: d.spec.label, partitions: metaParts(d.partitions) })) }
        : {}),
      steps,
    };
    await writeFile(join(work, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
    await rm(finalDir, { recursive: true, force: true });
    await rename(work, finalDir);
    const disks = diskFiles.map((f) => join(finalDir, f));
    return { name: recipe.name, hash, dir: finalDir, disk: disks[0]!, disks, meta };
  } catch (err) {
    // Keep nothing half-built in the cache but the console log the error points at.
    for (const f of await readdir(work)) {
      if (!f.endsWith(".console.log")) await rm(join(work, f), { recursive: true, force: true });
    }
    throw err;
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
