/**
 * `vmlab init [DIR]`: a starter project for a team that keeps its scenarios
 * and runbooks in its own repository and runs them in its own CI.
 *
 * Nothing existing is ever overwritten: every file is checked first, and one
 * that exists already refuses the whole command (exit 2, naming the file)
 * before anything is written.
 */
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { UsageError } from "./errors.ts";

export interface InitOptions {
  /** vmlab's version, for the default dependency spec. */
  version: string;
  /** The dependency spec written into package.json; default `^VERSION`. */
  spec?: string;
  /** The project's name in package.json; default the directory's name. */
  name?: string;
}

/**
 * The dependency spec for vmlab. A registry range (`^0.1.0`) by default:
 * it is what a team's repository should carry, since `npm ci` on a CI runner
 * installs it from the lockfile with nothing else checked in, and the range
 * takes vmlab's fixes without taking a breaking version. A `file:` spec
 * would point at a path on the machine that ran `vmlab init`, which a CI
 * runner does not have. Where vmlab is not on a registry, `--vmlab-spec`
 * writes another: `file:vendor/vmlab-0.1.0.tgz` (a packed vmlab committed
 * with the project, which CI can install too), a git URL, or
 * `file:../vmlab` (a local clone, for trying it out).
 */
export function vmlabSpec(o: Pick<InitOptions, "version" | "spec">): string {
  return o.spec ?? `^${o.version}`;
}

/** A package name npm accepts, from a directory name. */
export function packageName(dir: string): string {
  const n = basename(resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[._-]+|[-]+$/g, "");
  return n || "vmlab-project";
}

const EXAMPLE_SCENARIO = `import { scenario, VmlabError } from "vmlab";

/**
 * A first scenario of this project: the guest answers over SSH with its root
 * where the image puts it, and the data set the lab seeded is intact. No
 * reboot, so it takes seconds once the image is built. Copy it to rehearse
 * your own procedure: each \`step\` is a named, timed part of the report, and
 * \`expect\` says what must hold at the end.
 */
export default scenario({
  name: "example",
  description: "the guest answers over SSH with / on sda2 and the seeded data intact",
  image: "debian12-bios",
  tags: ["example"],
  expect: { final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  async run({ vm, step, data, record }) {
    await step("look at the guest", async () => {
      const root = (await vm.succeed("findmnt -no SOURCE /")).trim();
      record("root", root);
      if (root !== "/dev/sda2") throw new VmlabError(\`/ is on \${root}, not /dev/sda2\`);
    });
    await step("check the data set", async () => record("data", await data.expectIntact(vm)));
  },
});
`;

const EXAMPLE_RUNBOOK = `---
name: runbook-example
description: a note written under /srv, then the lab's own reboot through the firmware
image: debian12-bios
tags: [example]
expect:
  root: /dev/sda2
  fstype: ext3
---

# A first runbook

A runbook is a page as you keep it: prose for the reader, and shell blocks
that vmlab runs on a real guest, one after the other in one root shell, the
way you would. After the last block vmlab reboots the machine through its
firmware and checks that it came back with \`/\` where the front matter says
and the data set intact.

## Write a note

Variables and the current directory carry over to the next block.

\`\`\`sh
mkdir -p /srv/notes
cd /srv/notes
note="rehearsed on $(date -u +%F)"
echo "$note" > note.txt
\`\`\`

## Read it back

\`\`\`sh
grep -q "$note" note.txt
sync
\`\`\`
`;

/** The workflow: a matrix of shards running the action, then one job merging their reports. */
const WORKFLOW = `# vmlab in CI: the scenarios split over a matrix of shards, each on its own
# runner with KVM, then one job merges their reports into one JUnit XML, a
# summary and index.html. The action is the one shipped with the vmlab this
# project depends on (node_modules/vmlab/action.yml), so it always matches
# the installed version.
name: vmlab

on:
  push:
    branches: [main]
  pull_request:
  workflow_dispatch:

concurrency:
  group: vmlab-\${{ github.ref }}
  cancel-in-progress: true

permissions:
  contents: read

jobs:
  shard:
    name: shard \${{ matrix.shard }}
    runs-on: ubuntu-latest
    timeout-minutes: 90
    strategy:
      fail-fast: false
      matrix:
        # Add a number to spread the scenarios over one more runner.
        shard: [1, 2]
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with:
          node-version: 20
      - name: Install vmlab
        run: if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
      - name: vmlab run --shard \${{ matrix.shard }}/\${{ strategy.job-total }}
        uses: ./node_modules/vmlab
        with:
          shard: \${{ matrix.shard }}/\${{ strategy.job-total }}
          report-dir: reports

  merge:
    name: merged report
    needs: shard
    if: always()
    runs-on: ubuntu-latest
    timeout-minutes: 15
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with:
          node-version: 20
      - name: Install vmlab
        run: if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
      - uses: actions/download-artifact@v4
        with:
          pattern: vmlab-reports-*
          path: shards
      - name: vmlab report merge
        run: npx --no-install vmlab report merge shards --out merged
      - name: Summary
        if: always()
        run: |
          if [ -f merged/summary.txt ]; then
            { echo '\`\`\`'; cat merged/summary.txt; echo '\`\`\`'; } >> "$GITHUB_STEP_SUMMARY"
          fi
      # index.html (a row per run, linked to its report.html), junit.xml, summary.txt/json, and failures/<run>/.
      - name: Upload the merged report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: vmlab-report
          path: merged/
          if-no-files-found: ignore
          retention-days: 30
`;

const README = (name: string) => `# ${name}

Storage procedures of this team, rehearsed on real QEMU guests with
[vmlab](https://www.npmjs.com/package/vmlab): each scenario and runbook
boots a Debian machine, performs the procedure, reboots it through its
firmware and proves that it boots from its own disk with no data lost.

On a Debian or Ubuntu machine with KVM (or patience under TCG):

\`\`\`sh
npm install
npx vmlab run example runbooks/example.md   # run the example scenario and the example runbook
npx vmlab run --all                         # run the suite: every scenario in scenarios/
\`\`\`

\`npx vmlab setup\` installs the host packages first (as root), and the first
run builds the \`debian12-bios\` image (minutes; cached after).

- \`scenarios/\`: scenarios in TypeScript, importing from \`vmlab\` (and
  \`vmlab/procedures\`, \`vmlab/faults\`). A scenario here with the name of a
  built-in one takes its place; \`npx vmlab list\` shows which is which.
- \`runbooks/\`: runbooks in Markdown or shell; \`npx vmlab rehearse NAME\`
  finds them by name.
- \`.github/workflows/vmlab.yml\`: CI, a matrix of shards and a merged report
  (the artifact \`vmlab-report\`, with \`index.html\`).
- Type checking (optional; vmlab runs TypeScript through tsx without it):
  \`npm install --save-dev typescript @types/node && npx tsc\`.
`;

const TSCONFIG = `{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "strict": true,
    "noEmit": true,
    "skipLibCheck": true,
    "allowImportingTsExtensions": true,
    "types": ["node"]
  },
  "include": ["scenarios", "images"]
}
`;

const GITIGNORE = `node_modules/
reports/
reports-merged/
`;

/** The files of a starter project, by path relative to its directory. */
export function starterFiles(dir: string, o: InitOptions): Record<string, string> {
  const name = o.name ?? packageName(dir);
  const pkg = {
    name,
    private: true,
    type: "module",
    description: "storage procedures rehearsed on real guests with vmlab",
    scripts: {
      example: "vmlab run example runbooks/example.md",
      test: "vmlab run --all",
    },
    devDependencies: { vmlab: vmlabSpec(o) },
  };
  return {
    "package.json": `${JSON.stringify(pkg, null, 2)}\n`,
    "scenarios/example.ts": EXAMPLE_SCENARIO,
    "runbooks/example.md": EXAMPLE_RUNBOOK,
    ".github/workflows/vmlab.yml": WORKFLOW,
    "README.md": README(name),
    "tsconfig.json": TSCONFIG,
    ".gitignore": GITIGNORE,
  };
}

/**
 * Write a starter project into `dir` (made when missing). Every file is
 * checked first: one that exists is exit 2 naming it, and nothing is written.
 */
export async function initProject(dir: string, o: InitOptions): Promise<string[]> {
  const root = resolve(dir);
  const files = starterFiles(root, o);
  const existing = Object.keys(files).filter((f) => existsSync(join(root, f)));
  if (existing.length) {
    const shown = existing.map((f) => relative(process.cwd(), join(root, f)) || f);
    throw new UsageError(`vmlab init would overwrite ${shown.join(", ")}`, {
      where: root,
      hint: "nothing was written; run it in a new directory (vmlab init DIR), or move those files away first",
    });
  }
  const written: string[] = [];
  for (const [f, text] of Object.entries(files)) {
    const path = join(root, f);
    await mkdir(dirname(path), { recursive: true });
    // "wx": a file that appeared meanwhile is still not overwritten.
    await writeFile(path, text, { flag: "wx" });
    written.push(path);
  }
  return written;
}
