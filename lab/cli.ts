/**
 * The `vmlab` command line. Thin: parses arguments, renders progress with ora,
 * maps outcomes to exit codes (0 pass, 1 fail, 2 bad usage or host not ready),
 * and calls src/ for everything else.
 */
import { parseArgs } from "node:util";
import { availableParallelism, freemem } from "node:os";
import ora, { type Ora } from "ora";
import { UsageError, VmlabError } from "../src/errors.ts";
import { doctor, formatDoctor } from "../src/host/doctor.ts";
import { setup } from "../src/host/setup.ts";
import { requireTool } from "../src/host/tools.ts";
import { ensureImage, listImages, removeImage } from "../src/image/build.ts";
import { createImage, imageInfo } from "../src/disk/qemu-img.ts";
import { formatSize, parseSize } from "../src/disk/size.ts";
import { loadRecipe, loadScenario, recipeNames, scenarioNames } from "../src/scenario/registry.ts";
import { runScenario } from "../src/scenario/runner.ts";
import type { RunEvent, ScenarioReport } from "../src/scenario/types.ts";

const USAGE = `vmlab: rehearse storage migrations and disaster recovery on real Linux guests

usage:
  vmlab doctor [--quiet]           check the host: tools, packages, accelerator (KVM or TCG)
  vmlab setup [--dry-run]          install the host packages (as root on Debian/Ubuntu), or print the command
  vmlab list                       list the scenarios
  vmlab run <name|file>... | --all run scenarios; --report-dir DIR (default ./reports),
                                   --jobs N parallel runs (default from cores and memory)
  vmlab image build <recipe>       build an image (cached by recipe hash); --rebuild forces it
  vmlab image list                 list cached images
  vmlab image rm <recipe>          remove a cached image
  vmlab disk create <path> <size> [--format qcow2|raw]
                                   create an empty disk image (size like 8G or 200M)
  vmlab disk info <path>           show a disk image's format, sizes and backing file

exit codes: 0 all passed, 1 a scenario failed, 2 bad usage or host not ready`;

function out(line = ""): void {
  process.stdout.write(line + "\n");
}

async function cmdDoctor(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { quiet: { type: "boolean" } } });
  const report = await doctor();
  if (!values.quiet) out(formatDoctor(report));
  return report.ready ? 0 : 2;
}

async function cmdSetup(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { "dry-run": { type: "boolean" } } });
  const r = await setup({ dryRun: values["dry-run"] });
  if (r.ran) {
    out("host packages installed; `vmlab doctor` checks the host");
    return 0;
  }
  out(r.reason);
  out(r.command);
  // Not root, or not Debian: the user has a command to run, the host is not ready yet.
  return values["dry-run"] ? 0 : 2;
}

async function cmdList(): Promise<number> {
  for (const name of await scenarioNames()) {
    const s = await loadScenario(name);
    out(`${s.name.padEnd(28)} ${(s.tags ?? []).join(",").padEnd(20)} ${s.description}`);
  }
  return 0;
}

function renderer(parallel = false): (e: RunEvent) => void {
  // Spinners for one run on a terminal; plain lines for CI logs and parallel runs.
  const interactive = Boolean(process.stderr.isTTY) && !process.env.CI && !parallel;
  let spinner: Ora | undefined;
  return (e) => {
    switch (e.type) {
      case "step-start":
        spinner = ora({ text: `${e.scenario}: ${e.step}`, isEnabled: interactive }).start();
        if (!interactive) process.stderr.write(`… ${e.scenario}: ${e.step}\n`);
        break;
      case "step-end": {
        const t = `${e.scenario}: ${e.step.name} (${(e.step.durationMs / 1000).toFixed(1)} s)`;
        if (!spinner) break;
        if (e.step.status === "passed") spinner.succeed(t);
        else spinner.fail(`${t}: ${e.step.error}`);
        break;
      }
      case "log":
        if (spinner && interactive) spinner.text = `${e.scenario}: ${e.message}`;
        else process.stderr.write(`    ${e.message}\n`);
        break;
      case "boot":
        process.stderr.write(`    boot via ${e.boot.via}: ${e.boot.outcome}${e.boot.detail ? ` (${e.boot.detail})` : ""} after ${(e.boot.durationMs / 1000).toFixed(1)} s\n`);
        break;
    }
  };
}

function summarize(r: ScenarioReport): void {
  out("");
  out(`${r.scenario}: ${r.verdict.toUpperCase()} in ${(r.durationMs / 1000).toFixed(1)} s`);
  for (const b of r.boots) out(`  boot ${b.reason} via ${b.via}: ${b.outcome}${b.detail ? ` (${b.detail})` : ""}`);
  if (r.error) {
    out(`  failed step: ${r.error.step ?? "(setup)"}`);
    out(`  error: ${r.error.message}`);
    if (r.error.where) out(`  where: ${r.error.where}`);
    if (r.error.output) out(r.error.output.split("\n").map((l) => `    ${l}`).join("\n"));
    if (r.error.hint) out(`  try: ${r.error.hint}`);
    if (r.error.consoleTail) {
      out("  console tail:");
      out(r.error.consoleTail.split("\n").map((l) => `    | ${l}`).join("\n"));
    }
  }
  out(`  report: ${r.runDir}/report.json`);
}

/** Default parallel runs: a TCG guest keeps two cores busy and wants about 1.5 GiB of host memory. */
export function defaultJobs(cores = availableParallelism(), memBytes = freemem()): number {
  return Math.max(1, Math.min(Math.floor(cores / 2), Math.floor(memBytes / (1.5 * 2 ** 30))));
}

async function cmdRun(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { "report-dir": { type: "string" }, jobs: { type: "string", short: "j" }, all: { type: "boolean" } },
  });
  const names = values.all ? await scenarioNames() : positionals;
  if (names.length === 0) throw new UsageError("vmlab run needs a scenario name or file, or --all", { hint: "`vmlab list` shows the scenarios" });
  const jobs = values.jobs === undefined ? defaultJobs() : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`bad --jobs "${values.jobs}": use a whole number of 1 or more`);
  // Resolve every scenario and check the host before anything starts.
  const scenarios = [];
  for (const p of names) scenarios.push(await loadScenario(p));
  requireTool("qemu-system-x86_64");
  requireTool("qemu-img");
  // Build each image once before runs start in parallel.
  for (const image of new Set(scenarios.map((s) => s.image))) {
    await ensureImage(await loadRecipe(image), { progress: (m) => process.stderr.write(`image ${image}: ${m}\n`) });
  }
  const reports: ScenarioReport[] = [];
  const queue = [...scenarios];
  const onEvent = renderer(jobs > 1);
  await Promise.all(
    Array.from({ length: Math.min(jobs, queue.length) }, async () => {
      for (let s = queue.shift(); s; s = queue.shift()) {
        const r = await runScenario(s, { reportDir: values["report-dir"], onEvent });
        summarize(r);
        reports.push(r);
      }
    }),
  );
  const failed = reports.filter((r) => r.verdict !== "pass");
  if (reports.length > 1) out(`\n${reports.length - failed.length} passed, ${failed.length} failed${failed.length ? `: ${failed.map((r) => r.scenario).join(", ")}` : ""}`);
  return failed.length ? 1 : 0;
}

async function cmdImage(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { rebuild: { type: "boolean" } } });
  switch (sub) {
    case "build": {
      const names = positionals.length ? positionals : await recipeNames();
      for (const n of names) {
        const recipe = await loadRecipe(n);
        const spinner = ora({ text: `image ${n}`, isEnabled: Boolean(process.stderr.isTTY) && !process.env.CI }).start();
        const t = Date.now();
        const img = await ensureImage(recipe, { rebuild: values.rebuild, progress: (m) => (spinner.text = `image ${n}: ${m}`) });
        spinner.succeed(`image ${n} ${img.hash} ready in ${((Date.now() - t) / 1000).toFixed(1)} s: ${img.disk}`);
      }
      return 0;
    }
    case "list": {
      const images = await listImages();
      if (images.length === 0) out("no cached images; `vmlab image build debian12-bios` builds one");
      for (const m of images) out(`${m.name.padEnd(20)} ${m.hash}  built ${m.builtAt}  kernel ${m.kernel}  ${m.description}`);
      return 0;
    }
    case "rm": {
      if (positionals.length === 0) throw new UsageError("vmlab image rm needs a recipe name");
      for (const n of positionals) out(`removed ${await removeImage(n)} build(s) of ${n}`);
      return 0;
    }
    default:
      throw new UsageError(`unknown image command "${sub ?? ""}"`, { hint: "vmlab image build|list|rm" });
  }
}

async function cmdDisk(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { format: { type: "string" } } });
  switch (sub) {
    case "create": {
      const [path, size] = positionals;
      if (!path || size === undefined) throw new UsageError("vmlab disk create needs a path and a size", { hint: "vmlab disk create scratch.qcow2 8G" });
      const format = values.format ?? (path.endsWith(".raw") || path.endsWith(".img") ? "raw" : "qcow2");
      if (format !== "raw" && format !== "qcow2") throw new UsageError(`unknown disk format "${format}"`, { hint: "use --format qcow2 or --format raw" });
      await createImage(path, { format, size });
      out(`created ${format} disk ${path} of ${formatSize(parseSize(size))}`);
      return 0;
    }
    case "info": {
      if (!positionals[0]) throw new UsageError("vmlab disk info needs a path");
      const i = await imageInfo(positionals[0]);
      out(`${i.filename}: ${i.format}, virtual ${formatSize(i.virtualSize)} (${i.virtualSize} bytes), on disk ${i.actualSize} bytes`);
      if (i.backingFilename) out(`  backing file: ${i.backingFilename} (${i.backingFormat ?? "?"})`);
      for (const sn of i.snapshots) out(`  snapshot ${sn.id} ${sn.name}`);
      return 0;
    }
    default:
      throw new UsageError(`unknown disk command "${sub ?? ""}"`, { hint: "vmlab disk create|info" });
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case "doctor":
      return cmdDoctor(args);
    case "setup":
      return cmdSetup(args);
    case "list":
      return cmdList();
    case "run":
      return cmdRun(args);
    case "image":
      return cmdImage(args);
    case "disk":
      return cmdDisk(args);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      out(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${cmd}"`, { hint: "`vmlab help` lists the commands" });
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof VmlabError) {
    process.stderr.write(`vmlab: ${err.describe()}\n`);
    process.exitCode = err.exitCode;
  } else if (err instanceof Error && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS")) {
    process.stderr.write(`vmlab: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`vmlab: unexpected error: ${(err as Error)?.stack ?? err}\n`);
    process.exitCode = 1;
  }
}
