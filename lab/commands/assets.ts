/** Images, disks and reports: `vmlab image`, `vmlab disk`, `vmlab report merge`, `vmlab report html`. */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import ora from "ora";
import { createImage, imageInfo } from "../../src/disk/qemu-img.ts";
import { formatSize, parseSize } from "../../src/disk/size.ts";
import { UsageError } from "../../src/errors.ts";
import { ensureImage, listImages, recipeHash, removeImage } from "../../src/image/build.ts";
import { labKey } from "../../src/image/keys.ts";
import { loadRecipe, recipeNames } from "../../src/image/recipes.ts";
import { mergeReports, summaryText } from "../../src/suite/merge.ts";
import { renderHtmlReports } from "../../src/report/files.ts";
import { out } from "../output.ts";

export async function cmdImageBuild(names: string[], o: { rebuild?: boolean; layout?: string }): Promise<number> {
  if (o.layout !== undefined && names.length) throw new UsageError("give recipes or --layout, not both");
  const all = o.layout !== undefined ? [`layout:${resolve(o.layout)}`] : names.length ? names : await recipeNames();
  const recipes = await Promise.all(all.map((n) => loadRecipe(n)));
  if (recipes.length === 1) {
    const n = all[0]!;
    const spinner = ora({ text: `image ${n}`, isEnabled: Boolean(process.stderr.isTTY) && !process.env.CI }).start();
    const t = Date.now();
    const img = await ensureImage(recipes[0]!, { rebuild: o.rebuild, progress: (m) => (spinner.text = `image ${n}: ${m}`) });
    spinner.succeed(`image ${n} ${img.hash} ready in ${((Date.now() - t) / 1000).toFixed(1)} s: ${img.disk}`);
    return 0;
  }
  // Several at once: they share one Debian tree (built once, the others wait
  // for it) and their provisioning boots run side by side.
  const t = Date.now();
  // All settle before an error is reported: no build is left running behind it.
  const results = await Promise.allSettled(
    recipes.map(async (r) => {
      const img = await ensureImage(r, { rebuild: o.rebuild, progress: (m) => process.stderr.write(`image ${r.name}: ${m}\n`) });
      out(`image ${r.name} ${img.hash} ready in ${((Date.now() - t) / 1000).toFixed(1)} s: ${img.disk}`);
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return 0;
}

export async function cmdImageList(): Promise<number> {
  const images = await listImages();
  if (images.length === 0) out("no cached images; `vmlab image build debian12-bios` builds one");
  for (const m of images) out(`${m.name.padEnd(20)} ${m.hash}  built ${m.builtAt}  kernel ${m.kernel}  ${m.description}`);
  return 0;
}

/** The cache key of built images: the recipe, the build procedure and the lab key. */
export async function cmdImageHash(names: string[], o: { key?: boolean }): Promise<number> {
  const { publicKey } = await labKey();
  const lines: string[] = [];
  for (const n of names.length ? names : await recipeNames()) lines.push(`${n} ${recipeHash(await loadRecipe(n), publicKey)}`);
  if (o.key) out(`vmlab-images-${createHash("sha256").update(lines.join("\n")).digest("hex").slice(0, 16)}`);
  else for (const l of lines) out(l);
  return 0;
}

export async function cmdImageRm(names: string[]): Promise<number> {
  if (names.length === 0) throw new UsageError("vmlab image rm needs a recipe name");
  for (const n of names) out(`removed ${await removeImage(n)} build(s) of ${n}`);
  return 0;
}

export async function cmdDiskCreate(path: string, size: string, o: { format?: string }): Promise<number> {
  const format = o.format ?? (path.endsWith(".raw") || path.endsWith(".img") ? "raw" : "qcow2");
  if (format !== "raw" && format !== "qcow2") throw new UsageError(`unknown disk format "${format}"`, { hint: "use --format qcow2 or --format raw" });
  await createImage(path, { format, size });
  out(`created ${format} disk ${path} of ${formatSize(parseSize(size))}`);
  return 0;
}

export async function cmdDiskInfo(path: string): Promise<number> {
  const i = await imageInfo(path);
  out(`${i.filename}: ${i.format}, virtual ${formatSize(i.virtualSize)} (${i.virtualSize} bytes), on disk ${i.actualSize} bytes`);
  if (i.backingFilename) out(`  backing file: ${i.backingFilename} (${i.backingFormat ?? "?"})`);
  for (const sn of i.snapshots) out(`  snapshot ${sn.id} ${sn.name}`);
  return 0;
}

export async function cmdReportMerge(dirs: string[], o: { out?: string }): Promise<number> {
  const outDir = o.out ?? "reports-merged";
  const summary = await mergeReports(dirs, outDir);
  process.stdout.write(summaryText(summary));
  out(`merged into ${outDir}: junit.xml, summary.txt, summary.json, durations.json, index.html${summary.failed ? ", failures/" : ""}`);
  return summary.failed ? 1 : 0;
}

export async function cmdReportHtml(dirs: string[]): Promise<number> {
  for (const f of await renderHtmlReports(dirs)) out(f);
  return 0;
}
