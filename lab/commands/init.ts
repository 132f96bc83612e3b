/** `vmlab init [DIR]`: a starter project that depends on vmlab, with an example scenario, runbook and CI workflow. */
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { initProject } from "../../src/init.ts";
import { projectRoot } from "../../src/paths.ts";
import { out } from "../output.ts";

/** The version of this vmlab, for the starter project's dependency. */
export function vmlabVersion(): string {
  return (JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string }).version;
}

export async function cmdInit(dir: string | undefined, o: { vmlabSpec?: string; name?: string }): Promise<number> {
  const target = dir ?? ".";
  const written = await initProject(target, { version: vmlabVersion(), spec: o.vmlabSpec, name: o.name });
  for (const f of written) out(`created ${relative(process.cwd(), f) || f}`);
  const cd = target === "." ? "" : `cd ${target} && `;
  out("");
  out(`next: ${cd}npm install && npx vmlab run example runbooks/example.md`);
  return 0;
}
