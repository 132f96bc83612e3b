/**
 * Cache entries verified before use (src/util/manifest.ts), on real files:
 * small files and qcow2 disks made by qemu-img in a temporary directory. An
 * intact entry costs a stat per file and no hashing (counted by hashStats);
 * a truncated file is named with both sizes; a same-size byte flip written
 * in place is caught by its hash; a touched but unchanged file is hashed
 * once, accepted, and its new stamp recorded; no manifest means unverified.
 * findBuilt() on a fake image directory in a private VMLAB_CACHE returns the
 * intact image and refuses, names and removes a damaged one; the warm-state
 * lookup (ensureWarmState) does the same with a saved state. No guest is
 * started: the fake image's disk does not exist, so a save would stop at
 * its first qemu-img.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir, open, readFile, readdir, truncate, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dir, type DirectoryResult } from "tmp-promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createImage } from "../../src/disk/qemu-img.ts";
import { findBuilt, imagesDir, recipeHash } from "../../src/image/build.ts";
import { labKey } from "../../src/image/keys.ts";
import { loadRecipe } from "../../src/image/recipes.ts";
import { DEFAULT_PROFILE, ensureWarmState, statesDir, warmKey } from "../../src/vm/warm.ts";
import type { AccelChoice } from "../../src/host/kvm.ts";
import type { BuiltImage } from "../../src/image/build.ts";
import { checkCacheEntry, hashStats, manifestId, MANIFEST, verifyManifest, writeManifest, type Manifest } from "../../src/util/manifest.ts";

let tmp: DirectoryResult;
const savedCache = process.env.VMLAB_CACHE;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true, prefix: "vmlab-verify-" });
  process.env.VMLAB_CACHE = join(tmp.path, "cache");
});
afterAll(async () => {
  if (savedCache === undefined) delete process.env.VMLAB_CACHE;
  else process.env.VMLAB_CACHE = savedCache;
  await tmp.cleanup();
});

let n = 0;
/** A finished entry: a 64 MiB qcow2 with some data in it, a small file, meta.json in a subdirectory too; read-only like the cache's. */
async function entry(): Promise<string> {
  const d = join(tmp.path, `entry-${n++}`);
  await mkdir(join(d, "sub"), { recursive: true });
  await createImage(join(d, "disk.qcow2"), { format: "qcow2", size: "64M" });
  const f = await open(join(d, "disk.qcow2"), "a");
  await f.write(Buffer.alloc(256 * 1024, 7));
  await f.close();
  await writeFile(join(d, "meta.json"), JSON.stringify({ name: "test" }) + "\n");
  await writeFile(join(d, "sub", "state.bin"), "running state\n");
  for (const x of ["disk.qcow2", "meta.json", "sub/state.bin"]) await chmod(join(d, x), 0o444);
  await writeManifest(d);
  return d;
}

const hashed = () => hashStats.files;

/** Overwrite one byte in place with a write(2): same size, new content, new ctime. */
async function flipByte(path: string, at: number): Promise<void> {
  const f = await open(path, "r+");
  const b = Buffer.alloc(1);
  await f.read(b, 0, 1, at);
  b[0] = b[0]! ^ 0xff;
  await f.write(b, 0, 1, at);
  await f.close();
}

describe("a cache entry's manifest", () => {
  it("lists every file with its sha256, size and stat stamp", async () => {
    const d = await entry();
    const m = JSON.parse(await readFile(join(d, MANIFEST), "utf8")) as Manifest;
    expect(Object.keys(m.files)).toEqual(["disk.qcow2", "meta.json", "sub/state.bin"]);
    expect(m.files["sub/state.bin"]).toMatchObject({ size: 14, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(m.files["disk.qcow2"]!.stamp).toMatchObject({ ino: expect.stringMatching(/^\d+$/), ctimeNs: expect.stringMatching(/^\d+$/) });
  });

  it("an intact entry passes on stats alone: nothing is hashed", async () => {
    const d = await entry();
    const before = hashed();
    for (let i = 0; i < 3; i++) expect(await verifyManifest(d)).toEqual({ state: "ok", rehashed: [] });
    expect(hashed()).toBe(before);
  });

  it("a truncated disk is damaged, named with its size and the manifest's", async () => {
    const d = await entry();
    const m = JSON.parse(await readFile(join(d, MANIFEST), "utf8")) as Manifest;
    await truncate(join(d, "disk.qcow2"), 65536);
    expect(await verifyManifest(d)).toEqual({ state: "damaged", problems: [`disk.qcow2 is 65536 bytes, its manifest says ${m.files["disk.qcow2"]!.size}`] });
  });

  it("a byte flipped in place (same size, written) is caught by its hash", async () => {
    const d = await entry();
    await flipByte(join(d, "disk.qcow2"), 100_000);
    const before = hashed();
    const v = await verifyManifest(d);
    expect(hashed()).toBe(before + 1);
    expect(v.state).toBe("damaged");
    expect(v.state === "damaged" && v.problems).toEqual([expect.stringMatching(/^disk\.qcow2 has sha256 [0-9a-f]{12}…, its manifest says [0-9a-f]{12}…$/)]);
  });

  it("a touched but unchanged file is hashed once, accepted, and its new stamp recorded", async () => {
    const d = await entry();
    await utimes(join(d, "disk.qcow2"), new Date(), new Date());
    const before = hashed();
    expect(await verifyManifest(d)).toEqual({ state: "ok", rehashed: ["disk.qcow2"] });
    expect(hashed()).toBe(before + 1);
    // The next check trusts the new stamp.
    expect(await verifyManifest(d)).toEqual({ state: "ok", rehashed: [] });
    expect(hashed()).toBe(before + 1);
  });

  it("a missing file, a missing manifest and an unreadable manifest: damaged, unverified, damaged", async () => {
    const a = await entry();
    await (await import("node:fs/promises")).rm(join(a, "sub", "state.bin"));
    expect(await verifyManifest(a)).toEqual({ state: "damaged", problems: ["sub/state.bin is missing"] });
    const b = await entry();
    await (await import("node:fs/promises")).rm(join(b, MANIFEST));
    expect(await verifyManifest(b)).toEqual({ state: "unverified" });
    const c = await entry();
    await writeFile(join(c, MANIFEST), '{"version": 1, "files": {"disk.qcow2": ');
    const v = await verifyManifest(c);
    expect(v.state === "damaged" && v.problems[0]).toMatch(/^manifest\.json cannot be read/);
  });

  it("identifies the build: the same files give the same id, other content another", async () => {
    const a = await entry();
    const id = await manifestId(a);
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    await writeFile(join(a, "meta.json"), "{}\n");
    await writeManifest(a);
    expect(await manifestId(a)).not.toBe(id);
    expect(await manifestId(join(tmp.path, "nowhere"))).toBeUndefined();
  });

  it("checkCacheEntry names what it found, removes a damaged entry, and keeps an intact one", async () => {
    const good = await entry();
    const said: string[] = [];
    const o = { what: "cached image test (abc123)", redo: "building it again", say: (m: string) => void said.push(m) };
    expect(await checkCacheEntry(good, o)).toBe(true);
    expect(said).toEqual([]);
    const bad = await entry();
    const size = (JSON.parse(await readFile(join(bad, MANIFEST), "utf8")) as Manifest).files["disk.qcow2"]!.size;
    await truncate(join(bad, "disk.qcow2"), 1048576);
    expect(await checkCacheEntry(bad, o)).toBe(false);
    expect(said).toEqual([`cached image test (abc123) is damaged: disk.qcow2 is 1048576 bytes, its manifest says ${size}; building it again`]);
    expect(existsSync(bad)).toBe(false);
    // Nothing is left beside it either: it was renamed aside, then removed.
    expect((await readdir(tmp.path)).filter((f) => f.startsWith(".build-damaged-"))).toEqual([]);
    expect(await checkCacheEntry(join(tmp.path, "never-built"), o)).toBe(false);
    expect(said).toHaveLength(1);
  });
});

describe("findBuilt on the image cache", () => {
  /** A fake build of the rescue recipe where findBuilt looks for it: its disk, meta.json, its manifest. */
  async function fakeImage(withManifest = true) {
    const recipe = await loadRecipe("rescue");
    const hash = recipeHash(recipe, (await labKey()).publicKey);
    const d = join(imagesDir(), `rescue-${hash}`);
    await mkdir(d, { recursive: true });
    await createImage(join(d, "disk.qcow2"), { format: "qcow2", size: "32M", overwrite: true });
    await writeFile(join(d, "meta.json"), JSON.stringify({ name: "rescue", hash, partitions: [], steps: [] }) + "\n");
    await chmod(join(d, "disk.qcow2"), 0o444);
    if (withManifest) await writeManifest(d);
    return { recipe, hash, dir: d };
  }

  it("returns the intact image without hashing it", async () => {
    const { recipe, hash, dir: d } = await fakeImage();
    const before = hashed();
    const found = await findBuilt(recipe, { progress: () => undefined });
    expect(found).toMatchObject({ name: "rescue", hash, dir: d, disk: join(d, "disk.qcow2") });
    expect(hashed()).toBe(before);
  });

  it("returns null for a truncated disk, names it, and removes the entry", async () => {
    const { recipe, hash, dir: d } = await fakeImage();
    await truncate(join(d, "disk.qcow2"), 4096);
    const said: string[] = [];
    expect(await findBuilt(recipe, { progress: (m) => said.push(m) })).toBeNull();
    expect(said).toEqual([expect.stringMatching(new RegExp(`^cached image rescue \\(${hash}\\) is damaged: disk\\.qcow2 is 4096 bytes, its manifest says \\d+; building it again$`))]);
    expect(existsSync(d)).toBe(false);
  });

  it("treats an image without a manifest (an older vmlab's) as unverified: null, named, removed", async () => {
    const { recipe, hash, dir: d } = await fakeImage(false);
    const said: string[] = [];
    expect(await findBuilt(recipe, { progress: (m) => said.push(m) })).toBeNull();
    expect(said).toEqual([`cached image rescue (${hash}) has no manifest.json (made by an older vmlab, or never finished), so it cannot be verified; building it again`]);
    expect(existsSync(d)).toBe(false);
  });
});

describe("the warm-state lookup", () => {
  const accel: AccelChoice = { accel: "tcg", cpu: "qemu64", reason: "test", checks: [] };

  /** A fake image (its disk does not exist: nothing can boot it) and a saved state for it, as a save leaves it. */
  async function fakeState() {
    const imageDir = join(tmp.path, `image-${n++}`);
    await mkdir(imageDir, { recursive: true });
    // Each fake image a build of its own: its manifest, so its states' keys, differ.
    await writeFile(join(imageDir, "meta.json"), JSON.stringify({ build: n }) + "\n");
    await writeManifest(imageDir);
    const image = { name: "fake", hash: "0123456789abcdef", dir: imageDir, disk: join(imageDir, "disk.qcow2"), disks: [join(imageDir, "disk.qcow2")], meta: {} } as unknown as BuiltImage;
    const key = await warmKey(image, DEFAULT_PROFILE, accel);
    const d = join(statesDir(), `fake-${key}`);
    await mkdir(d, { recursive: true });
    await createImage(join(d, "sda.qcow2"), { format: "qcow2", size: "32M" });
    await writeFile(join(d, "state.bin"), Buffer.alloc(300_000, 3));
    await writeFile(join(d, "meta.json"), JSON.stringify({ image: "fake", imageHash: image.hash, profile: DEFAULT_PROFILE }) + "\n");
    await writeManifest(d);
    return { image, key, dir: d };
  }

  it("resumes an intact state without hashing it", async () => {
    const { image, dir: d } = await fakeState();
    const before = hashed();
    const warm = await ensureWarmState(image, DEFAULT_PROFILE, accel, "/nonexistent/key");
    expect(warm).toMatchObject({ dir: d, disk: join(d, "sda.qcow2"), state: join(d, "state.bin") });
    expect(hashed()).toBe(before);
  });

  it("never resumes a state whose state.bin was truncated: named, removed, saved again", async () => {
    const { image, key, dir: d } = await fakeState();
    await truncate(join(d, "state.bin"), 1000);
    const said: string[] = [];
    // Saving it again stops at once: the fake image has no disk to boot.
    await expect(ensureWarmState(image, DEFAULT_PROFILE, accel, "/nonexistent/key", (m) => said.push(m))).rejects.toThrow(/not found/);
    expect(said[0]).toBe(`saved warm state of fake (${key}) is damaged: state.bin is 1000 bytes, its manifest says 300000; saving it again`);
    expect(existsSync(d)).toBe(false);
  });

  it("keys a state by the image's build: a rebuilt image (another manifest) gets another state", async () => {
    const { image, key } = await fakeState();
    await writeFile(join(image.dir, "meta.json"), '{"rebuilt": true}\n');
    await writeManifest(image.dir);
    expect(await warmKey(image, DEFAULT_PROFILE, accel)).not.toBe(key);
  });
});
