/** Image recipes by name: images/NAME.ts, each default-exporting recipe({...}). */
import { readdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { pathToFileURL } from "node:url";
import { UsageError } from "../errors.ts";
import { projectRoot } from "../paths.ts";
import type { ImageRecipe } from "./recipe.ts";

export const imagesRecipeDir = join(projectRoot, "images");

export async function recipeNames(): Promise<string[]> {
  return (await readdir(imagesRecipeDir)).filter((f) => f.endsWith(".ts")).map((f) => basename(f, ".ts")).sort();
}

export async function loadRecipe(name: string): Promise<ImageRecipe> {
  const names = await recipeNames();
  if (!names.includes(name)) throw new UsageError(`unknown image recipe "${name}"`, { hint: `known recipes: ${names.join(", ")}` });
  const file = join(imagesRecipeDir, `${name}.ts`);
  let mod: { default?: ImageRecipe };
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (err) {
    const e = err as Error;
    throw new UsageError(`image recipe ${file} failed to load: ${e.message}`, { where: file, output: e.stack?.split("\n").slice(0, 8).join("\n"), hint: "fix the error in the file; nothing was started" });
  }
  if (!mod.default) throw new UsageError(`image recipe ${file} has no default export`, { hint: "export default recipe({...}); shared settings belong under src/" });
  return mod.default;
}
