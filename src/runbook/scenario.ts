/**
 * A runbook document as a scenario: each block a step, run the way its
 * author would at a root shell (src/runbook/shell.ts), then the lab's own
 * end: a reboot through the firmware, the classified boot, where `/` is and
 * the data set seeded before the first block. Reports, forks, the sweep and
 * `--stop-before` treat it like any scenario.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { UsageError, VmlabError } from "../errors.ts";
import { parseSize } from "../disk/size.ts";
import { recipeNames } from "../image/recipes.ts";
import { scenario, type Scenario, type ScenarioContext } from "../scenario/types.ts";
import { ConsoleShell } from "../vm/console-shell.ts";
import { SSH_CONNECTION_FAILED, SshCommandError, type SshResult } from "../vm/ssh.ts";
import { expectBoot, type BootRecord } from "../vm/machine.ts";
import { rootIdentity, rootInfo } from "../procedures/pivot.ts";
import { parseRunbook, runbookName, type ParsedRunbook, type RunbookBlock } from "./parse.ts";
import { blockCommand, blockScript, readBlockOutput, rebootsItself } from "./shell.ts";

const DEFAULT_TIMEOUT_S = 30 * 60;
const TAIL = 40;

/** The lab's own steps after the last block. */
export const FINAL_REBOOT_STEP = "reboot through firmware (end of the runbook)";
export const FINAL_CHECK_STEP = "verify where / is and the data set";

export async function readRunbook(file: string): Promise<ParsedRunbook> {
  const path = resolve(file);
  if (!existsSync(path)) throw new UsageError(`runbook ${path} does not exist`);
  const text = await readFile(path, "utf8");
  const parsed = parseRunbook(text, relative(process.cwd(), path) || path);
  if (parsed.front.layout) {
    // The layout file, relative to the runbook; loading it checks it (exit 2 naming the file).
    const layoutFile = resolve(dirname(path), parsed.front.layout);
    await (await import("../layout/image.ts")).loadLayout(layoutFile);
    parsed.front.image = `layout:${layoutFile}`;
    return parsed;
  }
  const images = await recipeNames();
  if (!images.includes(parsed.front.image)) {
    throw new UsageError(`${parsed.file}: unknown image "${parsed.front.image}" in the front matter`, { hint: `known images: ${images.join(", ")}` });
  }
  return parsed;
}

/** A runbook file as a scenario. A twin with `variant-of` forks from its good path's first block it does not share. */
export async function loadRunbook(file: string): Promise<Scenario> {
  const rb = await readRunbook(file);
  let variantOf: Scenario["variantOf"];
  if (rb.front.variantOf) {
    const goodFile = resolve(dirname(resolve(file)), rb.front.variantOf);
    const good = await readRunbook(goodFile).catch((e: unknown) => {
      throw new UsageError(`${rb.file}: variant-of names ${rb.front.variantOf}, which does not load`, { output: e instanceof VmlabError ? e.describe() : String(e) });
    });
    const at = firstDifference(good.blocks, rb.blocks);
    if (at === undefined) throw new UsageError(`${rb.file}: its blocks are the same as ${good.file}'s: a twin must leave out or change a step`);
    if (at > 0) variantOf = { scenario: runbookName(good.file, good.front), fromStep: good.blocks[at]!.name };
  }
  return runbookScenario(rb, variantOf);
}

/** Index of the first block where two runbooks part (name, text or directives), or undefined when they do not. */
export function firstDifference(a: RunbookBlock[], b: RunbookBlock[]): number | undefined {
  const key = (x: RunbookBlock) => JSON.stringify([x.name, x.text, x.directives]);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (!a[i] || !b[i] || key(a[i]!) !== key(b[i]!)) return i;
  }
  return undefined;
}

export function runbookScenario(rb: ParsedRunbook, variantOf?: Scenario["variantOf"]): Scenario {
  // Pulling a disk, or putting one back, is the lab's part of the reboot: a block may not reboot by itself then.
  let out: string[] = [];
  for (const b of rb.blocks) {
    const r = b.directives.reboot;
    if (!r) continue;
    const without = r.without ?? [];
    const changes = without.length > 0 || out.some((x) => !without.includes(x));
    if (changes && rebootsItself(b.text)) {
      throw new UsageError(`${rb.file}:${b.line}: block "${b.name}" reboots by itself, but the lab has to ${without.length ? `pull ${without.join(", ")}` : `put ${out.join(", ")} back`} for that boot`, {
        hint: "take the reboot command out of the block and leave the reboot to the directive",
      });
    }
    out = without;
  }
  const f = rb.front;
  const twin = f.kind === "twin";
  return scenario({
    name: runbookName(rb.file, f),
    description: f.description ?? `${twin ? "twin runbook" : "runbook"} ${rb.file}: ${rb.title}`,
    image: f.image,
    kind: f.kind,
    tags: ["runbook", ...f.tags],
    ...(f.disks.length || f.memory ? { hardware: { ...(f.disks.length ? { extraDisks: f.disks } : {}), ...(f.memory ? { memoryMiB: Math.round(parseSize(f.memory) / 2 ** 20) } : {}) } } : {}),
    expect: twin ? { failure: f.expect.failure } : { final: { boot: "ssh", ...(f.expect.root ? { root: f.expect.root } : {}), ...(f.expect.fstype ? { fstype: f.expect.fstype } : {}), data: "intact" } },
    ...(variantOf ? { variantOf } : {}),
    runbook: rb.file,
    async run(ctx) {
      await rehearse(rb, ctx);
    },
  });
}

interface BlockRecord {
  step: string;
  line: number;
  via: "ssh" | "console";
  exitCode: number;
  durationMs: number;
  stdoutTail?: string;
  stderrTail?: string;
  outputFiles?: { stdout: string; stderr: string };
  boot?: { outcome: string; detail?: string; evidence: string[]; without?: string[] };
}

const tail = (t: string) => t.trimEnd().split("\n").slice(-TAIL).join("\n");

async function rehearse(rb: ParsedRunbook, ctx: ScenarioContext): Promise<void> {
  const { vm, step, log, record } = ctx;
  const twin = rb.front.kind === "twin";
  const records: BlockRecord[] = [];
  let state = "";
  let console: ConsoleShell | undefined;
  /** The lab disks a `reboot without=` directive has taken out. */
  let disksOut: string[] = [];
  const outDir = join(ctx.runDir, "runbook");
  record("runbook", { file: rb.file, format: rb.format, title: rb.title, blocks: records });
  for (const n of rb.notes) log(n);

  for (const [i, b] of rb.blocks.entries()) {
    // A twin's failing block may be the very failure it predicts: a person
    // would stop there, and so does the rehearsal, leaving the verdict to
    // the twin's expectation (the step stays failed in the report).
    const stopped = await runBlock(i, b).then(
      () => false,
      (err: unknown) => {
        if (!twin || !vm.running) throw err;
        log(`the rehearsal stops at block "${b.name}": ${err instanceof Error ? err.message : String(err)}`);
        record("stoppedAtBlock", { step: b.name, line: b.line, error: err instanceof Error ? err.message : String(err) });
        return true;
      },
    );
    if (stopped) return;
  }

  async function runBlock(i: number, b: RunbookBlock): Promise<void> {
    await step(b.name, async () => {
      const d = b.directives;
      const via = d.console ? "console" : "ssh";
      log(`${rb.file}:${b.line}, ${b.lines.length} line${b.lines.length === 1 ? "" : "s"}, over ${via === "ssh" ? "SSH" : "the serial console"}`);
      const { script, preludeLines } = blockScript(b, state);
      const command = blockCommand(script);
      const timeoutMs = (d.timeoutS ?? DEFAULT_TIMEOUT_S) * 1000;
      const selfReboot = d.reboot !== undefined && rebootsItself(b.text);
      const started = Date.now();
      let r: { exitCode: number; stdout: string; stderr: string } = { exitCode: -1, stdout: "", stderr: "" };
      const runIt = async () => {
        if (via === "console") {
          console ??= new ConsoleShell(vm);
          await console.login();
          r = await console.run(command, { timeoutMs });
        } else r = await vm.run(command, { timeoutMs });
      };
      let boot: BootRecord | undefined;
      const without = d.reboot?.without ?? [];
      const back = d.reboot ? disksOut.filter((x) => !without.includes(x)) : [];
      const gone = without.filter((x) => !disksOut.includes(x));
      if (d.reboot && back.length) {
        // A disk comes back: the machine is switched off, it goes back into its slot, and the machine starts through the firmware.
        await runIt();
        await vm.shutdown();
        for (const x of back) await vm.plugDisk(x);
        for (const x of gone) vm.leaveOut(x);
        log(`powered off; ${back.join(", ")} back in${gone.length ? `, ${gone.join(", ")} left out` : ""}; starting through the firmware`);
        boot = await vm.boot({ via: "firmware" });
        disksOut = without;
        console = undefined;
      } else if (d.reboot) {
        boot = await vm.bootAfter(
          async () => {
            await runIt();
            // A disk that dies: pulled from the running machine (QMP device_del), then the reboot.
            for (const x of gone) await vm.pullDisk(x);
            if (gone.length) log(`pulled ${gone.join(", ")} out of the running machine`);
            if (!selfReboot) await vm.run("systemctl reboot", { timeoutMs: 20_000 });
          },
          { via: "firmware", reason: "reboot" },
        );
        disksOut = without;
        console = undefined;
      } else await runIt();
      const out = readBlockOutput(r.stdout, r.stderr, preludeLines);
      const rec: BlockRecord = { step: b.name, line: b.line, via, exitCode: r.exitCode, durationMs: Date.now() - started };
      if (out.stdout.trim()) rec.stdoutTail = tail(out.stdout);
      if (out.stderr.trim()) rec.stderrTail = tail(out.stderr);
      if (out.stdout.length + out.stderr.length > 4096) {
        await mkdir(outDir, { recursive: true });
        const base = join(outDir, `${String(i + 1).padStart(2, "0")}`);
        await writeFile(`${base}.stdout`, out.stdout);
        await writeFile(`${base}.stderr`, out.stderr);
        rec.outputFiles = { stdout: `${base}.stdout`, stderr: `${base}.stderr` };
      }
      records.push(rec);
      if (out.stdout.trim()) for (const l of tail(out.stdout).split("\n").slice(-5)) log(`| ${l}`);

      const failedLine = out.failed ? b.lines[out.failed.line - 1] : undefined;
      const failedWhere = `${rb.file}:${failedLine ?? b.line}, block "${b.name}"`;
      const result: SshResult = { command: out.failed?.command ?? b.text, exitCode: r.exitCode, stdout: tail(out.stdout), stderr: tail(out.stderr) };

      if (d.fails) {
        if (r.exitCode === 0) throw new SshCommandError(`block "${b.name}" (${rb.file}:${b.line}) was expected to fail, but every command succeeded`, result, failedWhere, "the runbook says this block fails (<!-- vmlab: fails -->); check what changed");
        if (d.fails.exitCode !== undefined && r.exitCode !== d.fails.exitCode) throw new SshCommandError(`block "${b.name}" failed with exit code ${r.exitCode}, not ${d.fails.exitCode} as the runbook says`, result, failedWhere);
        if (d.fails.output && !new RegExp(d.fails.output, "m").test(`${out.stdout}\n${out.stderr}`)) throw new SshCommandError(`block "${b.name}" failed, but its output does not match /${d.fails.output}/`, result, failedWhere);
        log(`failed as the runbook says: exit code ${r.exitCode}${failedLine ? ` at line ${failedLine}: ${out.failed!.command}` : ""}`);
      } else if (boot && selfReboot) {
        // The block rebooted the machine: its connection dropped on the way down, which is no failure.
        if (r.exitCode !== 0 && r.exitCode !== SSH_CONNECTION_FAILED && out.failed) throw blockFailed(rb, b, result, failedLine, failedWhere);
      } else if (r.exitCode !== 0) {
        if (r.exitCode === SSH_CONNECTION_FAILED && out.state === undefined && !out.failed) {
          throw new SshCommandError(`the SSH connection dropped during block "${b.name}" (${rb.file}:${b.line})`, result, failedWhere, "if SSH is expected to go away during this block, run it on the serial console: put <!-- vmlab: console --> right before it");
        }
        throw blockFailed(rb, b, result, failedLine, failedWhere);
      }
      // What the shell left for the next block; a new session or a reboot starts from a fresh login.
      if (out.state !== undefined && !d.newSession && !d.reboot) state = out.state;
      if (d.newSession || d.reboot) state = "";
      if (d.newSession) {
        const again = await vm.run("true", { timeoutMs: 120_000 });
        if (again.exitCode !== 0) throw new SshCommandError(`a new SSH session after block "${b.name}" did not work`, again, failedWhere, "the block was to leave sshd running on the machine");
        log("new SSH session: a fresh login shell");
      }
      if (boot) {
        rec.boot = { outcome: boot.outcome, detail: boot.detail, evidence: boot.evidence, ...(without.length ? { without } : {}) };
        const want = d.reboot!;
        log(`boot after the block: ${boot.outcome}${boot.detail ? ` (${boot.detail})` : ""}`);
        if (want.expect === "ssh") await expectBoot(vm, boot, "ssh");
        else if (boot.outcome !== want.expect || !boot.evidence.some((l) => new RegExp(want.evidence!).test(l))) {
          throw new VmlabError(`after block "${b.name}" the boot ended as ${boot.outcome}, not ${want.expect} with evidence /${want.evidence}/`, {
            where: `${rb.file}:${b.line}`,
            output: [...boot.evidence, "", await vm.consoleTail(25)].join("\n"),
            hint: "the runbook's reboot directive says what this boot must show",
          });
        }
      }
    });
  }

  const boot = await step(FINAL_REBOOT_STEP, async () => {
    const b = await vm.reboot();
    if (!twin) await expectBoot(vm, b, "ssh");
    else log(`boot ended as ${b.outcome}${b.detail ? ` (${b.detail})` : ""}`);
    return b;
  });
  // Planning runs the steps without a machine: no boot comes back, and the plan goes on.
  if (boot && boot.outcome !== "ssh") return;
  await step(FINAL_CHECK_STEP, async () => {
    const root = await rootInfo(vm);
    record("root", root);
    const id = await rootIdentity(vm);
    record("rootIdentity", id);
    log(`/ is ${root.device} (${root.fstype}); UUID ${id.uuid} on ${id.sameUuid.join(", ") || "nothing"}`);
    const check = await ctx.data.check(vm);
    record("data", check);
    if (twin) return;
    const want = rb.front.expect;
    if ((want.root && root.device !== want.root) || (want.fstype && root.fstype !== want.fstype)) {
      throw new VmlabError(`/ is ${root.device} (${root.fstype}), the runbook expects ${want.root ?? "any device"}${want.fstype ? ` (${want.fstype})` : ""}`, {
        where: `${rb.file} (front matter: expect)`,
        output: (await vm.run("findmnt -no SOURCE,FSTYPE,OPTIONS /; cat /proc/cmdline; blkid")).stdout,
        hint: "the machine did not boot the root the runbook moves it to",
      });
    }
    // A copy that still carries the root's UUID or label is a boot away from being mounted instead of it.
    if (id.sameUuid.length > 1 || id.sameLabel.length > 1) {
      throw new VmlabError(`/ (${id.device}) shares its identity with another filesystem: the next boot may mount that one`, {
        where: `${rb.file}, after its last block`,
        output: `UUID=${id.uuid}: ${id.sameUuid.join(", ")}\nLABEL=${id.label}: ${id.sameLabel.join(", ")}`,
        hint: "give the old copy a new label and UUID (tune2fs -L old -U random), or wipe it",
      });
    }
    if (!check.intact) await ctx.data.expectIntact(vm);
  });
}

function blockFailed(rb: ParsedRunbook, b: RunbookBlock, result: SshResult, failedLine: number | undefined, where: string): SshCommandError {
  const what = failedLine ? `line ${failedLine}: \`${result.command}\`` : "a command";
  return new SshCommandError(`block "${b.name}" failed at ${rb.file}:${failedLine ?? b.line}: ${what} exited with code ${result.exitCode}`, result, where, "fix the runbook there, or mark the block as expected to fail: <!-- vmlab: fails -->");
}
