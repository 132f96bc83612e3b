/** Image recipes by name: images/NAME.ts, each default-exporting recipe({...}). */
import { readdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { UsageError } from "../errors.ts";
import { projectRoot } from "../paths.ts";
import { importDefault } from "../util/import.ts";
import type { ImageRecipe } from "./recipe.ts";

export const imagesRecipeDir = join(projectRoot, "images");

export async function recipeNames(): Promise<string[]> {
  return (await readdir(imagesRecipeDir)).filter((f) => f.endsWith(".ts")).map((f) => basename(f, ".ts")).sort();
}

export async function loadRecipe(name: string): Promise<ImageRecipe> {
  const names = await recipeNames();
  if (!names.includes(name)) throw new UsageError(`unknown image recipe "${name}"`, { hint: `known recipes: ${names.join(", ")}` });
  return importDefault<ImageRecipe>(join(imagesRecipeDir, `${name}.ts`), "image recipe");
}
