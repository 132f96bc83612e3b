import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { UsageError } from "../errors.ts";
import { projectRoot } from "../paths.ts";
import { describeDirs, findNamed, listNamed, type NamedFile } from "../project.ts";
import { importDefault } from "../util/import.ts";
import type { Scenario } from "./types.ts";
import { expectationProblems } from "../verdict/expect.ts";
import { loadRunbook } from "../runbook/scenario.ts";

/** vmlab's own scenarios and runbooks (a project's own come first: src/project.ts). */
export const scenariosDir = join(projectRoot, "scenarios");
export const runbooksDir = join(projectRoot, "runbooks");

/** Every scenario file by name: the project's scenarios/NAME.ts, then vmlab's; the project's wins a shared name. */
export async function scenarioFiles(cwd = process.cwd()): Promise<NamedFile[]> {
  return listNamed("scenarios", [".ts"], { cwd });
}

export async function scenarioNames(cwd = process.cwd()): Promise<string[]> {
  return (await scenarioFiles(cwd)).map((f) => f.name);
}

/** A scenario by name (scenarios/NAME.ts in the project, else vmlab's) or by path to a file. */
export async function loadScenario(nameOrFile: string): Promise<Scenario> {
  const looksLikeFile = nameOrFile.includes("/") || /\.(ts|js|mjs|md|markdown|sh|bash)$/.test(nameOrFile);
  if (looksLikeFile) {
    const file = resolve(nameOrFile);
    if (!existsSync(file)) throw new UsageError(`${/\.(ts|js|mjs)$/.test(file) ? "scenario" : "runbook"} file ${file} does not exist`);
    // A runbook document (Markdown or shell) is a scenario too; anything else that is not code is refused there.
    if (!/\.(ts|js|mjs)$/.test(file)) return validateScenario(await loadRunbook(file), file);
    return validateScenario(await importDefault<Scenario>(file, "scenario file"), file);
  }
  const found = findNamed("scenarios", nameOrFile, [".ts"]);
  if (!found) {
    const names = await scenarioNames();
    const near = names.filter((n) => n.includes(nameOrFile) || nameOrFile.includes(n.split("-")[0]!));
    throw new UsageError(`unknown scenario "${nameOrFile}"`, {
      where: describeDirs("scenarios"),
      hint: `${near.length ? `did you mean ${near.join(", ")}? ` : ""}\`vmlab list\` shows all ${names.length} scenarios`,
    });
  }
  return validateScenario(await importDefault<Scenario>(found.file, "scenario"), nameOrFile);
}

export function validateScenario(s: Scenario, where: string): Scenario {
  const problems: string[] = [];
  if (!s || typeof s !== "object") problems.push("default export is not a scenario object");
  else {
    if (typeof s.name !== "string" || !/^[a-z0-9][a-z0-9-]*$/.test(s.name)) problems.push("name must be lower-case words joined by -");
    if (typeof s.description !== "string" || !s.description) problems.push("description is missing");
    if (typeof s.image !== "string" || !s.image) problems.push("image is missing");
    if (typeof s.run !== "function") problems.push("run must be a function");
    if (s.kind !== undefined && s.kind !== "rehearsal" && s.kind !== "twin") problems.push(`kind must be "rehearsal" or "twin", not ${JSON.stringify(s.kind)}`);
    problems.push(...expectationProblems(s.kind ?? "rehearsal", s.expect));
    if (s.variantOf !== undefined) {
      const v = s.variantOf as Partial<NonNullable<Scenario["variantOf"]>>;
      if (s.kind !== "twin") problems.push("variantOf is for a twin: a variant of its good path");
      if (typeof v?.scenario !== "string" || !v.scenario) problems.push("variantOf.scenario must name the good path");
      else if (v.scenario === s.name) problems.push("variantOf.scenario names the twin itself");
      if (typeof v?.fromStep !== "string" || !v.fromStep) problems.push("variantOf.fromStep must name the good path's first step the twin does not share");
      if (s.fault) problems.push("a variant cannot also declare a fault");
    }
  }
  if (problems.length) throw new UsageError(`invalid scenario in ${where}`, { output: problems.join("\n"), hint: "see scenarios/root-to-lvm.ts (a rehearsal) and scenarios/missing-initrd.ts (a twin) for complete examples" });
  return s;
}

// Recipe loading lives with the images; these names stay for callers of the registry.
export { imagesRecipeDir, loadRecipe, recipeNames } from "../image/recipes.ts";
