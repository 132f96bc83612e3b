/**
 * `vmlab init`: a starter project whose files are valid (the scenario loads
 * and validates through the registry, the runbook parses, the package
 * depends on this vmlab), and which never overwrites a file.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { dir, type DirectoryResult } from "tmp-promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packageName, starterFiles, vmlabSpec } from "../../src/init.ts";
import { projectRoot } from "../../src/paths.ts";
import { readRunbook } from "../../src/runbook/scenario.ts";
import { loadScenario, validateScenario } from "../../src/scenario/registry.ts";
import { importDefault } from "../../src/util/import.ts";
import type { Scenario } from "../../src/scenario/types.ts";

let tmp: DirectoryResult;
const version = (JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string }).version;
const cli = (args: string[], cwd: string) => execa("node", [join(projectRoot, "lab/vmlab.mjs"), ...args], { cwd, reject: false, env: { ...process.env, CI: "true" }, stdin: "ignore" });

/** Every file under `d`, relative, sorted. */
function tree(d: string, pre = ""): string[] {
  return readdirSync(join(d, pre), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? tree(d, join(pre, e.name)) : [join(pre, e.name)]))
    .sort();
}

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("vmlab init", () => {
  const expected = [".github/workflows/vmlab.yml", ".gitignore", "README.md", "package.json", "runbooks/example.md", "scenarios/example.ts", "tsconfig.json"];

  it("creates the starter project: a package depending on this vmlab, an example scenario and runbook, a workflow, a README", async () => {
    const project = join(tmp.path, "Team Lab");
    const r = await cli(["init", project], tmp.path);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(tree(project)).toEqual(expected);
    for (const f of expected) expect(r.stdout).toContain(`created ${join("Team Lab", f)}`);
    const pkg = JSON.parse(readFileSync(join(project, "package.json"), "utf8"));
    expect(pkg).toMatchObject({ name: "team-lab", private: true, type: "module", devDependencies: { vmlab: `^${version}` } });
    const readme = readFileSync(join(project, "README.md"), "utf8");
    expect(readme).toContain("npx vmlab run example runbooks/example.md");
    expect(readme).toContain("npx vmlab run --all");
    // The scenario imports from vmlab only, not from vmlab's sources.
    const scenario = readFileSync(join(project, "scenarios/example.ts"), "utf8");
    expect([...scenario.matchAll(/from "([^"]+)"/g)].map((m) => m[1])).toEqual(["vmlab"]);
  });

  it("in the current directory by default, and --vmlab-spec writes another dependency", async () => {
    const here = join(tmp.path, "here");
    mkdirSync(here);
    const r = await cli(["init", "--vmlab-spec", "file:vendor/vmlab.tgz", "--name", "ops-drills"], here);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(here, "package.json"), "utf8"))).toMatchObject({ name: "ops-drills", devDependencies: { vmlab: "file:vendor/vmlab.tgz" } });
    expect(vmlabSpec({ version: "1.2.3" })).toBe("^1.2.3");
    expect(packageName("/x/My_Lab!")).toBe("my_lab");
    expect(packageName("/")).toBe("vmlab-project");
  });

  it("refuses to overwrite any file: exit 2 naming it, and nothing written", async () => {
    const project = join(tmp.path, "taken");
    mkdirSync(join(project, "runbooks"), { recursive: true });
    writeFileSync(join(project, "runbooks/example.md"), "# ours\n");
    const r = await cli(["init", project], tmp.path);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`vmlab init would overwrite ${join("taken", "runbooks/example.md")}`);
    expect(r.stderr).toContain("nothing was written");
    expect(tree(project)).toEqual(["runbooks/example.md"]);
    expect(readFileSync(join(project, "runbooks/example.md"), "utf8")).toBe("# ours\n");
  });

  it("its scenario loads and validates through the registry, from a project where vmlab is installed", async () => {
    const project = join(tmp.path, "installed");
    expect((await cli(["init", project], tmp.path)).exitCode).toBe(0);
    mkdirSync(join(project, "node_modules"));
    symlinkSync(projectRoot, join(project, "node_modules/vmlab"));
    const file = join(project, "scenarios/example.ts");
    const s = validateScenario(await importDefault<Scenario>(file, "scenario file"), file);
    expect([s.name, s.image, s.kind ?? "rehearsal"]).toEqual(["example", "debian12-bios", "rehearsal"]);
    expect((await loadScenario(file)).name).toBe("example");
    // And by name, from the project's directory: listed as the project's.
    const list = await cli(["list", "--json", "--tag", "example"], project);
    expect(list.exitCode, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ name: "example", origin: "project" })]);
  });

  it("its runbook parses: front matter, two blocks under their headings, a known image", async () => {
    const project = join(tmp.path, "rb");
    const files = starterFiles(project, { version });
    mkdirSync(join(project, "runbooks"), { recursive: true });
    writeFileSync(join(project, "runbooks/example.md"), files["runbooks/example.md"]!);
    const rb = await readRunbook(join(project, "runbooks/example.md"));
    expect(rb.front).toMatchObject({ name: "runbook-example", image: "debian12-bios", expect: { root: "/dev/sda2", fstype: "ext3" } });
    expect(rb.blocks.map((b) => b.name)).toEqual(["Write a note", "Read it back"]);
    expect(existsSync(join(project, "package.json"))).toBe(false);
  });
});
