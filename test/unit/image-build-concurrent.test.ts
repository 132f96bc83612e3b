/**
 * Two builds of one recipe at once, by two node processes against one image
 * cache: one builds, the other waits on the cache's lock and takes the first
 * one's image (same directory, one build). No guest: the recipe is the
 * rescue system's on a smaller disk, booted directly only, so it has no
 * provisioning boot (needsProvisioning). Image builds need root.
 *
 * The cache is a private VMLAB_CACHE whose `trees` is the suite's own trees
 * directory: the Debian tree of the images' package set, made once by the
 * suite (test/global-setup.ts) or by the first build that needs it, is
 * shared, and no test image is left in the suite's image cache.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureImage, imagesDir } from "../../src/image/build.ts";
import type { ImageRecipe } from "../../src/image/recipe.ts";
import { loadRecipe } from "../../src/image/recipes.ts";
import { treesDir } from "../../src/image/tree.ts";
import { cacheDir, projectRoot } from "../../src/paths.ts";
import { hashStats, verifyManifest } from "../../src/util/manifest.ts";

const root = process.getuid?.() === 0;
const savedCache = process.env.VMLAB_CACHE;
let cache: string;
let recipe: ImageRecipe;

beforeAll(async () => {
  if (!root) return;
  const suiteTrees = treesDir();
  await mkdir(suiteTrees, { recursive: true });
  cache = await mkdtemp(join(tmpdir(), "vmlab-concurrent-build-"));
  await symlink(suiteTrees, join(cache, "trees"));
  process.env.VMLAB_CACHE = cache;
  const rescue = await loadRecipe("rescue");
  recipe = { ...rescue, name: "concurrent-build", hostname: "concurrent-build", description: "two builds at once (test)", disk: { ...rescue.disk, size: "2G" } };
});

afterAll(async () => {
  if (savedCache === undefined) delete process.env.VMLAB_CACHE;
  else process.env.VMLAB_CACHE = savedCache;
  // rm removes the trees link, not the suite's trees.
  if (cache) await rm(cache, { recursive: true, force: true });
});

interface Outcome {
  code: number | null;
  dir?: string;
  builtAt?: string;
  said: string[];
  err: string;
}

/** One `ensureImage` of the recipe in its own node process, with the private cache. */
function build(): Promise<Outcome> {
  const script = `
    import { ensureImage } from "./src/image/build.ts";
    const said = [];
    const img = await ensureImage(JSON.parse(process.env.TEST_RECIPE), { progress: (m) => said.push(m) });
    console.log(JSON.stringify({ dir: img.dir, builtAt: img.meta.builtAt, said }));`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: projectRoot,
      env: { ...process.env, VMLAB_CACHE: cache, TEST_RECIPE: JSON.stringify(recipe) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += String(d)));
    child.stderr.on("data", (d) => (err += String(d)));
    child.on("exit", (code) => {
      const last = out.trim().split("\n").pop() ?? "";
      try {
        resolve({ code, err, ...(JSON.parse(last) as Omit<Outcome, "code" | "err">) });
      } catch {
        resolve({ code, err: `${err}\n${out}`, said: [] });
      }
    });
  });
}

describe.skipIf(!root)("two builds of one recipe at once", () => {
  it("one builds, the other waits and takes its image", async () => {
    const t = Date.now();
    const [a, b] = await Promise.all([build(), build()]);
    process.stderr.write(`two builds of ${recipe.name} at once: ${((Date.now() - t) / 1000).toFixed(0)} s\n`);
    expect([a.code, b.code], `${a.err}\n${b.err}`).toEqual([0, 0]);
    // The same image: one directory, one build.
    expect(a.dir).toBe(b.dir);
    expect(a.builtAt).toBe(b.builtAt);
    const [builder, waiter] = a.said.includes("copy tree") ? [a, b] : [b, a];
    expect(builder.said).toContain("copy tree");
    expect(builder.said).not.toContain(`waiting for another build of ${recipe.name} to finish`);
    expect(waiter.said).toEqual([`waiting for another build of ${recipe.name} to finish`]);
    // Finished whole: its manifest checks out, and nothing half-built is left beside it.
    expect(await verifyManifest(a.dir!)).toEqual({ state: "ok", rehashed: [] });
    const entries = await readdir(imagesDir());
    expect(entries.filter((e) => !e.startsWith("."))).toEqual([basename(a.dir!)]);
    expect(entries.filter((e) => e.startsWith(".build-"))).toEqual([]);
    expect(existsSync(join(a.dir!, "vmlinuz")) && existsSync(join(a.dir!, "initrd.img"))).toBe(true);
    // And a third caller takes it from the cache on stats alone.
    const before = hashStats.files;
    const said: string[] = [];
    expect((await ensureImage(recipe, { progress: (m) => said.push(m) })).meta.builtAt).toBe(a.builtAt);
    expect(said).toEqual([]);
    expect(hashStats.files).toBe(before);
    expect(cacheDir()).toBe(cache);
  });
});
