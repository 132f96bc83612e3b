/**
 * Before a run that includes the VM tests: start building every image the
 * suite uses, side by side, and let the tests begin. The images share one
 * Debian tree, made once, and their provisioning boots run in parallel;
 * meanwhile the unit tests run first (test/sequencer.ts), and the first VM
 * test waits for the build it needs (the image cache's lock). A run of unit
 * tests only (`vitest run test/unit`) builds nothing.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { ensureImage } from "../src/image/build.ts";
import { loadRecipe, recipeNames } from "../src/image/recipes.ts";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // The run's core slots (test/slots.ts), removed with the run.
  const slotDir = await mkdtemp(join(tmpdir(), "vmlab-test-slots-"));
  project.provide("slotDir", slotDir);
  const removeSlots = () => rm(slotDir, { recursive: true, force: true });
  const filters = process.argv.slice(2).filter((a) => !a.startsWith("-") && a !== "run");
  const vm = filters.length === 0 || filters.some((f) => f.includes("vm"));
  if (!vm || process.getuid?.() !== 0) return removeSlots;
  const t = Date.now();
  const names = await recipeNames();
  // All settle before the run ends: no build is left running behind it. A
  // failure shows in the VM tests that need the image.
  const building = Promise.allSettled(names.map(async (n) => ensureImage(await loadRecipe(n), { progress: (m) => process.stderr.write(`image ${n}: ${m}\n`) }))).then((results) => {
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    process.stderr.write(failed.length ? `image build failed: ${failed.map((f) => (f.reason as Error).message).join("; ")}\n` : `images ${names.join(", ")} ready in ${((Date.now() - t) / 1000).toFixed(0)} s\n`);
  });
  return async () => {
    await building;
    await removeSlots();
  };
}
