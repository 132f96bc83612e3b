/**
 * The host's disk full during an image build, on a real 64 MiB tmpfs as the
 * cache (VMLAB_CACHE): each case is a HostError (exit 2) naming the
 * directory and the bytes needed, and leaves nothing that findBuilt would
 * take for a finished image. No mmdebstrap and no guest: the Debian tree is
 * a small stand-in in the tmpfs, marked finished the way ensureTree marks
 * one, and every case fails before anything would boot.
 *
 * - no room for a Debian tree: refused before mmdebstrap starts;
 * - no room for the build (three times the tree): refused before the tree
 *   is copied;
 * - room at the start, then the disk fills up under the build (another
 *   writer takes it while the tree is copied): `cp`'s "No space left on
 *   device" becomes the same kind of error, and the partial copy is removed.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dir, type DirectoryResult } from "tmp-promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostError } from "../../src/errors.ts";
import { ensureImage, findBuilt, imagesDir, recipeHash } from "../../src/image/build.ts";
import { labKey } from "../../src/image/keys.ts";
import type { ImageRecipe } from "../../src/image/recipe.ts";
import { loadRecipe } from "../../src/image/recipes.ts";
import { treeHash, treesDir } from "../../src/image/tree.ts";
import { freeBytes, noSpaceError } from "../../src/util/space.ts";

const root = process.getuid?.() === 0;
const savedCache = process.env.VMLAB_CACHE;
let tmp: DirectoryResult;
let mnt: string;
let recipe: ImageRecipe;

beforeAll(async () => {
  if (!root) return;
  tmp = await dir({ unsafeCleanup: true, prefix: "vmlab-disk-full-" });
  mnt = join(tmp.path, "tmpfs");
  await mkdir(mnt);
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt]);
  const rescue = await loadRecipe("rescue");
  recipe = { ...rescue, name: "disk-full", hostname: "disk-full", description: "a build on a full disk (test)", disk: { ...rescue.disk, size: "2G" } };
});

afterAll(async () => {
  if (savedCache === undefined) delete process.env.VMLAB_CACHE;
  else process.env.VMLAB_CACHE = savedCache;
  if (!root) return;
  execFileSync("umount", [mnt]);
  await tmp.cleanup();
});

/** A fresh cache directory on the tmpfs, with nothing else on it. */
async function freshCache(name: string): Promise<string> {
  for (const e of await readdir(mnt)) await rm(join(mnt, e), { recursive: true, force: true });
  const cache = join(mnt, name);
  await mkdir(cache);
  process.env.VMLAB_CACHE = cache;
  return cache;
}

/** A finished tree of `bytes` for the recipe where ensureTree looks for it: the build goes straight to copying it. */
async function standInTree(bytes: number): Promise<string> {
  const d = join(treesDir(), `${recipe.suite}-${treeHash(recipe)}`);
  await mkdir(join(d, "boot"), { recursive: true });
  await writeFile(join(d, "usr.bin"), Buffer.alloc(bytes, 1));
  await writeFile(join(d, ".vmlab-tree"), "{}\n");
  return d;
}

async function failure(p: Promise<unknown>): Promise<HostError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HostError);
  const h = err as HostError;
  expect(h.exitCode).toBe(2);
  process.stderr.write(`${h.describe()}\n\n`);
  return h;
}

/** Nothing a later run would take for a finished image: findBuilt finds none, and no build directory holds anything. */
async function nothingHalfWritten(): Promise<void> {
  expect(await findBuilt(recipe, { progress: () => undefined })).toBeNull();
  const hash = recipeHash(recipe, (await labKey()).publicKey);
  expect(existsSync(join(imagesDir(), `${recipe.name}-${hash}`))).toBe(false);
  for (const e of existsSync(imagesDir()) ? await readdir(imagesDir()) : []) {
    if (e.startsWith(".build-")) expect(await readdir(join(imagesDir(), e))).toEqual([]);
  }
}

describe.skipIf(!root)("the disk fills up during an image build (a 64 MiB tmpfs as the cache)", () => {
  it("no room for the Debian tree: refused before mmdebstrap, naming the trees directory and the bytes", async () => {
    const cache = await freshCache("no-tree");
    const err = await failure(ensureImage(recipe, { progress: () => undefined }));
    expect(err.message).toMatch(new RegExp(`^not enough space in ${cache}/trees to make the Debian tree bookworm \\([0-9a-f]{16}\\): it needs about 1\\.5 GiB \\(1610612736 bytes\\), \\d+\\.\\d MiB \\(\\d+ bytes\\) free$`));
    expect(err.hint).toMatch(/free space on the file system that holds .*VMLAB_CACHE/);
    expect((await readdir(treesDir())).filter((e) => !e.startsWith(".lock-"))).toEqual([]);
    await nothingHalfWritten();
  });

  it("no room for the build: refused before the tree is copied, naming the images directory and three times the tree", async () => {
    const cache = await freshCache("no-room");
    await standInTree(30 << 20);
    const err = await failure(ensureImage(recipe, { progress: () => undefined }));
    expect(err.message).toMatch(new RegExp(`^not enough space in ${cache}/images to build image disk-full: it needs about 90\\.\\d MiB \\((\\d+) bytes\\), \\d+\\.\\d MiB \\(\\d+ bytes\\) free$`));
    expect(err.output).toMatch(/the Debian tree .* takes 30\.\d MiB/);
    await nothingHalfWritten();
  });

  it("the disk fills up while the tree is copied: cp's ENOSPC becomes the same error, the partial copy is removed", async () => {
    const cache = await freshCache("fills-up");
    await standInTree(8 << 20);
    const filler = join(cache, "another-writer");
    const progress = (m: string) => {
      // Another writer takes all but 1 MiB as the copy starts.
      if (m === "copy tree") execFileSync("fallocate", ["-l", String(Number(execFileSync("df", ["-B1", "--output=avail", mnt]).toString().split("\n")[1]) - (1 << 20)), filler]);
    };
    const err = await failure(ensureImage(recipe, { progress }));
    expect(err.message).toMatch(new RegExp(`^no space left in ${cache}/images to build image disk-full: it needs about 24\\.0 MiB \\(\\d+ bytes\\), \\d+\\.\\d MiB \\(\\d+ bytes\\) free now that the partial files are removed$`));
    expect(err.where).toMatch(/^cp -a /);
    expect(err.output).toMatch(/No space left on device/);
    await nothingHalfWritten();
    // What the build wrote is gone: the space free is what the other writer left.
    expect(await freeBytes(mnt)).toBeGreaterThanOrEqual(1 << 20);
  });

  it("a write of the lab's own that meets ENOSPC is named the same way", async () => {
    const cache = await freshCache("own-write");
    execFileSync("fallocate", ["-l", String((await freeBytes(mnt)) - 4096), join(cache, "filler")]);
    const err = await writeFile(join(cache, "meta.json"), Buffer.alloc(1 << 20)).then(() => undefined, (e: unknown) => e);
    const h = await noSpaceError(err, cache, "save meta.json", 1 << 20);
    expect(h).toBeInstanceOf(HostError);
    expect(h!.message).toMatch(new RegExp(`^no space left in ${cache} to save meta\\.json: it needs about 1\\.0 MiB \\(1048576 bytes\\), `));
    expect(h!.where).toMatch(/^write /);
    expect(await noSpaceError(new Error("something else"), cache, "x")).toBeUndefined();
  });
});
