/**
 * Before a run that includes the VM tests: build every image the suite uses,
 * side by side. They share one Debian tree, made once, and their
 * provisioning boots run in parallel instead of one by one as test files
 * first ask for them. A run of unit tests only (`vitest run test/unit`)
 * builds nothing.
 */
import { ensureImage } from "../src/image/build.ts";
import { loadRecipe, recipeNames } from "../src/image/recipes.ts";

export default async function setup(): Promise<void> {
  const filters = process.argv.slice(2).filter((a) => !a.startsWith("-") && a !== "run" && !/^--/.test(a));
  const vm = filters.length === 0 || filters.some((f) => f.includes("vm"));
  if (!vm || process.getuid?.() !== 0) return;
  const t = Date.now();
  const names = await recipeNames();
  // All settle before an error is thrown: no build is left running when the test run ends.
  const results = await Promise.allSettled(names.map(async (n) => ensureImage(await loadRecipe(n), { progress: (m) => process.stderr.write(`image ${n}: ${m}\n`) })));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  process.stderr.write(`images ${names.join(", ")} ready in ${((Date.now() - t) / 1000).toFixed(0)} s\n`);
}
