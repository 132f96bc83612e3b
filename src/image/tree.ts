/**
 * The Debian trees images are made from: one `mmdebstrap` per suite and
 * package set, cached by its own hash and shared by every recipe that asks
 * for the same packages. A recipe copies the tree (`cp -a`, so ownership,
 * modes, hard links and extended attributes come along) and customises its
 * copy; the cached tree is never changed.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cacheDir } from "../paths.ts";
import { run } from "../util/proc.ts";
import { withDirLock } from "../util/lock.ts";
import { noSpaceError, requireSpace } from "../util/space.ts";

/**
 * Image builds run as root, at a higher priority than whatever starts beside
 * them (the test suite's unit tests run while its images build): mmdebstrap
 * and the provisioning boots get their core.
 */
export const BUILD_NICE = -10;

/**
 * Room a tree needs while mmdebstrap makes it: the images' package set
 * takes 750-830 MiB, and the .deb files are downloaded into it first.
 */
export const TREE_BYTES = 1536 * 1024 * 1024;

/** Bump when the way a tree is made changes. */
const TREE_VERSION = 2;

/**
 * Debian builds a MODULES=most initramfs when the kernel is installed and
 * again when initramfs-tools' trigger runs: two builds of about 75 s each
 * on this kind of host, of which the images keep none (each image builds
 * its own on its own hardware, src/image/customize.ts). update-initramfs is
 * diverted to a no-op while packages are installed, then put back and run
 * once, with lz4, for the direct kernel boots that start from the tree's
 * initramfs (the provisioning boot, the rescue system). Measured:
 * mmdebstrap of the images' package set 241 s -> 141 s.
 */
const ESSENTIAL_HOOK =
  'chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && printf "#!/bin/sh\\nexit 0\\n" > "$1/usr/sbin/update-initramfs" && chmod 755 "$1/usr/sbin/update-initramfs"';
const CUSTOMIZE_HOOK = [
  'rm "$1/usr/sbin/update-initramfs"',
  'chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs',
  'echo COMPRESS=lz4 > "$1/etc/initramfs-tools/conf.d/vmlab-tree"',
  'for k in "$1"/lib/modules/*; do [ -d "$k" ] || continue; chroot "$1" update-initramfs -c -k "${k##*/}" || exit 1; done',
  'rm "$1/etc/initramfs-tools/conf.d/vmlab-tree"',
].join(" && ");

export interface TreeSpec {
  suite: string;
  packages: string[];
}

export function treesDir(): string {
  return join(cacheDir(), "trees");
}

/** The cache key of a tree: the suite and the package set, in any order. */
export function treeHash(spec: TreeSpec): string {
  const packages = [...new Set(spec.packages)].sort();
  return createHash("sha256").update(JSON.stringify({ TREE_VERSION, suite: spec.suite, packages })).digest("hex").slice(0, 16);
}

/** The cached tree for this suite and package set, made once by mmdebstrap. Returns its directory and whether it was made now. */
export async function ensureTree(spec: TreeSpec, progress: (m: string) => void = () => undefined): Promise<{ dir: string; hash: string; built: boolean }> {
  const hash = treeHash(spec);
  const dir = join(treesDir(), `${spec.suite}-${hash}`);
  const done = join(dir, ".vmlab-tree");
  if (existsSync(done)) return { dir, hash, built: false };
  return withDirLock(
    join(treesDir(), `.lock-${spec.suite}-${hash}`),
    async () => {
      if (existsSync(done)) return { dir, hash, built: false };
      const work = join(treesDir(), `.build-${spec.suite}-${hash}-${process.pid}`);
      await removeBuildDir(work);
      await mkdir(treesDir(), { recursive: true });
      const what = `make the Debian tree ${spec.suite} (${hash})`;
      await requireSpace(treesDir(), TREE_BYTES, what, `mmdebstrap of ${spec.packages.length} packages; the trees made so far took 750-830 MiB, and the packages are downloaded into the tree first`);
      progress(`mmdebstrap ${spec.suite} (shared tree ${hash})`);
      try {
        const include = `--include=${[...new Set(spec.packages)].sort().join(",")}`;
        const hooks = spec.packages.includes("initramfs-tools") ? [`--essential-hook=${ESSENTIAL_HOOK}`, `--customize-hook=${CUSTOMIZE_HOOK}`] : [];
        // At the image build's priority (src/image/build.ts): nice execs mmdebstrap.
        await run("nice", ["-n", String(BUILD_NICE), "mmdebstrap", "--mode=root", "--variant=minbase", include, ...hooks, spec.suite, work], {
          hint: "mmdebstrap uses the host's apt sources; check `apt-get update` works",
        });
        await writeFile(join(work, ".vmlab-tree"), JSON.stringify({ ...spec, hash, builtAt: new Date().toISOString() }) + "\n");
        await rm(dir, { recursive: true, force: true });
        await rename(work, dir);
      } catch (err) {
        await removeBuildDir(work);
        throw (await noSpaceError(err, treesDir(), what, TREE_BYTES)) ?? err;
      }
      return { dir, hash, built: true };
    },
    { onWait: () => progress(`waiting for another mmdebstrap of ${spec.suite} (tree ${hash})`) },
  );
}

/**
 * Remove a tree build directory that mmdebstrap may have left with
 * filesystems mounted in it (/proc, /sys, /dev/pts when it was killed):
 * unmount those first, and never cross into another filesystem.
 */
export async function removeBuildDir(work: string): Promise<void> {
  if (!existsSync(work)) return;
  const mounts = (await readFile("/proc/mounts", "utf8").catch(() => ""))
    .split("\n")
    .map((l) => l.split(" ")[1]?.replace(/\\040/g, " "))
    .filter((m): m is string => Boolean(m) && (m === work || m!.startsWith(`${work}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run("umount", ["-l", m]).catch(() => undefined);
  await run("rm", ["-rf", "--one-file-system", work]);
}

/** A private copy of a cached tree at `to`, without the cache's marker file. */
export async function copyTree(dir: string, to: string): Promise<void> {
  await run("cp", ["-a", "--reflink=auto", dir, to]);
  await rm(join(to, ".vmlab-tree"), { force: true });
}
