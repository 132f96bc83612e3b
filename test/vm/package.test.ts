/**
 * vmlab as a team installs it: `npm pack`, `npm install` of the tarball into
 * a fresh project, a scenario that imports only from `vmlab` and
 * `vmlab/procedures`, and a runbook, both run with `npx vmlab run` from the
 * project's directory on a real guest. Kept cheap: the scenario is a couple
 * of commands with no reboot, the runbook two blocks and the lab's final
 * reboot. The images come from the same cache as every other test (their
 * hash is of their content, not of where vmlab is installed).
 */
import { readFile, readdir, writeFile, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { dir, type DirectoryResult } from "tmp-promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../src/paths.ts";
import type { ScenarioReport } from "../../src/scenario/types.ts";
import { FINAL_CHECK_STEP, FINAL_REBOOT_STEP } from "../../src/runbook/scenario.ts";
import { keepReport } from "./helpers.ts";

let tmp: DirectoryResult;
let project = "";

const SCENARIO = `import { scenario, VmlabError } from "vmlab";
import { rootInfo } from "vmlab/procedures";

export default scenario({
  name: "packaged-smoke",
  description: "a project's own scenario, importing vmlab from node_modules",
  image: "debian12-bios",
  expect: { final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  async run({ vm, step, data, record }) {
    await step("where is /", async () => {
      const root = await rootInfo(vm);
      record("rootSeen", root);
      if (root.device !== "/dev/sda2") throw new VmlabError(\`/ is on \${root.device}\`);
    });
    await step("the data set", async () => record("data", await data.expectIntact(vm)));
  },
});
`;

const RUNBOOK = `---
name: packaged-runbook
description: a project's own runbook, rehearsed by the installed vmlab
image: debian12-bios
expect:
  root: /dev/sda2
  fstype: ext3
---

# Two blocks and the lab's reboot

## Write a note

\`\`\`sh
mkdir -p /srv/notes && cd /srv/notes
note="from the packaged vmlab"
echo "$note" > note.txt
\`\`\`

## Read it back

\`\`\`sh
grep -qx "$note" note.txt
sync
\`\`\`
`;

/** npm with the lab's environment; the project's install must not touch the checkout's node_modules. */
const npm = (args: string[], cwd: string) => execa("npm", args, { cwd, reject: false, env: { ...process.env, CI: "true", npm_config_fund: "false", npm_config_audit: "false", npm_config_update_notifier: "false" } });

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  // The tarball, as it would be published.
  const pack = await npm(["pack", "--json", "--pack-destination", tmp.path], projectRoot);
  expect(pack.exitCode, pack.stderr).toBe(0);
  const tarball = join(tmp.path, (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename);
  project = join(tmp.path, "team-lab");
  await mkdir(project);
  await writeFile(join(project, "package.json"), `${JSON.stringify({ name: "team-lab", private: true, type: "module" }, null, 2)}\n`);
  // vmlab's dependencies come from the local npm cache when it has them all; otherwise from the registry.
  let install = await npm(["install", "--offline", "--save-dev", tarball], project);
  if (install.exitCode !== 0) install = await npm(["install", "--prefer-offline", "--save-dev", tarball], project);
  expect(install.exitCode, `${install.stdout}\n${install.stderr}`).toBe(0);
  await writeFile(join(project, "my-scenario.ts"), SCENARIO);
  await writeFile(join(project, "my-runbook.md"), RUNBOOK);
}, 15 * 60_000);

afterAll(async () => {
  await tmp?.cleanup();
});

describe("the packed vmlab in a project of its own", () => {
  it("ships what it needs and nothing of its tests", async () => {
    const installed = join(project, "node_modules/vmlab");
    for (const f of ["lab/vmlab.mjs", "src/api/index.ts", "src/api/procedures.ts", "src/api/faults.ts", "images/debian12-bios.ts", "scenarios/smoke.ts", "runbooks/root-to-lvm.md", "action.yml", "README.md"]) {
      expect(existsSync(join(installed, f)), f).toBe(true);
    }
    expect(existsSync(join(installed, "test"))).toBe(false);
    expect(existsSync(join(installed, "bench"))).toBe(false);
    const pkg = JSON.parse(await readFile(join(project, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
    expect(pkg.devDependencies.vmlab).toMatch(/^file:.*vmlab-.*\.tgz$/);
  });

  it("npx vmlab run ./my-scenario.ts ./my-runbook.md: both pass on a real guest, judged from report.json", async () => {
    const reports = join(project, "reports");
    const r = await execa("npx", ["--no-install", "vmlab", "run", "./my-scenario.ts", "./my-runbook.md", "--jobs", "2", "--report-dir", reports], {
      cwd: project,
      reject: false,
      env: { ...process.env, CI: "true" },
      stdin: "ignore",
    });
    const log = `${r.stdout}\n${r.stderr}`;
    expect(r.exitCode, log).toBe(0);
    const byName: Record<string, ScenarioReport> = {};
    for (const d of await readdir(reports)) {
      if (!existsSync(join(reports, d, "report.json"))) continue;
      const rep = JSON.parse(await readFile(join(reports, d, "report.json"), "utf8")) as ScenarioReport;
      byName[rep.scenario] = rep;
      await keepReport(join(reports, d));
    }
    expect(Object.keys(byName).sort()).toEqual(["packaged-runbook", "packaged-smoke"]);

    const s = byName["packaged-smoke"]!;
    expect(s.verdict, log).toBe("pass");
    // The lab's own steps (image, warm state, seeding, the final observation) come around the scenario's.
    expect(s.steps.filter((x) => x.status !== "passed")).toEqual([]);
    expect(s.steps.map((x) => x.name)).toEqual(expect.arrayContaining(["where is /", "the data set", "observe the final state"]));
    expect(s.facts.rootSeen).toMatchObject({ device: "/dev/sda2", fstype: "ext3" });
    expect(s.final).toMatchObject({ root: { device: "/dev/sda2", fstype: "ext3" }, data: { intact: true } });
    expect(s.boots.map((b) => b.reason)).toEqual(["resume"]);

    const rb = byName["packaged-runbook"]!;
    expect(rb.verdict, log).toBe("pass");
    expect(rb.steps.filter((x) => x.status !== "passed")).toEqual([]);
    const names = rb.steps.map((x) => x.name);
    expect(names).toEqual(expect.arrayContaining(["Write a note", "Read it back", FINAL_REBOOT_STEP, FINAL_CHECK_STEP]));
    expect(names.indexOf("Read it back")).toBeLessThan(names.indexOf(FINAL_REBOOT_STEP));
    expect(rb.final).toMatchObject({ root: { device: "/dev/sda2", fstype: "ext3" }, data: { intact: true } });
    expect(rb.final?.lastBoot).toMatchObject({ via: "firmware", outcome: "ssh", newBootProven: true });
    // The seeded data set is the same one on both, checked after the firmware reboot for the runbook.
    expect(rb.final?.data?.summary).toMatch(/^intact: \d+ files match$/);
  });
});
