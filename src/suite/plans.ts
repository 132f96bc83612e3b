/**
 * The top-level steps of a scenario as a real run took them, kept in the
 * cache (plans/<scenario>.json) by every run that completed its procedure.
 * `vmlab sweep --plan` numbers a scenario's steps from it when the scenario
 * reads the machine between its steps, so that running it against a stand-in
 * cannot list them all (src/suite/sweep.ts planSteps).
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cacheDir } from "../paths.ts";

export interface RecordedPlan {
  scenario: string;
  steps: string[];
  recordedAt: string;
  runDir: string;
}

function planFile(scenario: string): string {
  return join(cacheDir(), "plans", `${scenario}.json`);
}

export async function recordPlan(plan: RecordedPlan): Promise<void> {
  const file = planFile(plan.scenario);
  await mkdir(join(cacheDir(), "plans"), { recursive: true });
  await writeFile(`${file}.${process.pid}`, JSON.stringify(plan, null, 2) + "\n");
  await rename(`${file}.${process.pid}`, file);
}

export async function readPlan(scenario: string): Promise<RecordedPlan | undefined> {
  const file = planFile(scenario);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(await readFile(file, "utf8")) as RecordedPlan;
  } catch {
    return undefined;
  }
}
