/** Image recipes by name: images/NAME.ts in the project, else vmlab's own, each default-exporting recipe({...}). */
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { projectRoot } from "../paths.ts";
import { findNamed, listNamed } from "../project.ts";
import { importDefault } from "../util/import.ts";
import type { ImageRecipe } from "./recipe.ts";

/** vmlab's own recipes; a project's images/ comes first (src/project.ts). */
export const imagesRecipeDir = join(projectRoot, "images");

export async function recipeNames(cwd = process.cwd()): Promise<string[]> {
  return listNamed("images", [".ts"], { cwd }).map((f) => f.name);
}

export async function loadRecipe(name: string): Promise<ImageRecipe> {
  // A captured layout (src/layout/): `layout:PATH` of a layout.json.
  if (name.startsWith("layout:")) return (await import("../layout/image.ts")).layoutRecipe(name);
  const found = findNamed("images", name, [".ts"]);
  if (!found) throw new UsageError(`unknown image recipe "${name}"`, { hint: `known recipes: ${(await recipeNames()).join(", ")}` });
  return importDefault<ImageRecipe>(found.file, "image recipe");
}
