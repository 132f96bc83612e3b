/**
 * The `vmlab` command line: commands and options on commander, each command
 * a thin call into src/ (lab/commands/). Exit codes: 0 passed, 1 a scenario
 * failed, 2 bad usage or a host that is not ready.
 */
import { Command, CommanderError } from "commander";
import { hostFsError, VmlabError } from "../src/errors.ts";
import { cacheDir } from "../src/paths.ts";
import { DETACH_KEY } from "../src/vm/console.ts";
import { cmdImageBuild, cmdImageHash, cmdImageList, cmdImageRm, cmdDiskCreate, cmdDiskInfo, cmdReportHtml, cmdReportMerge } from "./commands/assets.ts";
import { cmdBackupBoot, cmdInspect, cmdRestoreBoot } from "./commands/dr.ts";
import { cmdDoctor, cmdSetup } from "./commands/host.ts";
import { cmdInit } from "./commands/init.ts";
import { cmdLayoutCapture, cmdLayoutImport } from "./commands/layout.ts";
import { cmdConsole, cmdPs, cmdSsh, cmdStop } from "./commands/machines.ts";
import { cmdCheck, cmdReboot, cmdRescue, cmdUp } from "./commands/handson.ts";
import { cmdFaults, cmdList, cmdRehearse, cmdRun, cmdSweep } from "./commands/scenarios.ts";
import { cmdTrainCheck, cmdTrainHint, cmdTrainList, cmdTrainProve, cmdTrainReset, cmdTrainRescue, cmdTrainSolution, cmdTrainStart, cmdTrainStatus, cmdTrainStop } from "./commands/train.ts";
import { UsageError } from "../src/errors.ts";

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

const EXIT_CODES = `
Exit codes: 0 all passed, 1 a scenario failed, 2 bad usage or host not ready
(vmlab ssh passes the remote command's exit code through; ssh itself exits 255 when it cannot connect).
The README documents every command, scenario and fault.`;

/** Selection options, for run and list. */
function withSelection(c: Command): Command {
  return c
    .option("--tag <tag>", "keep scenarios with this tag (repeatable)", collect)
    .option("--exclude-tag <tag>", "then drop scenarios with this tag (repeatable)", collect)
    .option("--shard <k/n>", "this runner's share of the selection, balanced by recorded durations")
    .option("--durations <file>", "recorded durations for --shard (default ~/.cache/vmlab/durations.json)");
}

/** Fault options, for run and sweep. */
function withFault(c: Command, atHelp: string): Command {
  return c
    .option("--fault <name>", "inject this fault (`vmlab faults` lists them)")
    .option("--at <step>", atHelp)
    .option("--after <seconds>", "inject it this long into the step, while it runs")
    .option("--after-written <size>", "inject it once the step has written SIZE (like 16M) to disk")
    .option("--rescue", "try the rescue route when the firmware boot after the fault fails")
    .option("--disk <id>", "pulled-disk: which disk (default: the first); for sweep, several in turn, like sda,sdb")
    .option("--device <dm-name>", "io-errors: which device-mapper device");
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command("vmlab")
    .description("rehearse storage migrations and disaster recovery on real Linux guests")
    .usage("<command> [options]")
    .exitOverride()
    .enablePositionalOptions()
    .showSuggestionAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith("error:") ? `vmlab: ${s}` : s) })
    .addHelpText("after", EXIT_CODES);
  const act =
    <A extends unknown[]>(fn: (...a: A) => Promise<number>) =>
    async (...a: A) =>
      setExit(await fn(...a));

  program.command("doctor").description("check the host: tools, packages, accelerator (KVM or TCG)").option("--quiet", "print nothing; the exit code says").action(act((o) => cmdDoctor(o)));
  program.command("setup").description("install the host packages (as root on Debian/Ubuntu), or print the command").option("--dry-run", "print the command only").action(act((o) => cmdSetup(o)));

  program
    .command("init")
    .description("create a starter project depending on vmlab: an example scenario and runbook, a CI workflow, a README (never overwrites a file)")
    .argument("[dir]", "the project's directory (default: the current one)")
    .option("--vmlab-spec <spec>", "the vmlab dependency in package.json (default ^VERSION; or file:..., a tarball, a git URL)")
    .option("--name <name>", "the package name (default: the directory's name)")
    .action(act((dir: string | undefined, o) => cmdInit(dir, o)));

  withSelection(program.command("list").description("list the scenarios"))
    .option("--names", "one name a line, for scripts")
    .option("--json", "name, description, kind, image, tags, the declared expectation and, for a variant, its good path")
    .option("--markdown", "the pass-conditions table the README carries")
    .action(act((o) => cmdList(o)));

  withFault(
    withSelection(
      program
        .command("run")
        .description("run scenarios by name (scenarios/NAME.ts) or file (a scenario module, or a Markdown or shell runbook), or all of them")
        .argument("[scenarios...]", "scenario names or files")
        .option("--all", "every scenario (--tag alone also starts from all of them)")
        .option("-j, --jobs <n>", "parallel runs (default from cores and memory)")
        .option("--report-dir <dir>", "parent of the run directories (default ./reports or $VMLAB_REPORTS)")
        .option("--keep <when>", "leave the machine running: always (bare --keep) or on-failure")
        .option("--stop-before <step>", "stop one scenario at this step boundary and keep its machine there (`vmlab sweep NAME --fault power-cut --plan` numbers the steps)"),
    ),
    "the step the fault goes in before (or during, with --after / --after-written)",
  ).action(act((names: string[], o) => cmdRun(names, o)));

  program
    .command("rehearse")
    .description("rehearse runbook documents (Markdown or shell) on a real guest, block by block, then reboot through the firmware and judge")
    .argument("<runbooks...>", "runbook files, or names in runbooks/ (NAME.md or NAME.sh)")
    .option("-j, --jobs <n>", "parallel runs (default from cores and memory)")
    .option("--report-dir <dir>", "parent of the run directories (default ./reports or $VMLAB_REPORTS)")
    .option("--keep <when>", "leave the machine running: always (bare --keep) or on-failure")
    .option("--stop-before <block>", "stop before this block (numbered by `vmlab sweep RUNBOOK --fault power-cut --plan`) and keep the machine there")
    .option("--layout <file>", "rehearse on a machine built from this layout.json (`vmlab layout import`) instead of the runbook's image")
    .action(act((names: string[], o) => cmdRehearse(names, o)));

  withFault(
    program
      .command("sweep")
      .description("the danger map: the scenario once per step boundary with the fault injected there")
      .argument("<scenario>", "scenario name or file (a runbook too: its blocks are the steps)")
      .option("-j, --jobs <n>", "parallel runs (default from cores and memory)")
      .option("--report-dir <dir>", "parent of the sweep directory")
      .option("--plan", "list the numbered steps and the swept ones, and stop"),
    "the steps to sweep, like 1,3-5 (default: every step up to the first reboot)",
  ).action(act((name: string, o) => cmdSweep(name, o)));

  program
    .command("up")
    .description("start a kept machine from an image's warm state, with the data set seeded, and print how to reach it")
    .argument("[image]", "image recipe (default debian12-bios)")
    .option("--disks <sizes>", "blank extra disks, like 8G,8G (sdb, sdc, ...)")
    .option("--memory <size>", "guest memory, like 2G (default 1G)")
    .option("--layout <file>", "a machine built from this layout.json (`vmlab layout import`) instead of an image")
    .option("--report-dir <dir>", "parent of the machine's directory (default ./reports or $VMLAB_REPORTS)")
    .action(act((image: string | undefined, o) => cmdUp(image, o)));
  program
    .command("reboot")
    .description("reboot a kept machine through its firmware and print the classified boot with its evidence (exit 1 unless it reached SSH)")
    .argument("<id>", "a kept machine's id, or a unique prefix")
    .action(act((id: string) => cmdReboot(id)));
  program
    .command("check")
    .description("say where / is on a kept machine and whether its data set is intact (exit 1 when not, or / is not on --root)")
    .argument("<id>", "a kept machine's id, or a unique prefix")
    .option("--root <device>", "where / must be, like /dev/mapper/sys-root")
    .action(act((id: string, o) => cmdCheck(id, o)));
  program
    .command("rescue")
    .description("power a kept machine off and boot the rescue system with its disks; --done boots the machine from its own disk again")
    .argument("<id>", "a kept machine's id, or a unique prefix")
    .option("--done", "power the rescue system off and boot the machine through its firmware")
    .action(act((id: string, o) => cmdRescue(id, o)));

  program.command("faults").description("list the faults and how each is injected").action(act(() => cmdFaults()));

  program.command("ps").description("list kept machines (dead ones are shown once, then cleaned)").option("--json", "as JSON").action(act((o) => cmdPs(o)));
  program
    .command("ssh")
    .description("SSH into a kept machine as root; the command's exit code is passed through")
    .argument("[id]", "a kept machine's id, or a unique prefix")
    .argument("[command...]", "a command to run instead of a shell")
    .passThroughOptions()
    .allowUnknownOption()
    .action(
      act(async (id: string | undefined, command: string[]) => {
        if (!id) throw new UsageError("vmlab ssh needs the id of a kept machine", { hint: "`vmlab ps` lists them; vmlab ssh ID [command...]" });
        return cmdSsh(id, command);
      }),
    );
  program
    .command("console")
    .description(`attach to a kept machine's serial console; ${DETACH_KEY} detaches`)
    .argument("[id]", "a kept machine's id, or a unique prefix")
    .action(
      act(async (id: string | undefined) => {
        if (!id) throw new UsageError("vmlab console needs the id of one kept machine", { hint: "`vmlab ps` lists them" });
        return cmdConsole(id);
      }),
    );
  program.command("stop").description("end kept machines and remove their disks").argument("[ids...]").option("--all", "every kept machine").action(act((ids: string[], o) => cmdStop(ids, o)));

  const train = program.command("train").description("training: break-fix exercises with hints and an automatic check (exercises/NAME/)");
  const session = (c: Command) => c.option("--session <id>", "the session (default: the only open one)");
  train.command("list").description("list the exercises").option("--json", "as JSON").action(act((o) => cmdTrainList(o)));
  train.command("start").description("start an exercise: its broken machine, forked in seconds (made once, minutes under TCG)").argument("<exercise>").action(act((name: string) => cmdTrainStart(name)));
  session(train.command("hint").description("the next hint; each one used is recorded")).action(act((o) => cmdTrainHint(o)));
  session(train.command("check").description("reboot through the firmware and check the repair: exit 0 passed, 1 not yet")).action(act((o) => cmdTrainCheck(o)));
  session(train.command("reset").description("back to the broken machine, from its checkpoint")).action(act((o) => cmdTrainReset(o)));
  session(train.command("rescue").description("power the machine off and boot the rescue system with its disks").option("--done", "switch the rescue system off and boot the machine from its own disk")).action(
    act((o) => cmdTrainRescue(o)),
  );
  session(train.command("solution").description("show the reference solution; the exercise counts as given up")).action(act((o) => cmdTrainSolution(o)));
  session(train.command("stop").description("end the session and its machines").option("--all", "every open session")).action(act((o) => cmdTrainStop(o)));
  train.command("status").description("the sessions: exercise, state, hints used, checks").option("--json", "as JSON (without tokens)").action(act((o) => cmdTrainStatus(o)));
  train
    .command("prove")
    .description("prove exercises: broken, the check fails as declared; after the reference solution, it passes")
    .argument("[exercises...]", "default: all")
    .option("--jobs <n>", "machines at a time (default 1)")
    .option("--json", "the results as JSON")
    .action(act((names: string[], o) => cmdTrainProve(names, o)));
  train
    .command("serve")
    .description("the browser way: exercise list, session pages with console and SSH terminals, and /trainer")
    .option("--host <addr>", "address to listen on (default 127.0.0.1; anything else is warned about)")
    .option("--port <n>", "port (default: a free one, printed)")
    .option("--idle-minutes <n>", "stop a session idle this long (default 30)")
    .action(act(async (o) => (await import("./commands/train-serve.ts")).cmdTrainServe(o)));

  const report = program.command("report").description("reports: merge runs, render HTML pages");
  report
    .command("merge")
    .description("merge report directories (CI shards) into one junit.xml, summary and failures/")
    .argument("<dirs...>")
    .option("--out <dir>", "where to write (default ./reports-merged)")
    .action(act((dirs: string[], o) => cmdReportMerge(dirs, o)));
  report
    .command("html")
    .description("(re)render report.html of run directories and sweep.html of sweep directories")
    .argument("<dirs...>", "run directories (with a report.json) or sweep directories (with a sweep.json)")
    .action(act((dirs: string[]) => cmdReportHtml(dirs)));

  const image = program.command("image").description("images built from recipes (images/NAME.ts)");
  image
    .command("build")
    .description("build images (cached by recipe hash)")
    .argument("[recipes...]", "default: all")
    .option("--rebuild", "build even if cached")
    .option("--layout <file>", "build the image of a captured layout (a layout.json from `vmlab layout import`)")
    .action(act((names: string[], o) => cmdImageBuild(names, o)));
  image.command("list").description("list cached images").action(act(() => cmdImageList()));
  image.command("rm").description("remove a recipe's cached builds").argument("<recipes...>").action(act((names: string[]) => cmdImageRm(names)));
  image.command("hash").description("print recipe hashes").argument("[recipes...]", "default: all").option("--key", "one cache key for all of them").action(act((names: string[], o) => cmdImageHash(names, o)));

  const disk = program.command("disk").description("disk image files");
  disk.command("create").description("create an empty disk image").argument("<path>").argument("<size>", "like 8G or 200M").option("--format <qcow2|raw>", "default: from the file name, else qcow2").action(act((path: string, size: string, o) => cmdDiskCreate(path, size, o)));
  disk.command("info").description("a disk image's format, sizes and backing file").argument("<path>").action(act((path: string) => cmdDiskInfo(path)));

  program.command("inspect").description("a disk image's partitions: start, size, type, byte offset, mount command").argument("<image>", "a qcow2 or raw file, or a cached image's name").option("--json", "as JSON").action(act((target: string, o) => cmdInspect(target, o)));

  const dr = program.command("dr").description("disaster recovery on disk image files");
  dr.command("backup-boot").description("copy the MBR, GRUB's gap and /boot (up to the swap partition) to a file").argument("<disk-image>").argument("<backup-file>").option("--sectors <n>", "copy N sectors instead").option("--json", "as JSON").action(act((img: string, backup: string, o) => cmdBackupBoot(img, backup, o)));
  dr.command("restore-boot").description("write such a backup onto a disk of the same size (refused otherwise)").argument("<backup-file>").argument("<disk-image>").option("--json", "as JSON").action(act((backup: string, img: string, o) => cmdRestoreBoot(backup, img, o)));

  const layout = program.command("layout").description("a production machine's storage layout: capture it there, import it here");
  layout
    .command("capture")
    .description("print the read-only sh script to run as root on the machine; it writes a directory of command outputs")
    .option("--tar", "the script also writes a .tar.gz of that directory")
    .option("--list", "list the files it writes and the command behind each, instead of the script")
    .action(act((o) => cmdLayoutCapture(o)));
  layout
    .command("import")
    .description("read a capture directory, its .tar.gz, or a ReaR disklayout.conf; scale it into the lab's disk budget; write layout.json")
    .argument("<source>", "capture directory, .tar.gz, or disklayout.conf")
    .option("-o, --output <file>", "where to write the layout (default layout.json; - for standard output)")
    .option("--scale-to <size>", "largest lab disk, like 16G (default); larger disks are scaled down", "16G")
    .option("--disks <names>", "only these disks of the capture, like sda,sdb (and what is built on them)")
    .option("--json", "print the scaling table as JSON")
    .action(act((source: string, o) => cmdLayoutImport(source, o)));

  return program;
}

/** A bare `--keep` means --keep=always: the value is optional on the command line, not to commander. */
function keepArg(args: string[]): string[] {
  const end = args.indexOf("--");
  return args.map((a, i) => (a === "--keep" && (end < 0 || i < end) ? "--keep=always" : a));
}

async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => (code = c));
  if (argv.length === 0) {
    process.stderr.write(program.helpInformation());
    return 2;
  }
  try {
    await program.parseAsync(argv[0] === "run" || argv[0] === "rehearse" ? keepArg(argv) : argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help asked for is a success; anything commander refused is bad usage (it has printed why).
      return err.code === "commander.helpDisplayed" || err.code === "commander.help" || err.code === "commander.version" ? 0 : 2;
    }
    throw err;
  }
  return code;
}

/**
 * The command line as a process: lab/vmlab.mjs calls it. Importing this
 * module runs nothing, so tests can walk `buildProgram` (test/unit/readme.test.ts).
 */
export async function runCli(argv = process.argv.slice(2)): Promise<void> {
  // Output piped into `head` and closed early is not an error.
  for (const stream of [process.stdout, process.stderr]) stream.on("error", (e: NodeJS.ErrnoException) => e.code === "EPIPE" ? process.exit(process.exitCode ?? 0) : undefined);

  try {
    process.exitCode = await main(argv);
  } catch (err) {
    const fsErr = err instanceof VmlabError ? undefined : hostFsError(err, cacheDir());
    if (err instanceof VmlabError || fsErr) {
      const e = (fsErr ?? err) as VmlabError;
      process.stderr.write(`vmlab: ${e.describe()}\n`);
      process.exitCode = e.exitCode;
    } else {
      process.stderr.write(`vmlab: unexpected error: ${(err as Error)?.stack ?? err}\n`);
      process.exitCode = 1;
    }
  }
}
