/**
 * vmlab installed as a dependency: names resolve in the user's project
 * (scenarios/, runbooks/, exercises/, images/) first, then in vmlab's own,
 * and the project's scenario of a built-in name wins. The command line is
 * run from a temporary project whose node_modules/vmlab is this checkout, so
 * its scenarios import from "vmlab" through package.json `exports`.
 */
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { dir, type DirectoryResult } from "tmp-promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../src/paths.ts";
import { findNamed, listNamed, searchRoots, userProjectRoot } from "../../src/project.ts";
import { runbookPath } from "../../lab/commands/scenarios.ts";

let tmp: DirectoryResult;
let own: string;
let user: string;

function write(file: string, text: string): void {
  mkdirSync(join(file, ".."), { recursive: true });
  writeFileSync(file, text);
}

const scenarioText = (name: string, description: string) => `import { scenario } from "vmlab";
export default scenario({
  name: "${name}",
  description: "${description}",
  image: "debian12-bios",
  expect: { final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  async run({ vm, step }) {
    await step("look", async () => void (await vm.succeed("true")));
  },
});
`;

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  // A stand-in for vmlab's own directory, and a user's project that depends on vmlab.
  own = join(tmp.path, "vmlab");
  write(join(own, "package.json"), JSON.stringify({ name: "vmlab" }));
  write(join(own, "scenarios/alpha.ts"), "");
  write(join(own, "scenarios/beta.ts"), "");
  write(join(own, "runbooks/README.md"), "");
  write(join(own, "runbooks/gamma.md"), "");
  write(join(own, "images/debian12-bios.ts"), "");
  user = join(tmp.path, "team");
  write(join(user, "package.json"), JSON.stringify({ name: "team", devDependencies: { vmlab: "^0.1.0" } }));
  write(join(user, "scenarios/beta.ts"), "");
  write(join(user, "scenarios/delta.ts"), "");
  write(join(user, "scenarios/notes.txt"), "");
  write(join(user, "runbooks/gamma.md"), "");
  write(join(user, "runbooks/epsilon.sh"), "");
  write(join(user, "exercises/first.md"), "");
  mkdirSync(join(user, "deep/er"), { recursive: true });
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("the user's project", () => {
  it("is the nearest directory upwards whose package.json depends on vmlab; else the current one", () => {
    expect(userProjectRoot(user)).toBe(user);
    expect(userProjectRoot(join(user, "deep/er"))).toBe(user);
    const lone = join(tmp.path, "lone");
    mkdirSync(lone);
    expect(userProjectRoot(lone)).toBe(lone);
    // A package.json that does not depend on vmlab is not the project: the walk goes on upwards.
    write(join(user, "deep/package.json"), JSON.stringify({ name: "unrelated", dependencies: { left: "1" } }));
    expect(userProjectRoot(join(user, "deep/er"))).toBe(user);
  });

  it("VMLAB_PROJECT names it outright", () => {
    process.env.VMLAB_PROJECT = own;
    try {
      expect(userProjectRoot(user)).toBe(own);
    } finally {
      delete process.env.VMLAB_PROJECT;
    }
  });

  it("is looked in first, then vmlab's own; once when they are the same directory", () => {
    expect(searchRoots(user, own)).toEqual([
      { dir: user, origin: "project" },
      { dir: own, origin: "vmlab" },
    ]);
    expect(searchRoots(own, own)).toEqual([{ dir: own, origin: "vmlab" }]);
  });
});

describe("names", () => {
  it("list both, sorted; the project's scenario of a shared name wins", () => {
    const all = listNamed("scenarios", [".ts"], { cwd: user, own });
    expect(all.map((f) => [f.name, f.origin])).toEqual([
      ["alpha", "vmlab"],
      ["beta", "project"],
      ["delta", "project"],
    ]);
    expect(all.find((f) => f.name === "beta")?.file).toBe(join(user, "scenarios/beta.ts"));
    // Outside any project, only vmlab's own.
    expect(listNamed("scenarios", [".ts"], { cwd: join(tmp.path, "lone"), own }).map((f) => f.name)).toEqual(["alpha", "beta"]);
  });

  it("resolve in the project first, then vmlab's; a path or an unknown name is not a name", () => {
    expect(findNamed("scenarios", "beta", [".ts"], { cwd: user, own })).toEqual({ name: "beta", file: join(user, "scenarios/beta.ts"), origin: "project" });
    expect(findNamed("scenarios", "alpha", [".ts"], { cwd: user, own })?.origin).toBe("vmlab");
    expect(findNamed("runbooks", "gamma", [".md", ".sh"], { cwd: user, own })?.file).toBe(join(user, "runbooks/gamma.md"));
    expect(findNamed("runbooks", "epsilon", [".md", ".sh"], { cwd: user, own })?.file).toBe(join(user, "runbooks/epsilon.sh"));
    expect(findNamed("exercises", "first", [".md"], { cwd: user, own })?.origin).toBe("project");
    expect(findNamed("images", "debian12-bios", [".ts"], { cwd: user, own })?.origin).toBe("vmlab");
    expect(findNamed("scenarios", "zeta", [".ts"], { cwd: user, own })).toBeUndefined();
    expect(findNamed("scenarios", "../scenarios/beta", [".ts"], { cwd: user, own })).toBeUndefined();
    expect(listNamed("runbooks", [".md", ".sh"], { cwd: user, own, skip: ["README.md"] }).map((f) => f.name)).toEqual(["epsilon", "gamma"]);
  });

  it("vmlab rehearse NAME finds the project's runbook before vmlab's; an unknown one names both directories", async () => {
    const real = join(tmp.path, "real-project");
    write(join(real, "package.json"), JSON.stringify({ name: "real", dependencies: { vmlab: "file:../vmlab" } }));
    write(join(real, "runbooks/root-to-lvm.md"), "");
    expect(await runbookPath("root-to-lvm", real)).toBe(join(real, "runbooks/root-to-lvm.md"));
    expect(await runbookPath("lvm-snapshot-rollback", real)).toBe(join(projectRoot, "runbooks/lvm-snapshot-rollback.md"));
    await expect(runbookPath("no-such", real)).rejects.toThrow(`no runbook "no-such" in ${join(real, "runbooks")} or ${join(projectRoot, "runbooks")}`);
  });
});

describe("vmlab from a project that depends on it", () => {
  let project: string;
  const cli = (args: string[], cwd: string) =>
    execa("node", [join(projectRoot, "lab/vmlab.mjs"), ...args], { cwd, reject: false, env: { ...process.env, CI: "true" }, stdin: "ignore" });

  beforeAll(() => {
    project = join(tmp.path, "adopter");
    write(join(project, "package.json"), JSON.stringify({ name: "adopter", type: "module", devDependencies: { vmlab: "^0.1.0" } }));
    mkdirSync(join(project, "node_modules"));
    symlinkSync(projectRoot, join(project, "node_modules/vmlab"));
    write(join(project, "scenarios/smoke.ts"), scenarioText("smoke", "the project's own smoke check"));
    write(join(project, "scenarios/team-check.ts"), scenarioText("team-check", "a scenario of the team's"));
  });

  it("vmlab list shows the project's scenarios with the built-in ones and says which is which", async () => {
    const r = await cli(["list"], join(project, "scenarios"));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^smoke\s+project\s.*the project's own smoke check$/m);
    expect(r.stdout).toMatch(/^team-check\s+project\s/m);
    expect(r.stdout).toMatch(/^root-to-lvm\s+built-in\s/m);
    const json = JSON.parse((await cli(["list", "--json"], project)).stdout) as { name: string; origin: string; description: string }[];
    expect(json.filter((s) => s.name === "smoke")).toEqual([expect.objectContaining({ origin: "project", description: "the project's own smoke check" })]);
    expect(json.find((s) => s.name === "root-to-lvm")?.origin).toBe("built-in");
  });

  it("imports vmlab, vmlab/procedures and vmlab/faults through package.json exports", async () => {
    write(
      join(project, "api.ts"),
      `export * as main from "vmlab";\nexport * as procedures from "vmlab/procedures";\nexport * as faults from "vmlab/faults";\n`,
    );
    const api = (await import(join(project, "api.ts"))) as Record<"main" | "procedures" | "faults", Record<string, unknown>>;
    for (const k of ["scenario", "loadRunbook", "parseRunbook", "Machine", "expectBoot", "sh", "VmlabError", "UsageError", "recipe"]) expect(api.main[k], k).toBeTypeOf("function");
    for (const k of ["rootToLvm", "rootToMdraid", "pivotInto", "stopRootWriters", "ext3ToBtrfsCopy", "ext3ToBtrfsConvert", "shrinkRoot", "takeSnapshot", "backupBootDisk", "mountAtOffset", "inChroot", "partition", "partitionDevice"]) {
      expect(api.procedures[k], k).toBeTypeOf("function");
    }
    for (const k of ["cutPower", "pullDisk", "dropLink", "holdRootBusy", "failSectors", "faultByName"]) expect(api.faults[k], k).toBeTypeOf("function");
    expect(Object.keys(api.faults.FAULTS as object)).toContain("power-cut");
  });

  it("an unknown scenario is exit 2, naming both directories; nothing written", async () => {
    const r = await cli(["run", "team-chek", "--report-dir", join(project, "reports")], project);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown scenario "team-chek"');
    expect(r.stderr).toContain(`${join(project, "scenarios")} or ${join(projectRoot, "scenarios")}`);
    expect(r.stderr).toContain("did you mean team-check?");
  });
});
