/**
 * A machine: one QEMU guest, as a runbook sees it. This file is the façade
 * of verbs a scenario, a procedure or a fault uses (`succeed`, `fail`,
 * `waitUntilSucceeds`, `reboot`, `powerCut`, `block`/`unblock`,
 * `pullDisk`/`plugDisk`, `copyFrom`/`copyTo`, `type`, `checkpoint`, `fork`);
 * the work is done by small parts:
 * - src/vm/qemu-process.ts: the QEMU process and its QMP connection;
 * - src/vm/serial.ts: the serial console's log and socket;
 * - src/vm/boot-watch.ts: watching and classifying a boot;
 * - src/vm/disk-bay.ts: the disks plugged in, pulled out and left out;
 * - src/vm/ssh.ts: commands over SSH.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { existsSync } from "node:fs";
import { chmod, copyFile, readFile, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { requireTool } from "../host/tools.ts";
import { HostError, VmlabError } from "../errors.ts";
import { formatBytes, freeBytes } from "../util/space.ts";
import { classifyBoot, type BootClassification, type BootOutcome } from "../boot/classify.ts";
import { buildQemuArgs, GUEST_SMP, type DiskAttachment, type QemuConfig } from "./qemu-args.ts";
import { socketDir } from "./socket-dir.ts";
import { shellQuote } from "../util/proc.ts";
import { sh, type GuestShValue } from "./guest-sh.ts";
import { sshArgs, sshRun, SshCommandError, SSH_CONNECTION_FAILED, type SshResult, type SshTarget } from "./ssh.ts";
import { QemuProcess, freePort } from "./qemu-process.ts";
import { SerialConsole } from "./serial.ts";
import { DiskBay } from "./disk-bay.ts";
import { BOOT_ID_COMMAND, newBootProof, watchBoot, type BootRecord, type BootVia, type BootWaitOptions } from "./boot-watch.ts";
import type { NewBootProof } from "../verdict/judge.ts";
import type { Checkpoint, ForkOptions } from "./checkpoint.ts";

export { freePort } from "./qemu-process.ts";
export { defaultBootTimeoutMs, expectBoot, handoverSilenceMs, loginGraceMs, newBootProof, type BootRecord, type BootVia, type BootWaitOptions } from "./boot-watch.ts";

export interface MachineOptions {
  name: string;
  /** Directory for the sockets and the serial log of this machine. */
  runDir: string;
  disks: DiskAttachment[];
  accel: { accel: "kvm" | "tcg"; cpu: string };
  sshKey: string;
  memoryMiB?: number;
  smp?: number;
  kernel?: QemuConfig["kernel"];
  noReboot?: boolean;
  network?: boolean;
  /** Resume this saved running state (see src/vm/warm.ts) instead of booting. */
  incomingState?: string;
  qemuBinary?: string;
  /**
   * Scheduling priority (nice) of this QEMU and its vCPU threads. An image
   * build's guests take -10 (builds run as root) so that the tests started
   * beside them do not slow them down.
   */
  nice?: number;
  /** Called with each boot as it is classified, and with progress lines. */
  onEvent?: (e: MachineEvent) => void;
  /**
   * The machine may be kept running after this process exits (`--keep`,
   * `--stop-before`, `vmlab up`). Any other QEMU is tied to the life of the
   * process that starts it: the kernel kills it when that process dies,
   * however it dies (SIGKILL and the OOM killer included). A keepable one
   * that outlives a process killed before keeping it is ended by the next
   * command's orphan sweep (src/vm/orphans.ts).
   */
  keepable?: boolean;
  /**
   * Boot through UEFI (OVMF) instead of SeaBIOS. The machine's NVRAM is its
   * own file in the run directory (`efiVars`), copied at its first start
   * from `varsFrom` (an image's variable store, with its boot entries), or
   * from OVMF's empty one. Reboots and power cuts keep it, as a board does.
   */
  uefi?: { varsFrom?: string };
}

export type MachineEvent =
  | { type: "boot"; boot: BootRecord }
  | { type: "log"; message: string };


/** ssh's messages for a connection that failed before the remote command started: safe to try again. */
const NOT_STARTED = /Connection timed out during banner exchange|kex_exchange_identification|Connection refused|Connection timed out$/m;

/**
 * One QEMU guest: its process, serial console, QMP socket, disks and SSH
 * access. The process is registered with the reaper as soon as it exists,
 * so it is ended on every path.
 */
/** What `cat` (the migration's exec: writer) prints into the QEMU log on a full disk. */
const NO_SPACE_SAID = /No space left on device|Disk quota exceeded/;

export class Machine {
  /** The options it was made with; its disks now are `disks`. */
  readonly opts: Readonly<Omit<MachineOptions, "disks">>;
  readonly console: SerialConsole;
  readonly qmpSocket: string;
  /** QEMU's own messages (warnings, errors), appended at every start. */
  readonly qemuLog: string;
  /** A UEFI machine's NVRAM (OVMF's variable store), its own file. */
  readonly efiVars?: string;
  sshPort = 0;
  readonly boots: BootRecord[] = [];
  private readonly qemu = new QemuProcess();
  private readonly bay: DiskBay;
  /** True only while resume() starts QEMU: any later start (after a power cut) boots from the disks. */
  private resuming = false;
  /**
   * How many things the lab has done to the guest: commands over SSH, text
   * typed on the console, QEMU starts. Equal counts mean nothing was done in
   * between (a check taken then still holds).
   */
  actions = 0;
  /** The guest kernel's boot_id as last read over SSH: a new boot must show another one. */
  bootId?: string;

  constructor(opts: MachineOptions) {
    const { disks, ...rest } = opts;
    this.opts = rest;
    this.bay = new DiskBay(opts.name, disks, Boolean(opts.uefi));
    // Socket paths are limited to 107 bytes: a deep run directory is reached through a short link.
    const sockets = socketDir(opts.runDir, `${opts.name}.serial.sock`);
    this.console = new SerialConsole(join(opts.runDir, `${opts.name}.console.log`), join(sockets, `${opts.name}.serial.sock`));
    this.qmpSocket = join(sockets, `${opts.name}.qmp.sock`);
    this.qemuLog = join(opts.runDir, `${opts.name}.qemu.log`);
    if (opts.uefi) this.efiVars = join(opts.runDir, `${opts.name}.efivars.fd`);
  }

  /** The firmware it boots: "uefi" (OVMF) or "bios" (SeaBIOS). */
  get firmware(): "uefi" | "bios" {
    return this.opts.uefi ? "uefi" : "bios";
  }

  get name(): string {
    return this.opts.name;
  }

  /** The disks plugged in now (pulled ones are not), each with its SCSI target. */
  get disks(): readonly DiskAttachment[] {
    return this.bay.disks;
  }

  get serialLog(): string {
    return this.console.log;
  }

  get serialSocket(): string {
    return this.console.socket;
  }

  get pid(): number | undefined {
    return this.qemu.pid;
  }

  get running(): boolean {
    return this.qemu.running;
  }

  /** Ids of the disks plugged in while the machine ran (not on its command line). */
  get hotPlugged(): string[] {
    return this.bay.hotPlugged;
  }

  get ssh(): SshTarget {
    return { host: "127.0.0.1", port: this.sshPort, user: "root", keyPath: this.opts.sshKey };
  }

  private emit(e: MachineEvent): void {
    this.opts.onEvent?.(e);
  }

  private config(): QemuConfig {
    return {
      name: this.opts.name,
      accel: this.opts.accel,
      memoryMiB: this.opts.memoryMiB ?? 1024,
      smp: this.opts.smp ?? GUEST_SMP,
      disks: [...this.bay.disks],
      serialSocket: this.console.socket,
      serialLog: this.console.log,
      qmpSocket: this.qmpSocket,
      sshPort: this.opts.network === false ? undefined : this.sshPort,
      kernel: this.opts.kernel,
      noReboot: this.opts.noReboot,
      incomingFile: this.resuming ? this.opts.incomingState : undefined,
      ...(this.efiVars ? { uefi: { code: requireTool("OVMF_CODE_4M.fd"), vars: this.efiVars } } : {}),
    };
  }

  // ---- the process ----

  /** Start QEMU. Does not wait for the guest; see `boot`. */
  async start(): Promise<void> {
    this.actions++;
    if (this.efiVars && !existsSync(this.efiVars)) {
      // The machine's own NVRAM, from the image's (or OVMF's empty store); writable even when the source is not.
      await copyFile(this.opts.uefi?.varsFrom ?? requireTool("OVMF_VARS_4M.fd"), this.efiVars);
      await chmod(this.efiVars, 0o644);
    }
    await this.qemu.start({
      name: this.opts.name,
      binary: this.opts.qemuBinary ?? process.env.VMLAB_QEMU ?? "qemu-system-x86_64",
      args: async () => {
        if (this.opts.network !== false) this.sshPort = await freePort();
        return buildQemuArgs(this.config());
      },
      qmpSocket: this.qmpSocket,
      log: this.qemuLog,
      keepable: this.opts.keepable,
      nice: this.opts.nice,
    });
  }

  /**
   * Take over a QEMU that another vmlab process started and kept (src/handson):
   * it is not this process's child, so `alive` (its pid and command line) says
   * whether it still runs.
   */
  adopt(pid: number, sshPort: number, alive: () => boolean): void {
    this.sshPort = sshPort;
    this.qemu.adopt(pid, alive);
  }

  /** Let go of a machine taken over with `adopt`: its console connection and QMP closed, QEMU left running. */
  detach(): void {
    this.console.close();
    this.qemu.closeQmp();
  }

  /**
   * Let QEMU outlive this process, for a machine kept after its run: it is no
   * longer ended on exit, and nothing here waits for it. Returns its pid; from
   * now on the machine is reached through its sockets and SSH port only.
   */
  release(): number {
    const pid = this.qemu.release(this.opts.name, this.opts.keepable);
    this.console.close();
    return pid;
  }

  /** End QEMU at once by its pid. Safe to call at any time. */
  async kill(): Promise<void> {
    this.console.close();
    await this.qemu.kill();
  }

  async qmpExecute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    return this.qemu.execute<T>(this.opts.name, command, args);
  }

  // ---- the console ----

  /** Current size of the serial log: the offset where the next boot begins. */
  async logOffset(): Promise<number> {
    return this.console.offset();
  }

  /** Serial console text from a byte offset to now. */
  async consoleSince(from: number): Promise<string> {
    return this.console.since(from);
  }

  /** The last lines the console printed, for error messages. */
  async consoleTail(lines = 25, from = 0): Promise<string> {
    return this.console.tail(lines, from);
  }

  /** Type on the serial console (the way back in when SSH is gone). */
  async type(text: string): Promise<void> {
    this.actions++;
    await this.console.type(text);
  }

  // ---- boots ----

  /**
   * Wait until the boot that starts at `from` in the serial log reaches SSH,
   * stops in a state it will never leave (panic, rescue shell, ...), or times out.
   */
  async waitForBoot(from: number, opts: BootWaitOptions = {}): Promise<BootRecord> {
    const via = opts.via ?? (this.opts.kernel ? "direct-kernel" : "firmware");
    const previousBootId = this.bootId;
    const { classification, bootId, started } = await watchBoot(
      {
        console: this.console,
        accel: this.opts.accel.accel,
        network: this.opts.network !== false,
        ssh: this.ssh,
        exited: () => !this.qemu.running,
        exitInfo: () => this.qemu.exitInfo,
        previousBootId,
        log: (message) => this.emit({ type: "log", message }),
      },
      from,
      opts,
    );
    if (bootId) this.bootId = bootId;
    return this.recordBoot(via, opts.reason ?? "start", classification, started, from, newBootProof(via, classification, bootId, previousBootId));
  }

  /** Add a boot to the machine's history and tell the listener. */
  private async recordBoot(via: BootVia, reason: string, c: BootClassification, started: number, from: number, newBoot?: NewBootProof): Promise<BootRecord> {
    const boot: BootRecord = {
      via,
      outcome: c.outcome,
      detail: c.detail,
      evidence: c.evidence,
      reached: c.reached,
      durationMs: Date.now() - started,
      log: { file: this.console.log, from, to: await this.console.offset() },
      reason,
      ...(newBoot ? { newBoot } : {}),
    };
    this.boots.push(boot);
    this.emit({ type: "boot", boot });
    return boot;
  }

  /** Start QEMU and wait for the boot to end. */
  async boot(opts: BootWaitOptions = {}): Promise<BootRecord> {
    const from = await this.console.offset();
    await this.start();
    return this.waitForBoot(from, { reason: "start", singleBoot: true, ...opts });
  }

  /**
   * A boot that something else sets off (a reboot typed on the console, a
   * reset from outside): `action` runs, then the boot it started is watched
   * from the console output that came after the call.
   */
  async bootAfter(action: () => Promise<void>, opts: BootWaitOptions = {}): Promise<BootRecord> {
    const from = await this.console.offset();
    await action();
    return this.waitForBoot(from, opts);
  }

  /** Reboot through the firmware: the guest resets, SeaBIOS, GRUB and the initramfs run again. */
  async reboot(opts: BootWaitOptions = {}): Promise<BootRecord> {
    // The connection drops as the guest goes down: do not wait for the command.
    return this.bootAfter(async () => void (await this.run("systemctl reboot", { timeoutMs: 20_000 })), { via: "firmware", reason: "reboot", ...opts });
  }

  /** Hard reset, like the reset button: no shutdown, then firmware. */
  async reset(opts: BootWaitOptions = {}): Promise<BootRecord> {
    return this.bootAfter(async () => void (await this.qmpExecute("system_reset")), { via: "firmware", reason: "reset", singleBoot: true, ...opts });
  }

  /**
   * Start from the saved running state: no firmware, no kernel boot. The guest
   * clock is set from the host's, since the guest wakes up believing it is
   * still the moment the state was saved.
   */
  async resume(opts: { timeoutMs?: number; reason?: string; ended?: BootOutcome } = {}): Promise<BootRecord> {
    if (!this.opts.incomingState) throw new VmlabError(`machine ${this.opts.name} has no saved state to resume`);
    const from = await this.console.offset();
    const started = Date.now();
    this.resuming = true;
    try {
      await this.start();
    } finally {
      this.resuming = false;
    }
    const deadline = started + (opts.timeoutMs ?? 120_000);
    // The state was saved paused; once it is loaded, let the guest run.
    for (;;) {
      const st = await this.qmpExecute<{ status: string }>("query-status");
      if (st.status === "running") break;
      if (st.status !== "inmigrate") {
        await this.qmpExecute("cont");
        break;
      }
      if (Date.now() > deadline) break;
      await sleep(20);
    }
    if (opts.ended && opts.ended !== "ssh") {
      // A machine saved after its boot had failed (an emergency shell, a panic): nothing answers SSH, and nothing need.
      const c = classifyBoot("", { timedOut: true });
      c.outcome = opts.ended;
      c.evidence = [`resumed the saved state of a machine whose boot had ended as ${opts.ended}`];
      c.reached = { firmware: false, grub: false, kernel: false, initramfs: false, userspace: false };
      return this.recordBoot("saved-state", opts.reason ?? "resume", c, started, from);
    }
    let answered = false;
    while (!answered && Date.now() < deadline && this.running) {
      const r = await sshRun(this.ssh, `date -u -s @${(Date.now() / 1000).toFixed(3)} >/dev/null && ${BOOT_ID_COMMAND}`, { timeoutMs: 10_000, connectTimeoutS: 5 });
      answered = r.exitCode === 0;
      if (answered) this.bootId = r.stdout.trim() || undefined;
      else await sleep(100);
    }
    // A resumed guest prints nothing on its console: the outcome comes from SSH alone.
    const c = classifyBoot(await this.console.since(from), answered ? { sshAnswered: true } : { timedOut: true });
    if (answered) c.evidence = ["sshd answered after resuming the saved state"];
    else if (!this.running) c.evidence.push(`QEMU exited: ${this.qemu.exitInfo}`);
    c.reached = { firmware: false, grub: false, kernel: false, initramfs: false, userspace: answered };
    return this.recordBoot("saved-state", opts.reason ?? "resume", c, started, from);
  }

  /**
   * Save the running state to a file (QMP stop + migrate) and quit. The disk
   * must be kept exactly as it is now for the state to be resumed later.
   */
  async saveState(file: string): Promise<void> {
    await this.qmpExecute("stop");
    await this.writeState(file);
    await this.powerCut();
  }

  /** Write the paused guest's running state to a file (QMP migrate) and wait until it is complete. */
  async writeState(file: string): Promise<void> {
    // QEMU runs an exec: URI with /bin/sh -c (dash on Debian): POSIX quoting.
    await this.qmpExecute("migrate", { uri: `exec:cat > ${shellQuote(file)}` });
    for (;;) {
      const m = await this.qmpExecute<{ status?: string; "error-desc"?: string }>("query-migrate");
      if (m.status === "completed") return;
      if (m.status === "failed" || m.status === "cancelled") {
        // What was written is no state: it goes. A full disk is named with its directory and the bytes.
        const written = await stat(file).then((x) => x.size, () => 0);
        await rm(file, { force: true });
        const dir = dirname(file);
        const free = await freeBytes(dir).catch(() => undefined);
        const memory = (this.opts.memoryMiB ?? 1024) * 2 ** 20;
        const said = await readFile(this.qemuLog, "utf8").catch(() => "");
        if (NO_SPACE_SAID.test(said.slice(-4096)) || (free !== undefined && free < memory - written)) {
          throw new HostError(
            `no space left in ${dir} to save the running state of ${this.opts.name}: it needs up to ${formatBytes(memory)} (the guest's memory), ${free === undefined ? "" : `${formatBytes(free)} free now that the partial file (${formatBytes(written)}) is removed`}`,
            { where: file, output: m["error-desc"], hint: `free space on the file system that holds ${dir} (\`df -h ${dir}\`), or point the reports or VMLAB_CACHE at a larger one; nothing half-written is kept` },
          );
        }
        throw new VmlabError(`saving the state of ${this.opts.name} failed: ${m["error-desc"] ?? m.status}`, { where: file });
      }
      await sleep(50);
    }
  }

  /** Power cut: QEMU quits at once; nothing the guest had not written reaches the disk. */
  async powerCut(): Promise<void> {
    if (!this.running) return;
    try {
      await this.qmpExecute("quit");
    } catch {
      /* the socket closes as QEMU quits */
    }
    await this.qemu.waitExit(10_000);
  }

  /** Clean ACPI shutdown; falls back to a kill after the timeout. */
  async shutdown(timeoutMs = 120_000): Promise<void> {
    if (!this.running) return;
    const deadline = Date.now() + timeoutMs;
    // As an admin would: `systemctl poweroff` over SSH. The ACPI power button
    // alone is not enough: a guest whose logind has not taken the button yet
    // ignores it, and the lab then waited out the whole timeout for nothing.
    if (this.opts.network !== false) {
      await sshRun(this.ssh, "systemctl poweroff", { timeoutMs: 15_000, connectTimeoutS: 5 }).catch(() => undefined);
      const until = Math.min(deadline, Date.now() + 60_000);
      while (this.running && Date.now() < until) await sleep(100);
    }
    if (this.running) {
      this.emit({ type: "log", message: "no power-off after systemctl poweroff: pressing the ACPI power button" });
      try {
        await this.qmpExecute("system_powerdown");
      } catch {
        /* fall through to the kill */
      }
    }
    await this.qemu.waitExit(Math.max(0, deadline - Date.now()));
  }

  // ---- commands ----

  /**
   * Run a command over a new SSH connection; never throws for a non-zero exit.
   * A connection that fails before the command starts (no banner, refused) is
   * tried again: under TCG a freshly pivoted root loads sshd from a cold page
   * cache and can take longer than one connect timeout to answer.
   */
  async run(command: string, opts: { timeoutMs?: number; input?: string } = {}): Promise<SshResult> {
    this.actions++;
    if (!this.running) throw new VmlabError(`cannot run \`${command}\`: machine ${this.opts.name} is not running`, { output: this.qemu.exitInfo });
    for (let attempt = 1; ; attempt++) {
      const r = await sshRun(this.ssh, command, { timeoutMs: opts.timeoutMs ?? 30 * 60_000, input: opts.input, connectTimeoutS: 30 });
      if (r.exitCode !== SSH_CONNECTION_FAILED || !NOT_STARTED.test(r.stderr) || attempt >= 3 || !this.running) return r;
      this.emit({ type: "log", message: `ssh did not get through (${r.stderr.trim()}); trying again` });
    }
  }

  /**
   * `vm.sh\`lvcreate -L ${size} -n ${lv} ${vg}\``: `run` with a command built
   * by `sh` (src/vm/guest-sh.ts), each value quoted with zx's `quote`. For
   * `succeed`, `fail` or options, pass `sh\`...\`` to them instead.
   */
  sh(pieces: TemplateStringsArray, ...values: GuestShValue[]): Promise<SshResult> {
    return this.run(sh(pieces, ...values));
  }

  /** Run a command that must exit 0; returns its stdout. */
  async succeed(command: string, opts: { timeoutMs?: number; input?: string; hint?: string } = {}): Promise<string> {
    const r = await this.run(command, opts);
    if (r.exitCode !== 0) {
      const conn = r.exitCode === SSH_CONNECTION_FAILED ? " (ssh could not connect or the connection dropped)" : "";
      throw new SshCommandError(
        `command failed in guest ${this.opts.name}${conn}`,
        r,
        `ssh root@127.0.0.1:${this.sshPort}`,
        opts.hint ?? (conn ? "the console log shows what the guest was doing" : undefined),
      );
    }
    return r.stdout;
  }

  /** Run a command that must fail (exit non-zero, but not a dropped connection); returns the result. */
  async fail(command: string, opts: { timeoutMs?: number } = {}): Promise<SshResult> {
    const r = await this.run(command, opts);
    if (r.exitCode === 0 || r.exitCode === SSH_CONNECTION_FAILED) {
      throw new SshCommandError(
        r.exitCode === 0 ? `command was expected to fail but succeeded in guest ${this.opts.name}` : `ssh connection failed`,
        r,
        `ssh root@127.0.0.1:${this.sshPort}`,
      );
    }
    return r;
  }

  /**
   * Run a command until it exits 0 (a service coming up, a resync ending);
   * returns its stdout. Fails with the last result when the time runs out.
   */
  async waitUntilSucceeds(command: string, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<string> {
    const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
    for (;;) {
      const r = await this.run(command, { timeoutMs: Math.max(1_000, deadline - Date.now()) });
      if (r.exitCode === 0) return r.stdout;
      if (Date.now() >= deadline || !this.running) {
        throw new SshCommandError(`command did not succeed within ${Math.round((opts.timeoutMs ?? 120_000) / 1000)} s in guest ${this.opts.name}`, r, `ssh root@127.0.0.1:${this.sshPort}`);
      }
      await sleep(opts.intervalMs ?? 1_000);
    }
  }

  /** Copy a file from the host into the guest (over SSH; binary-safe). */
  async copyTo(hostPath: string, guestPath: string): Promise<void> {
    // `sh -c` on the guest is dash: the path inside its script is quoted the POSIX way.
    await this.copy(["sh", "-c", `cat > ${shellQuote(guestPath)}`], { inputFile: hostPath }, `copy ${hostPath} to ${guestPath}`);
  }

  /** Copy a file from the guest to the host (over SSH; binary-safe). */
  async copyFrom(guestPath: string, hostPath: string): Promise<void> {
    await this.copy(["cat", guestPath], { stdout: { file: hostPath } }, `copy ${guestPath} to ${hostPath}`);
  }

  /** `remote` is the command's words, quoted for root's login shell (bash). */
  private async copy(remote: string[], io: { inputFile?: string; stdout?: { file: string } }, what: string): Promise<void> {
    this.actions++;
    if (!this.running) throw new VmlabError(`cannot ${what}: machine ${this.opts.name} is not running`, { output: this.qemu.exitInfo });
    const r = await execa("ssh", sshArgs(this.ssh, sh`${remote}`, 30), { reject: false, ...(io.inputFile ? { inputFile: io.inputFile } : { stdin: "ignore" as const, stdout: io.stdout }) });
    if (r.exitCode !== 0) {
      throw new VmlabError(`could not ${what} in guest ${this.opts.name}`, { output: String(r.stderr), where: `ssh root@127.0.0.1:${this.sshPort}` });
    }
  }

  // ---- the network ----

  /** Take the network link down (QMP set_link): no new SSH session opens; the serial console still works. */
  async block(): Promise<void> {
    await this.qmpExecute("set_link", { name: "net0", up: false });
  }

  /** Bring the network link up again. */
  async unblock(): Promise<void> {
    await this.qmpExecute("set_link", { name: "net0", up: true });
  }

  // ---- disks ----

  /**
   * The guest's device node for one of the lab's disks, found by the serial
   * the lab gives it. The kernel probes SCSI disks in parallel, so /dev/sda
   * is not always the first disk: procedures name disks through this.
   */
  async guestDisk(id: string): Promise<string> {
    const link = `/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_${id}`;
    const r = await this.run(`udevadm settle; readlink -e ${link}`);
    const dev = r.stdout.trim();
    if (r.exitCode !== 0 || !dev) {
      throw new VmlabError(`the guest has no disk with serial ${id}`, {
        where: `machine ${this.opts.name}`,
        output: (await this.run("ls -l /dev/disk/by-id/ 2>&1")).stdout,
        hint: `the machine's disks: ${this.disks.map((d) => d.id).join(", ")}`,
      });
    }
    return dev;
  }

  /** Pull a disk out of the running machine, like unplugging it (QMP device_del); later starts leave it out too. */
  async pullDisk(id: string, timeoutMs = 30_000): Promise<DiskAttachment> {
    return this.bay.pull(this.qmpPort(), id, timeoutMs);
  }

  /**
   * Put a disk that was pulled or left out back in: hot-plugged if the
   * machine runs, in its old SCSI slot at the next start if it is off.
   */
  async plugDisk(id: string): Promise<void> {
    const disk = this.bay.takeBack(id);
    if (this.running) await this.bay.plugHot(this.qmpPort(), disk);
    else this.bay.insertCold(disk);
  }

  /**
   * Lose a UEFI machine's NVRAM while it is off, as a board reset, a new
   * motherboard or a VM moved without its variable store does: the next
   * start finds OVMF's empty store, with no boot entries. The firmware is
   * left with what it finds on the disks (the removable-media path).
   */
  async clearNvram(): Promise<void> {
    if (!this.efiVars) throw new VmlabError(`machine ${this.opts.name} boots through BIOS: it has no NVRAM to clear`, { hint: "give the machine `uefi` options, or use a UEFI image" });
    if (this.running) throw new VmlabError(`cannot clear the NVRAM of machine ${this.opts.name} while it runs`, { hint: "shut it down or cut its power first" });
    await copyFile(requireTool("OVMF_VARS_4M.fd"), this.efiVars);
    await chmod(this.efiVars, 0o644);
    this.emit({ type: "log", message: "NVRAM cleared: the next start finds no boot entries" });
  }

  /** Leave a disk out of the next start, as if it were unplugged while the machine was off. */
  leaveOut(id: string): void {
    if (this.running) throw new VmlabError(`cannot leave disk ${id} out of machine ${this.opts.name} while it runs`, { hint: "pull it with pullDisk, or switch the machine off first" });
    this.bay.leaveOut(id);
  }

  /** Plug a new disk into the running machine at the next free SCSI target; later starts keep it. */
  async attachDisk(disk: DiskAttachment): Promise<void> {
    await this.bay.plugHot(this.qmpPort(), disk);
  }

  /** Swap a disk's file for another (a checkpoint's new overlay, which QEMU already writes to). */
  replaceDisk(id: string, disk: DiskAttachment): void {
    this.bay.replace(id, disk);
  }

  private qmpPort() {
    return {
      execute: <T = unknown>(command: string, args?: Record<string, unknown>) => this.qmpExecute<T>(command, args),
      waitForEvent: (event: string, timeoutMs: number, match: Parameters<QemuProcess["waitForEvent"]>[2]) => this.qemu.waitForEvent(event, timeoutMs, match),
    };
  }

  // ---- checkpoints ----

  /** Checkpoint the running machine into `dir` (src/vm/checkpoint.ts): its disks frozen, its state saved; it goes on. */
  async checkpoint(dir: string, label?: string): Promise<Checkpoint> {
    const { takeCheckpoint } = await import("./checkpoint.ts");
    return takeCheckpoint(this, dir, label);
  }

  /** A new machine resumed from a checkpoint, on private overlays: see src/vm/checkpoint.ts. */
  static async fork(cp: Checkpoint, o: ForkOptions, resume: { ended?: BootOutcome } = {}): Promise<{ vm: Machine; boot: BootRecord }> {
    const { fork } = await import("./checkpoint.ts");
    return fork(cp, o, resume);
  }
}
