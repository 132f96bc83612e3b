import { createHash } from "node:crypto";
import { createReadStream, readFileSync } from "node:fs";
import { execa } from "execa";
import { copyFile, mkdir, readFile, readdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { expect } from "vitest";
import type { ScenarioReport } from "../../src/scenario/types.ts";
import { projectRoot } from "../../src/paths.ts";

/** sha256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/**
 * PIDs of qemu-system processes on this host that this test file started:
 * test/slots.ts tags each file's processes with VMLAB_TEST_FILE, and every
 * QEMU inherits it, so a neighbour file's guests are not counted. Without
 * the tag (a file run outside the suite's setup), every QEMU counts.
 */
export async function qemuPids(): Promise<number[]> {
  const r = await execa("pgrep", ["-f", "qemu-system"], { reject: false });
  const all = String(r.stdout).split("\n").filter(Boolean).map(Number);
  const tag = process.env.VMLAB_TEST_FILE;
  if (!tag) return all;
  return all.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`VMLAB_TEST_FILE=${tag}`);
    } catch {
      return false; // gone meanwhile
    }
  });
}

/**
 * QEMU processes still running: a kept machine's QEMU ended by `vmlab stop`
 * is not the stopping process's child, so it lingers as a zombie until init
 * reaps it; a zombie runs nothing and holds no disk.
 */
export async function runningQemuPids(): Promise<number[]> {
  const alive: number[] = [];
  for (const pid of await qemuPids()) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (!/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3))) alive.push(pid);
    } catch {
      /* gone meanwhile */
    }
  }
  return alive;
}

/** Run the real `vmlab` command line. */
export async function vmlab(args: string[], env: NodeJS.ProcessEnv = {}) {
  return execa("node", [join(projectRoot, "lab/vmlab.mjs"), ...args], {
    reject: false,
    env: { ...process.env, CI: "true", ...env },
    extendEnv: false,
    stdin: "ignore",
  });
}

/** The report of the one run of `scenario` under `parent`; run directories are <scenario>-<UTC time>-<random>. */
export async function onlyReport(parent: string, scenario: string): Promise<ScenarioReport> {
  const runs = (await readdir(parent)).filter((d) => d.startsWith(`${scenario}-2`));
  expect(runs).toHaveLength(1);
  await keepReport(join(parent, runs[0]!));
  return JSON.parse(await readFile(join(parent, runs[0]!, "report.json"), "utf8"));
}

/** End a QEMU a test started, by its pid, and reap it: a test never leaves qemu-system behind. */
export async function endQemu(qemu: { pid?: number; exitCode: number | null } & PromiseLike<unknown>): Promise<void> {
  if (qemu.exitCode === null && qemu.pid !== undefined) {
    try {
      process.kill(qemu.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  await Promise.resolve(qemu).catch(() => undefined);
}

/**
 * Run scenarios in one `vmlab run --jobs 2` under `parent/<first name>`;
 * returns the exit code, the output, and each scenario's report by name.
 */
export async function runScenarios(parent: string, names: string[]): Promise<{ exitCode: number; output: string; report: Record<string, ScenarioReport> }> {
  const out = join(parent, names[0]!);
  const r = await vmlab(["run", "--jobs", String(Math.min(2, names.length)), ...names, "--report-dir", out]);
  const report: Record<string, ScenarioReport> = {};
  for (const d of await readdir(out)) {
    const rep = JSON.parse(await readFile(join(out, d, "report.json"), "utf8")) as ScenarioReport;
    report[rep.scenario] = rep;
    await keepReport(join(out, d));
  }
  return { exitCode: r.exitCode ?? -1, output: `${r.stdout}\n${r.stderr}`, report };
}

/**
 * With VMLAB_TEST_REPORTS=DIR, each run's report.json (and console logs) is
 * copied to DIR/<run>/ before the test's temporary directory goes: the
 * recordings the verdict's unit tests are judged on come from such runs.
 */
export async function keepReport(runDir: string): Promise<void> {
  const keep = process.env.VMLAB_TEST_REPORTS;
  if (!keep) return;
  const to = join(keep, basename(runDir));
  await mkdir(to, { recursive: true });
  for (const f of await readdir(runDir)) if (f === "report.json" || f === "junit.xml" || f.endsWith(".console.log")) await copyFile(join(runDir, f), join(to, f));
}
