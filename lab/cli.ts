/**
 * The `vmlab` command line. Thin: parses arguments, renders progress with ora,
 * maps outcomes to exit codes (0 pass, 1 fail, 2 bad usage or host not ready),
 * and calls src/ for everything else.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { availableParallelism, freemem } from "node:os";
import ora, { type Ora } from "ora";
import { UsageError, VmlabError } from "../src/errors.ts";
import { doctor, formatDoctor } from "../src/host/doctor.ts";
import { setup } from "../src/host/setup.ts";
import { requireTool } from "../src/host/tools.ts";
import { chooseAccel } from "../src/host/kvm.ts";
import { ensureImage, listImages, removeImage } from "../src/image/build.ts";
import { createImage, imageInfo } from "../src/disk/qemu-img.ts";
import { formatSize, parseSize } from "../src/disk/size.ts";
import { loadRecipe, loadScenario, recipeNames, scenarioNames } from "../src/scenario/registry.ts";
import { runScenario } from "../src/scenario/runner.ts";
import { cmdDr, cmdInspect } from "./dr.ts";
import type { RunEvent, Scenario, ScenarioReport, StepRecord } from "../src/scenario/types.ts";
import { reportHead } from "../src/scenario/report.ts";
import { expectationTable, TABLE_BEGIN, TABLE_END } from "../src/verdict/table.ts";
import { spawn } from "node:child_process";
import { recipeHash } from "../src/image/build.ts";
import { labKey } from "../src/image/keys.ts";
import { defaultDurationsPath, durationMap, readDurations, recordDurations } from "../src/suite/durations.ts";
import { mergeReports, summaryText } from "../src/suite/merge.ts";
import { filterByTags, parseShard, shardOf, type ShardSpec } from "../src/suite/select.ts";
import { attachConsole, DETACH_KEY } from "../src/vm/console.ts";
import { cleanKept, findKept, keptSshArgs, listKept, requireAlive, stopKept, type KeptStatus } from "../src/vm/kept.ts";
import { createHash } from "node:crypto";
import { faultByName, FAULTS } from "../src/faults/index.ts";
import type { InjectSpec } from "../src/faults/types.ts";
import { defaultBoundaries, parseBoundaries, planSteps, sweep, sweepTable } from "../src/suite/sweep.ts";

const USAGE = `vmlab: rehearse storage migrations and disaster recovery on real Linux guests

usage:
  vmlab doctor [--quiet]           check the host: tools, packages, accelerator (KVM or TCG)
  vmlab setup [--dry-run]          install the host packages (as root on Debian/Ubuntu), or print the command
  vmlab list [--names|--json|--markdown]  list the scenarios (--names: one name a line, for scripts;
                                   --json: with each one's declared expectation; --markdown: the pass-conditions table)
  vmlab run <name|file>... | --all run scenarios; --report-dir DIR (default ./reports),
                                   --jobs N parallel runs (default from cores and memory),
                                   --keep[=always|on-failure] leave the machine running (bare --keep: always)
    selection, for run and list:   --tag T / --exclude-tag T (repeatable), --shard k/n (this
                                   runner's share, balanced by recorded durations; list prints
                                   one name a line), --durations FILE (default ~/.cache/vmlab/durations.json)
    faults, for run:               --fault NAME --at K inject a fault before step K (--after S: S seconds
                                   into it; --after-written SIZE: once the step has written SIZE to disk)
                                   and observe the machine after it (--rescue: try the rescue
                                   route if it does not boot)
  vmlab sweep <name> --fault NAME [--at 1,3-5] [--after S | --after-written SIZE] [--rescue] [--jobs N] [--plan]
                                   run the scenario once per step boundary with the fault injected there;
                                   prints and writes a table: boots?, which root, data intact?, rescue?
                                   (--plan: list the steps and stop; --disk ID for pulled-disk,
                                   --device DM-NAME for io-errors)
  vmlab faults                     list the faults
  vmlab ps [--json]                list kept machines (dead ones are shown once, then cleaned)
  vmlab ssh <id> [command...]      SSH into a kept machine as root; the command's exit code is passed through
  vmlab console <id>               attach to a kept machine's serial console; ${DETACH_KEY} detaches
  vmlab stop <id>... | --all       end kept machines and remove their disks
  vmlab report merge <dir>... [--out DIR]
                                   merge report directories (CI shards) into one junit.xml and summary
  vmlab image build <recipe>       build an image (cached by recipe hash); --rebuild forces it
  vmlab image list                 list cached images
  vmlab image rm <recipe>          remove a cached image
  vmlab image hash [recipe...] [--key]
                                   print recipe hashes (--key: one cache key for all of them)
  vmlab disk create <path> <size> [--format qcow2|raw]
                                   create an empty disk image (size like 8G or 200M)
  vmlab disk info <path>           show a disk image's format, sizes and backing file
  vmlab inspect <image|name> [--json]
                                   a disk image's partitions: start, size, type, byte offset, mount command
  vmlab dr backup-boot <disk-image> <backup-file> [--sectors N]
                                   copy the MBR, GRUB's gap and /boot (up to the swap partition) to a file
  vmlab dr restore-boot <backup-file> <disk-image>
                                   write such a backup onto a disk of the same size (refused otherwise)

exit codes: 0 all passed, 1 a scenario failed, 2 bad usage or host not ready
(vmlab ssh passes the remote command's exit code through; ssh itself exits 255 when it cannot connect)`;

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

const SELECT_OPTIONS = {
  tag: { type: "string", multiple: true },
  "exclude-tag": { type: "string", multiple: true },
  shard: { type: "string" },
  durations: { type: "string" },
} as const;

interface SelectValues {
  tag?: string[];
  "exclude-tag"?: string[];
  shard?: string;
  durations?: string;
}

/**
 * The scenarios a command works on: the named ones (or all), filtered by tag,
 * then this shard's share. Everything is checked before anything starts.
 */
async function selectScenarios(names: string[], v: SelectValues): Promise<{ scenarios: Scenario[]; shard?: ShardSpec; selected: number }> {
  const shard = v.shard === undefined ? undefined : parseShard(v.shard);
  const loaded: Scenario[] = [];
  for (const n of names) loaded.push(await loadScenario(n));
  let scenarios = filterByTags(loaded, { tags: v.tag, excludeTags: v["exclude-tag"] });
  const selected = scenarios.length;
  if (shard) {
    const durations = durationMap(await readDurations(v.durations ?? defaultDurationsPath(), (m) => process.stderr.write(`vmlab: ${m}\n`)));
    const mine = new Set(shardOf(scenarios.map((s) => s.name), shard, durations));
    scenarios = scenarios.filter((s) => mine.delete(s.name));
  }
  return { scenarios, shard, selected };
}

async function cmdList(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { ...SELECT_OPTIONS, names: { type: "boolean" }, json: { type: "boolean" }, markdown: { type: "boolean" } } });
  const { scenarios } = await selectScenarios(await scenarioNames(), values);
  if (values.markdown) {
    out(TABLE_BEGIN);
    out(expectationTable(scenarios));
    out(TABLE_END);
  } else if (values.json) {
    out(JSON.stringify(scenarios.map((s) => ({ name: s.name, description: s.description, kind: s.kind ?? "rehearsal", image: s.image, tags: s.tags ?? [], expect: s.expect })), null, 2));
  } else if (values.names || values.shard !== undefined) {
    for (const s of scenarios) out(s.name);
  } else {
    table(scenarios.map((s) => [s.name, (s.tags ?? []).join(","), s.description]));
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
        else {
          spinner.fail(`${t}: ${e.step.error?.split("\n")[0]}`);
          for (const l of stepFailureLines(e.step)) process.stderr.write(`    ${l}\n`);
        }
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

/** What explains a failed step on the terminal: the command, its exit code, the last lines of its output. */
function stepFailureLines(st: StepRecord): string[] {
  const f = st.failure;
  if (!f) return [];
  const lines: string[] = [];
  if (f.command) lines.push(`$ ${f.command.split("\n")[0]}${f.command.includes("\n") ? " ..." : ""}`);
  if (f.exitCode !== undefined) lines.push(`exit code ${f.exitCode}`);
  for (const [k, v] of [["stdout", f.stdout], ["stderr", f.stderr]] as const) for (const l of (v ?? "").split("\n").filter(Boolean).slice(-8)) lines.push(`${k}: ${l}`);
  if (f.note) lines.push(f.note);
  return lines;
}

function summarize(r: ScenarioReport): void {
  out("");
  out(`${r.scenario}: ${r.verdict.toUpperCase()} in ${(r.durationMs / 1000).toFixed(1)} s`);
  for (const l of reportHead(r)) out(`  ${l}`);
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

const FAULT_OPTIONS = {
  fault: { type: "string" },
  at: { type: "string" },
  after: { type: "string" },
  "after-written": { type: "string" },
  rescue: { type: "boolean" },
  disk: { type: "string" },
  device: { type: "string" },
} as const;

/** Check --fault and a one-boundary --at against the scenario's steps (exit 2 before anything runs). */
/** `--after S`: seconds into the step, a number >= 0. */
function afterMs(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !Number.isFinite(n)) throw new UsageError(`bad --after "${v}": use seconds, like 4 or 2.5`);
  return Math.round(n * 1000);
}

/**
 * When in step K the fault goes in: `--after S` seconds into it, or
 * `--after-written SIZE` once the guest has written that much to its disks
 * since it started (the same point of a copy on any host). Not both.
 */
function during(v: { after?: string; "after-written"?: string }): Pick<InjectSpec, "afterMs" | "afterWrittenBytes"> {
  if (v.after !== undefined && v["after-written"] !== undefined) {
    throw new UsageError("--after and --after-written both say when the fault goes in: give one", { hint: "--after-written 16M cuts at the same point of a copy however fast the host is" });
  }
  return { afterMs: afterMs(v.after), afterWrittenBytes: v["after-written"] === undefined ? undefined : parseSize(v["after-written"], "--after-written") };
}

async function injectSpec(s: Scenario, v: { fault?: string; after?: string; "after-written"?: string; rescue?: boolean; disk?: string; device?: string }, at: string): Promise<InjectSpec> {
  const fault = faultByName(v.fault!);
  const plan = await planSteps(s);
  const list = parseBoundaries(at, plan.steps.length, { complete: plan.complete, hint: `\`vmlab sweep ${s.name} --fault ${fault} --plan\` lists the steps` });
  if (list.length !== 1) throw new UsageError(`--at takes one step for vmlab run, not "${at}"`, { hint: `\`vmlab sweep ${s.name} --fault ${fault} --at ${at}\` runs several` });
  return { fault, at: list[0]!, ...during(v), rescue: v.rescue, disk: v.disk, device: v.device };
}

async function cmdFaults(): Promise<number> {
  table(Object.entries(FAULTS).map(([k, v]) => [k, v]));
  return 0;
}

async function cmdSweep(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...FAULT_OPTIONS, jobs: { type: "string", short: "j" }, "report-dir": { type: "string" }, plan: { type: "boolean" } },
  });
  if (positionals.length !== 1) throw new UsageError("vmlab sweep takes one scenario: vmlab sweep <scenario> --fault NAME", { hint: "`vmlab list` shows the scenarios" });
  if (values.fault === undefined) throw new UsageError("vmlab sweep needs --fault NAME", { hint: `the faults are: ${Object.keys(FAULTS).join(", ")}` });
  const fault = faultByName(values.fault);
  const s = await loadScenario(positionals[0]!);
  const plan = await planSteps(s);
  if (plan.steps.length === 0) throw new UsageError(`${s.name} has no steps a fault can go between`);
  const boundaries =
    values.at === undefined
      ? defaultBoundaries(plan.steps)
      : parseBoundaries(values.at, plan.steps.length, { complete: plan.complete, hint: `\`vmlab sweep ${s.name} --fault ${fault} --plan\` lists the steps` });
  const jobs = values.jobs === undefined ? defaultJobs() : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`bad --jobs "${values.jobs}": use a whole number of 1 or more`);
  const when = during(values);
  if (values.plan) {
    const on = new Set(boundaries);
    plan.steps.forEach((n, i) => out(`${on.has(i + 1) ? "*" : " "} ${String(i + 1).padStart(2)}  ${n}`));
    out(`${on.has(plan.steps.length + 1) ? "*" : " "} ${String(plan.steps.length + 1).padStart(2)}  (after the last step)`);
    if (!plan.complete) out("(the list may go on: the scenario looks at the machine between steps, so its later steps show only in a run)");
    out(`* = swept by default with --fault ${fault}`);
    return 0;
  }
  requireTool("qemu-system-x86_64");
  requireTool("qemu-img");
  const accel = await chooseAccel();
  await ensureImage(await loadRecipe(s.image), { progress: (m) => process.stderr.write(`image ${s.image}: ${m}\n`) });
  if (values.rescue) await ensureImage(await loadRecipe("rescue"), { progress: (m) => process.stderr.write(`image rescue: ${m}\n`) });
  process.stderr.write(`sweep ${s.name} --fault ${fault}: ${boundaries.length} runs (steps ${boundaries.join(", ")}), ${jobs} at a time\n`);
  const onEvent = renderer(true);
  const result = await sweep(s, {
    fault,
    boundaries,
    ...when,
    rescue: values.rescue,
    jobs,
    reportDir: values["report-dir"],
    disk: values.disk,
    device: values.device,
    accel,
    onEvent,
    onRow: (row) => process.stderr.write(`sweep: step ${row.at} done: ${row.boot.outcome}, root ${row.root.which}, data ${row.data.state}\n`),
  });
  out("");
  for (const l of sweepTable(result)) out(l);
  out(`table: ${join(result.dir, "sweep.txt")} (and sweep.json)`);
  return result.rows.some((r) => r.verdict !== "pass") ? 1 : 0;
}

/** `--keep` alone means --keep=always; parseArgs has no optional values. */
function keepArg(args: string[]): string[] {
  return args.map((a) => (a === "--keep" ? "--keep=always" : a));
}

function printKept(r: ScenarioReport): void {
  for (const k of r.kept ?? []) {
    out(`  kept: ${k.id} (QEMU pid ${k.pid}, SSH on 127.0.0.1:${k.sshPort}); the machine goes on running`);
    out(`    vmlab ssh ${k.id}        a root shell on the guest (lab key)`);
    out(`    vmlab console ${k.id}    its serial console (root / vmlab); ${DETACH_KEY} detaches`);
    out(`    vmlab stop ${k.id}       end it and remove its disks`);
  }
}

async function cmdRun(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: keepArg(args),
    allowPositionals: true,
    options: {
      "report-dir": { type: "string" },
      jobs: { type: "string", short: "j" },
      all: { type: "boolean" },
      keep: { type: "string" },
      ...SELECT_OPTIONS,
      ...FAULT_OPTIONS,
    },
  });
  const byTag = Boolean(values.tag?.length);
  if (values.all && positionals.length) throw new UsageError("vmlab run takes scenario names or --all, not both", { hint: "use --tag or --exclude-tag to narrow --all" });
  const names = values.all || (byTag && positionals.length === 0) ? await scenarioNames() : positionals;
  if (names.length === 0) throw new UsageError("vmlab run needs a scenario name or file, --all, or --tag", { hint: "`vmlab list` shows the scenarios" });
  const jobs = values.jobs === undefined ? defaultJobs() : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`bad --jobs "${values.jobs}": use a whole number of 1 or more`);
  const keep = values.keep;
  if (keep !== undefined && keep !== "always" && keep !== "on-failure") {
    throw new UsageError(`bad --keep "${keep}": use --keep (always), --keep=always or --keep=on-failure`);
  }
  // Resolve every scenario and check the host before anything starts.
  const { scenarios, shard, selected } = await selectScenarios(names, values);
  let inject: InjectSpec | undefined;
  // Every fault option needs --fault: none of them is ever ignored.
  const faultOnly = (["at", "after", "after-written", "rescue", "disk", "device"] as const).filter((k) => values[k] !== undefined);
  if (values.fault === undefined && faultOnly.length) {
    throw new UsageError(`${faultOnly.map((k) => `--${k}`).join(", ")} ${faultOnly.length > 1 ? "need" : "needs"} --fault NAME --at K`, { hint: "`vmlab faults` lists the faults; `vmlab sweep <scenario> --fault NAME --plan` numbers the steps" });
  }
  if (values.fault !== undefined) {
    if (values.at === undefined) throw new UsageError("--fault and --at go together: --fault NAME --at K", { hint: "`vmlab faults` lists the faults; `vmlab sweep <scenario> --fault NAME --plan` numbers the steps" });
    if (scenarios.length !== 1) throw new UsageError("--fault needs exactly one scenario");
    inject = await injectSpec(scenarios[0]!, values, values.at);
  }
  if (scenarios.length === 0) {
    // Only a shard can come out empty (more shards than scenarios): nothing to do is not a failure.
    out(`shard ${shard?.index}/${shard?.count}: none of the ${selected} selected scenarios falls to this shard; nothing to run`);
    return 0;
  }
  if (shard) process.stderr.write(`shard ${shard.index}/${shard.count}: ${scenarios.map((s) => s.name).join(", ")} (of ${selected} selected)\n`);
  requireTool("qemu-system-x86_64");
  requireTool("qemu-img");
  // The accelerator is chosen before anything is written: a forced KVM that does not work is exit 2, nothing made.
  const accel = await chooseAccel();
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
        const r = await runScenario(s, { reportDir: values["report-dir"], onEvent, keep: keep as "always" | "on-failure" | undefined, inject, accel });
        summarize(r);
        if (r.probe) for (const l of sweepTable({ scenario: s.name, fault: r.probe.fault as InjectSpec["fault"], rows: [{ ...r.probe, verdict: r.verdict, error: r.error?.message, report: "" }], wallMs: r.durationMs, dir: r.runDir })) out(l);
        printKept(r);
        reports.push(r);
      }
    }),
  );
  // The durations balance later shards; failing to record them does not fail the run.
  const durationsPath = values.durations ?? defaultDurationsPath();
  await recordDurations(durationsPath, reports).catch((err) => process.stderr.write(`vmlab: could not record durations in ${durationsPath}: ${(err as Error).message}\n`));
  const failed = reports.filter((r) => r.verdict !== "pass");
  if (reports.length > 1) out(`\n${reports.length - failed.length} passed, ${failed.length} failed${failed.length ? `: ${failed.map((r) => r.scenario).join(", ")}` : ""}`);
  return failed.length ? 1 : 0;
}

function age(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return "?";
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${(s / 3600).toFixed(1)}h`;
}

async function cmdPs(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: "boolean" } } });
  const all = await listKept();
  // A dead machine is shown once, as dead, and cleaned right away: it never shows as alive.
  const shown = all.map((e) => ({ ...e, ageS: Math.round((Date.now() - Date.parse(e.keptAt)) / 1000), cleaned: !e.alive }));
  for (const e of all) if (!e.alive) await cleanKept(e);
  if (values.json) {
    out(JSON.stringify(shown, null, 2));
    return 0;
  }
  if (shown.length === 0) {
    out("no kept machines; `vmlab run --keep NAME` keeps one");
    return 0;
  }
  const rows = [["ID", "SCENARIO", "VERDICT", "STATE", "AGE", "SSH", "PID", "REPORT"]];
  for (const e of shown) {
    rows.push([e.id, e.scenario, e.verdict, e.alive ? "running" : "dead, cleaned", age(e.keptAt), e.sshPort ? `127.0.0.1:${e.sshPort}` : "-", String(e.pid), e.reportDir]);
  }
  table(rows);
  for (const e of shown) if (!e.alive) process.stderr.write(`${e.id}: ${e.why}; its disks and entry were removed\n`);
  return 0;
}

async function cmdSsh(args: string[]): Promise<number> {
  const [id, ...rest] = args;
  if (!id || id.startsWith("-")) throw new UsageError("vmlab ssh needs the id of a kept machine", { hint: "`vmlab ps` lists them; vmlab ssh ID [command...]" });
  const command = rest[0] === "--" ? rest.slice(1) : rest;
  requireTool("ssh");
  const e = await requireAlive(id);
  if (!e.sshKey) e.sshKey = (await labKey()).privateKey;
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const child = spawn("ssh", keptSshArgs(e, command, tty), { stdio: "inherit" });
  // Ctrl-C belongs to the session: ssh gets it, and this process waits for ssh's exit code.
  const ignore = () => undefined;
  process.on("SIGINT", ignore);
  const code = await new Promise<number>((resolve) => {
    child.on("error", () => resolve(255));
    child.on("exit", (c, sig) => resolve(c ?? 128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 9)));
  });
  process.off("SIGINT", ignore);
  return code;
}

async function cmdConsole(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length !== 1) throw new UsageError("vmlab console needs the id of one kept machine", { hint: "`vmlab ps` lists them" });
  const e = await requireAlive(positionals[0]!);
  const tty = Boolean(process.stdin.isTTY);
  process.stderr.write(`vmlab: serial console of ${e.id} (user root, password vmlab)${tty ? "; press Enter for a prompt" : ""}; ${DETACH_KEY} detaches, the machine keeps running\n`);
  const how = await attachConsole(e.serialSocket, { input: process.stdin, output: process.stdout });
  process.stdin.destroy();
  if (how === "console-closed") {
    process.stderr.write(`\nvmlab: the console of ${e.id} closed: the machine stopped (\`vmlab ps\` shows it)\n`);
    return 1;
  }
  if (tty) process.stderr.write(`\nvmlab: detached from ${e.id}; it keeps running (\`vmlab stop ${e.id}\` ends it)\n`);
  return 0;
}

async function cmdStop(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { all: { type: "boolean" } } });
  if (values.all && positionals.length) throw new UsageError("vmlab stop takes ids or --all, not both");
  if (!values.all && positionals.length === 0) throw new UsageError("vmlab stop needs the id of a kept machine, or --all", { hint: "`vmlab ps` lists them" });
  // Resolve every id first: a typo stops nothing.
  const targets: KeptStatus[] = values.all ? await listKept() : [];
  if (!values.all) for (const id of new Set(positionals)) targets.push(await findKept(id));
  if (values.all && targets.length === 0) out("no kept machines");
  for (const e of targets) {
    const how = await stopKept(e);
    out(how === "was-dead" ? `${e.id}: was no longer running (${e.why}); cleaned` : `${e.id}: stopped${how === "killed" ? " (QEMU did not quit in time and was killed)" : ""}; its disks were removed, the report stays in ${e.reportDir}`);
  }
  return 0;
}

async function cmdReport(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "merge") throw new UsageError(`unknown report command "${sub ?? ""}"`, { hint: "vmlab report merge DIR... [--out DIR]" });
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { out: { type: "string" } } });
  const outDir = values.out ?? "reports-merged";
  const summary = await mergeReports(positionals, outDir);
  process.stdout.write(summaryText(summary));
  out(`merged into ${outDir}: junit.xml, summary.txt, summary.json, durations.json${summary.failed ? ", failures/" : ""}`);
  return summary.failed ? 1 : 0;
}

async function cmdImage(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { rebuild: { type: "boolean" }, key: { type: "boolean" } } });
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
    case "hash": {
      // The cache key of built images: the recipe, the build procedure and the lab key.
      const names = positionals.length ? positionals : await recipeNames();
      const { publicKey } = await labKey();
      const lines: string[] = [];
      for (const n of names) lines.push(`${n} ${recipeHash(await loadRecipe(n), publicKey)}`);
      if (values.key) out(`vmlab-images-${createHash("sha256").update(lines.join("\n")).digest("hex").slice(0, 16)}`);
      else for (const l of lines) out(l);
      return 0;
    }
    case "rm": {
      if (positionals.length === 0) throw new UsageError("vmlab image rm needs a recipe name");
      for (const n of positionals) out(`removed ${await removeImage(n)} build(s) of ${n}`);
      return 0;
    }
    default:
      throw new UsageError(`unknown image command "${sub ?? ""}"`, { hint: "vmlab image build|list|rm|hash" });
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
      return cmdList(args);
    case "ps":
      return cmdPs(args);
    case "ssh":
      return cmdSsh(args);
    case "console":
      return cmdConsole(args);
    case "stop":
      return cmdStop(args);
    case "report":
      return cmdReport(args);
    case "run":
      return cmdRun(args);
    case "sweep":
      return cmdSweep(args);
    case "faults":
      return cmdFaults();
    case "image":
      return cmdImage(args);
    case "disk":
      return cmdDisk(args);
    case "inspect":
      return cmdInspect(args);
    case "dr":
      return cmdDr(args);
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

/** Rows as aligned columns; the last column runs free. */
function table(rows: string[][]): void {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
}
