import { execa, type ResultPromise } from "execa";
import { createConnection, createServer, type Socket } from "node:net";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { VmlabError } from "../errors.ts";
import { classifyBoot, stalledAtHandover, terminalOutcome, type BootClassification, type BootOutcome } from "../boot/classify.ts";
import { buildQemuArgs, GUEST_SMP, type DiskAttachment, type QemuConfig } from "./qemu-args.ts";
import { QmpClient } from "./qmp.ts";
import { socketDir } from "./socket-dir.ts";
import { shellQuote } from "../util/proc.ts";
import { registerPid, unregisterPid } from "./reaper.ts";
import { sshRun, SshCommandError, SSH_CONNECTION_FAILED, type SshResult, type SshTarget } from "./ssh.ts";
import type { NewBootProof } from "../verdict/judge.ts";

/** How a machine came up: through the firmware, by direct kernel boot, or resumed from a saved running state. */
export type BootVia = "firmware" | "direct-kernel" | "saved-state";

/** One boot of a machine, as the report records it. */
export interface BootRecord {
  via: BootVia;
  outcome: BootClassification["outcome"];
  detail?: string;
  evidence: string[];
  reached: BootClassification["reached"];
  /** Milliseconds from power-on (or reset) to the outcome. */
  durationMs: number;
  /** Byte range of this boot in the serial log. */
  log: { file: string; from: number; to: number };
  /** Why the boot happened: "start", "reboot", "reset", "power-on after power cut". */
  reason: string;
  /**
   * How the lab knows this is a new boot and not a login to the system that
   * was running before: the banner in this boot's slice of the console, and
   * a boot_id that differs from the one before. Absent for a resume.
   */
  newBoot?: NewBootProof;
}

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
}

export type MachineEvent =
  | { type: "boot"; boot: BootRecord }
  | { type: "log"; message: string };

export interface BootWaitOptions {
  timeoutMs?: number;
  /**
   * The console slice starts at a power-on or reset, so what it holds is one
   * boot and the boots it restarted into: a boot that restarts again and
   * again is a `reboot-loop`. Not for a reboot, whose slice starts with the
   * old system going down.
   */
  singleBoot?: boolean;
  via?: BootVia;
  reason?: string;
}

/** Ask the kernel for a free TCP port on the loopback address. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A file's text from a byte offset, trimmed; empty when it cannot be read. */
function readSince(file: string, from: number): string {
  try {
    return readFileSync(file).subarray(from).toString("utf8").trim();
  } catch {
    return "";
  }
}

/** ssh's messages for a connection that failed before the remote command started: safe to try again. */
const NOT_STARTED = /Connection timed out during banner exchange|kex_exchange_identification|Connection refused|Connection timed out$/m;

/** The default wait for a boot: generous under TCG, where a cold boot takes ~30 s. */
/** How long the console may stay silent after the firmware jumps to a disk before the disk is judged to hold no boot code. */
export function handoverSilenceMs(accel: "kvm" | "tcg"): number {
  return accel === "kvm" ? 10_000 : 30_000;
}

/** A getty's prompt on the serial console, at the end of a line. */
const LOGIN_PROMPT = /^\S+ login: *$/m;

/** How long SSH may take to answer once the console shows a login prompt (sshd starts alongside the gettys). */
export function loginGraceMs(accel: "kvm" | "tcg"): number {
  return accel === "kvm" ? 20_000 : 60_000;
}

export function defaultBootTimeoutMs(accel: "kvm" | "tcg"): number {
  // Generous under TCG: two or three guests on two cores stretch a 45 s boot past four minutes.
  return accel === "kvm" ? 90_000 : 480_000;
}

/**
 * One QEMU guest: its process, serial console, QMP socket and SSH access.
 * The process is registered with the reaper as soon as it exists, so it is
 * ended on every path.
 */
export class Machine {
  readonly opts: MachineOptions;
  readonly serialLog: string;
  readonly serialSocket: string;
  readonly qmpSocket: string;
  /** QEMU's own messages (warnings, errors), appended at every start. */
  readonly qemuLog: string;
  sshPort = 0;
  readonly boots: BootRecord[] = [];
  private proc?: ResultPromise;
  private qmp?: QmpClient;
  private exited = true;
  private exitInfo = "";
  private hotplugs = 0;
  /** Disks pulled out or left out, by id: `plugBack` puts them in again. */
  private readonly outside = new Map<string, DiskAttachment>();
  /** Block nodes of hot-plugged disks by disk id, removed again when the disk is pulled. */
  private readonly hotNodes = new Map<string, string>();
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
    // Pin each disk to its SCSI target, so pulling one leaves the others where they were.
    this.opts = { ...opts, disks: opts.disks.map((d, i) => ({ ...d, scsiId: d.scsiId ?? i })) };
    this.serialLog = join(opts.runDir, `${opts.name}.console.log`);
    // Socket paths are limited to 107 bytes: a deep run directory is reached through a short link.
    const sockets = socketDir(opts.runDir, `${opts.name}.serial.sock`);
    this.serialSocket = join(sockets, `${opts.name}.serial.sock`);
    this.qmpSocket = join(sockets, `${opts.name}.qmp.sock`);
    this.qemuLog = join(opts.runDir, `${opts.name}.qemu.log`);
  }

  get pid(): number | undefined {
    return this.exited ? undefined : this.proc?.pid;
  }

  get running(): boolean {
    return !this.exited;
  }

  /** Ids of the disks plugged in while the machine ran (not on its command line). */
  get hotPlugged(): string[] {
    return [...this.hotNodes.keys()];
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
      disks: this.opts.disks,
      serialSocket: this.serialSocket,
      serialLog: this.serialLog,
      qmpSocket: this.qmpSocket,
      sshPort: this.opts.network === false ? undefined : this.sshPort,
      kernel: this.opts.kernel,
      noReboot: this.opts.noReboot,
      incomingFile: this.resuming ? this.opts.incomingState : undefined,
    };
  }

  /**
   * Take over a QEMU that another vmlab process started and kept (src/handson):
   * it is not this process's child, so `alive` (its pid and command line) says
   * whether it still runs.
   */
  adopt(pid: number, sshPort: number, alive: () => boolean): void {
    this.sshPort = sshPort;
    this.exited = false;
    const t = setInterval(() => {
      if (alive()) return;
      this.exited = true;
      this.exitInfo = `QEMU (pid ${pid}) is gone`;
      clearInterval(t);
    }, 500);
    t.unref();
  }

  /** Let go of a machine taken over with `adopt`: its console connection and QMP closed, QEMU left running. */
  detach(): void {
    this.closeSerial();
    this.qmp?.close();
    this.qmp = undefined;
  }

  /** Current size of the serial log: the offset where the next boot begins. */
  async logOffset(): Promise<number> {
    try {
      return (await stat(this.serialLog)).size;
    } catch {
      return 0;
    }
  }

  /** Serial console text from a byte offset to now. */
  async consoleSince(from: number): Promise<string> {
    let fh;
    try {
      fh = await open(this.serialLog, "r");
    } catch {
      return "";
    }
    try {
      const size = (await fh.stat()).size;
      if (size <= from) return "";
      const buf = Buffer.alloc(size - from);
      await fh.read(buf, 0, buf.length, from);
      return buf.toString("utf8");
    } finally {
      await fh.close();
    }
  }

  /** The last lines the console printed, for error messages. */
  async consoleTail(lines = 25, from = 0): Promise<string> {
    const text = (await this.consoleSince(from)).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
    return text.split("\n").filter((l) => l.trim()).slice(-lines).join("\n");
  }

  /** Start QEMU. Does not wait for the guest; see waitForBoot. */
  async start(): Promise<void> {
    this.actions++;
    if (!this.exited) throw new VmlabError(`machine ${this.opts.name} is already running`);
    const qemu = this.opts.qemuBinary ?? process.env.VMLAB_QEMU ?? "qemu-system-x86_64";
    for (let attempt = 1; ; attempt++) {
      if (this.opts.network !== false) this.sshPort = await freePort();
      const args = buildQemuArgs(this.config());
      // QEMU writes its own messages to a file, not a pipe, and runs in its own
      // session: a machine kept after the run (see release) outlives this process.
      const logFd = openSync(this.qemuLog, "a");
      const logFrom = fstatSync(logFd).size;
      const qemuOutput = () => readSince(this.qemuLog, logFrom);
      // (execa's types take a descriptor number only as a literal, hence the cast)
      const qemuFd = logFd as 3;
      // setpriv (util-linux) sets PR_SET_PDEATHSIG and execs QEMU: same pid, dies with this process.
      const [plainFile, plainArgv] = this.opts.keepable ? [qemu, args] : ["setpriv", ["--pdeathsig", "KILL", "--", qemu, ...args]];
      // nice execs what follows: still the same pid.
      const [file, argv] = this.opts.nice === undefined ? [plainFile, plainArgv] : ["nice", ["-n", String(this.opts.nice), plainFile, ...plainArgv]];
      const proc = execa(file, argv, { reject: false, stdin: "ignore", stdout: qemuFd, stderr: qemuFd, detached: true });
      if (!proc.pid) {
        const r = await proc;
        closeSync(logFd);
        throw new VmlabError(`could not start ${qemu}`, {
          where: `machine ${this.opts.name}`,
          output: qemuOutput() || String(r.shortMessage ?? ""),
          hint: "run `vmlab doctor` to check the host",
        });
      }
      closeSync(logFd);
      registerPid(proc.pid, `qemu ${this.opts.name}`);
      this.proc = proc;
      this.exited = false;
      void proc.then((r) => {
        this.exited = true;
        this.exitInfo = `exit code ${r.exitCode ?? r.signal}: ${qemuOutput()}`;
        if (proc.pid) unregisterPid(proc.pid);
      });
      try {
        this.qmp = await QmpClient.connect(this.qmpSocket, { timeoutMs: 15_000 });
        return;
      } catch (err) {
        await this.kill();
        const out = this.exitInfo;
        // Another run took the port between our check and QEMU's bind: try again.
        if (attempt < 5 && /hostfwd|Could not set up host forwarding/i.test(out)) continue;
        throw new VmlabError(`QEMU for ${this.opts.name} did not come up`, {
          where: `${qemu} ${args.join(" ")}`,
          output: out || String(err),
          hint: "run `vmlab doctor`; check that the disk images exist and are not locked by another QEMU",
        });
      }
    }
  }

  /**
   * Wait until the boot that starts at `from` in the serial log reaches SSH,
   * stops in a state it will never leave (panic, rescue shell, ...), or times out.
   */
  async waitForBoot(from: number, opts: BootWaitOptions = {}): Promise<BootRecord> {
    const via = opts.via ?? (this.opts.kernel ? "direct-kernel" : "firmware");
    const timeoutMs = opts.timeoutMs ?? defaultBootTimeoutMs(this.opts.accel.accel);
    const started = Date.now();
    let classification: BootClassification | null = null;
    let lastSsh = 0;
    let seen = -1;
    let grewAt = Date.now();
    const previousBootId = this.bootId;
    // A slice that starts at a power-on or reset holds one boot and whatever it restarted into (a reboot loop).
    const singleBoot = opts.singleBoot ?? false;
    let bootId: string | undefined;
    let sawOld = false;
    let loginAt = 0;
    while (!classification) {
      const text = await this.consoleSince(from);
      classification = terminalOutcome(text, { singleBoot });
      if (classification) break;
      // A login prompt without SSH: the system is up but off the network. Give sshd its grace, then say so,
      // rather than wait out the whole boot timeout.
      if (!loginAt && LOGIN_PROMPT.test(text)) loginAt = Date.now();
      if (loginAt && this.opts.network !== false && Date.now() - loginAt > loginGraceMs(this.opts.accel.accel)) {
        classification = classifyBoot(text, { timedOut: true, singleBoot });
        break;
      }
      if (text.length !== seen) {
        seen = text.length;
        grewAt = Date.now();
      } else if (Date.now() - grewAt > handoverSilenceMs(this.opts.accel.accel)) {
        // GRUB's boot sector prints "GRUB loading." at once; silence after the hand-over means no boot code.
        classification = stalledAtHandover(text);
        if (classification) break;
      }
      if (this.exited) {
        classification = classifyBoot(text, { timedOut: true, singleBoot });
        classification.evidence.push(`QEMU exited: ${this.exitInfo}`);
        break;
      }
      if (Date.now() - started > timeoutMs) {
        classification = classifyBoot(text, { timedOut: true, singleBoot });
        break;
      }
      // Only try SSH once the kernel has started: it saves connection attempts during firmware and GRUB.
      if (this.opts.network !== false && Date.now() - lastSsh > 500 && /Linux version|systemd/.test(text)) {
        lastSsh = Date.now();
        const r = await sshRun(this.ssh, BOOT_ID_COMMAND, { timeoutMs: 15_000, connectTimeoutS: 5 });
        const id = r.stdout.trim();
        if (r.exitCode === 0 && previousBootId !== undefined && id === previousBootId) {
          // The system from before the reboot, still going down: an SSH login to it is never the new boot.
          if (!sawOld) this.emit({ type: "log", message: `ssh answered with the boot_id from before (${id}): not the new boot yet` });
          sawOld = true;
        } else if (r.exitCode === 0) {
          bootId = id || undefined;
          classification = classifyBoot(await this.consoleSince(from), { sshAnswered: true });
          break;
        }
      }
      await sleep(250);
    }
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
      log: { file: this.serialLog, from, to: await this.logOffset() },
      reason,
      ...(newBoot ? { newBoot } : {}),
    };
    this.boots.push(boot);
    this.emit({ type: "boot", boot });
    return boot;
  }

  /** Start QEMU and wait for the boot to end. */
  async boot(opts: BootWaitOptions = {}): Promise<BootRecord> {
    const from = await this.logOffset();
    await this.start();
    return this.waitForBoot(from, { reason: "start", singleBoot: true, ...opts });
  }

  /**
   * Start from the saved running state: no firmware, no kernel boot. The guest
   * clock is set from the host's, since the guest wakes up believing it is
   * still the moment the state was saved.
   */
  async resume(opts: { timeoutMs?: number; reason?: string; ended?: BootOutcome } = {}): Promise<BootRecord> {
    if (!this.opts.incomingState) throw new VmlabError(`machine ${this.opts.name} has no saved state to resume`);
    const from = await this.logOffset();
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
    while (!answered && Date.now() < deadline && !this.exited) {
      const r = await sshRun(this.ssh, `date -u -s @${(Date.now() / 1000).toFixed(3)} >/dev/null && ${BOOT_ID_COMMAND}`, { timeoutMs: 10_000, connectTimeoutS: 5 });
      answered = r.exitCode === 0;
      if (answered) this.bootId = r.stdout.trim() || undefined;
      else await sleep(100);
    }
    // A resumed guest prints nothing on its console: the outcome comes from SSH alone.
    const c = classifyBoot(await this.consoleSince(from), answered ? { sshAnswered: true } : { timedOut: true });
    if (answered) c.evidence = ["sshd answered after resuming the saved state"];
    else if (this.exited) c.evidence.push(`QEMU exited: ${this.exitInfo}`);
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
        throw new VmlabError(`saving the state of ${this.opts.name} failed: ${m["error-desc"] ?? m.status}`, { where: file });
      }
      await sleep(50);
    }
  }

  /**
   * Run a command over a new SSH connection; never throws for a non-zero exit.
   * A connection that fails before the command starts (no banner, refused) is
   * tried again: under TCG a freshly pivoted root loads sshd from a cold page
   * cache and can take longer than one connect timeout to answer.
   */
  async run(command: string, opts: { timeoutMs?: number; input?: string } = {}): Promise<SshResult> {
    this.actions++;
    if (this.exited) throw new VmlabError(`cannot run \`${command}\`: machine ${this.opts.name} is not running`, { output: this.exitInfo });
    for (let attempt = 1; ; attempt++) {
      const r = await sshRun(this.ssh, command, { timeoutMs: opts.timeoutMs ?? 30 * 60_000, input: opts.input, connectTimeoutS: 30 });
      if (r.exitCode !== SSH_CONNECTION_FAILED || !NOT_STARTED.test(r.stderr) || attempt >= 3 || this.exited) return r;
      this.emit({ type: "log", message: `ssh did not get through (${r.stderr.trim()}); trying again` });
    }
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

  /** Reboot through the firmware: the guest resets, SeaBIOS, GRUB and the initramfs run again. */
  async reboot(opts: BootWaitOptions = {}): Promise<BootRecord> {
    const from = await this.logOffset();
    // The connection drops as the guest goes down: do not wait for the command.
    await this.run("systemctl reboot", { timeoutMs: 20_000 });
    return this.waitForBoot(from, { via: "firmware", reason: "reboot", ...opts });
  }

  /** Hard reset, like the reset button: no shutdown, then firmware. */
  async reset(opts: BootWaitOptions = {}): Promise<BootRecord> {
    const from = await this.logOffset();
    await this.qmpExecute("system_reset");
    return this.waitForBoot(from, { via: "firmware", reason: "reset", singleBoot: true, ...opts });
  }

  /** Power cut: QEMU quits at once; nothing the guest had not written reaches the disk. */
  async powerCut(): Promise<void> {
    if (this.exited) return;
    try {
      await this.qmpExecute("quit");
    } catch {
      /* the socket closes as QEMU quits */
    }
    await this.waitExit(10_000);
  }

  /** Clean ACPI shutdown; falls back to a kill after the timeout. */
  async shutdown(timeoutMs = 120_000): Promise<void> {
    if (this.exited) return;
    const deadline = Date.now() + timeoutMs;
    // As an admin would: `systemctl poweroff` over SSH. The ACPI power button
    // alone is not enough: a guest whose logind has not taken the button yet
    // ignores it, and the lab then waited out the whole timeout for nothing.
    if (this.opts.network !== false) {
      await sshRun(this.ssh, "systemctl poweroff", { timeoutMs: 15_000, connectTimeoutS: 5 }).catch(() => undefined);
      const until = Math.min(deadline, Date.now() + 60_000);
      while (!this.exited && Date.now() < until) await sleep(100);
    }
    if (!this.exited) {
      this.emit({ type: "log", message: "no power-off after systemctl poweroff: pressing the ACPI power button" });
      try {
        await this.qmpExecute("system_powerdown");
      } catch {
        /* fall through to the kill */
      }
    }
    await this.waitExit(Math.max(0, deadline - Date.now()));
  }

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
        hint: `the machine's disks: ${this.opts.disks.map((d) => d.id).join(", ")}`,
      });
    }
    return dev;
  }

  /**
   * Pull a disk out of the running machine, like unplugging it (QMP
   * device_del). The guest sees it vanish; later starts leave it out too.
   */
  async detachDisk(id: string, timeoutMs = 30_000): Promise<DiskAttachment> {
    const disk = this.opts.disks.find((d) => d.id === id);
    if (!disk) throw new VmlabError(`machine ${this.opts.name} has no disk "${id}"`, { hint: `its disks: ${this.opts.disks.map((d) => d.id).join(", ") || "none"}` });
    const device = `dev-${id}`;
    await this.qmpExecute("device_del", { id: device });
    try {
      await this.qmp!.waitForEvent("DEVICE_DELETED", timeoutMs, (e) => (e.data as { device?: string } | undefined)?.device === device);
    } catch (err) {
      throw new VmlabError(`disk ${id} was not released by the guest`, { where: `machine ${this.opts.name}`, cause: err, hint: "the guest must acknowledge a SCSI hot-unplug; is it still running?" });
    }
    // A disk from the command line goes with its device; a hot-plugged one leaves its block node behind.
    const node = this.hotNodes.get(id);
    if (node) {
      await this.qmpExecute("blockdev-del", { "node-name": node });
      this.hotNodes.delete(id);
    }
    this.opts.disks = this.opts.disks.filter((d) => d !== disk);
    this.outside.set(id, disk);
    return disk;
  }

  /**
   * Put a disk that was pulled (`detachDisk`) or left out (`leaveOut`) back
   * in: hot-plugged if the machine runs, in its old SCSI slot at the next
   * start if it is off.
   */
  async plugBack(id: string): Promise<void> {
    const disk = this.outside.get(id);
    if (!disk) throw new VmlabError(`machine ${this.opts.name} has no disk "${id}" out`, { hint: `out now: ${[...this.outside.keys()].join(", ") || "none"}` });
    this.outside.delete(id);
    if (this.running) await this.attachDisk(disk);
    else this.opts.disks = [...this.opts.disks, disk].sort((a, b) => (a.scsiId ?? 0) - (b.scsiId ?? 0));
  }

  /** Leave a disk out of the next start, as if it were unplugged while the machine was off. */
  leaveOut(id: string): void {
    if (this.running) throw new VmlabError(`cannot leave disk ${id} out of machine ${this.opts.name} while it runs`, { hint: "pull it with detachDisk, or switch the machine off first" });
    const disk = this.opts.disks.find((d) => d.id === id);
    if (!disk) throw new VmlabError(`machine ${this.opts.name} has no disk "${id}"`, { hint: `its disks: ${this.opts.disks.map((d) => d.id).join(", ") || "none"}` });
    this.opts.disks = this.opts.disks.filter((d) => d !== disk);
    this.outside.set(id, disk);
  }

  /**
   * A boot that something else sets off (a reboot typed on the console, a
   * reset from outside): `action` runs, then the boot it started is watched
   * from the console output that came after the call.
   */
  async bootAfter(action: () => Promise<void>, opts: BootWaitOptions = {}): Promise<BootRecord> {
    const from = await this.logOffset();
    await action();
    return this.waitForBoot(from, opts);
  }

  /**
   * Plug a disk into the running machine (QMP blockdev-add + device_add) at
   * the next free SCSI target; later starts keep it. The guest names it
   * (sdX) in the order it finds it, as with a real hot-plugged disk.
   */
  async attachDisk(disk: DiskAttachment): Promise<void> {
    if (this.opts.disks.some((d) => d.id === disk.id)) throw new VmlabError(`machine ${this.opts.name} already has a disk "${disk.id}"`);
    const node = `${disk.id}-hot${++this.hotplugs}`;
    await this.qmpExecute("blockdev-add", {
      driver: disk.format,
      "node-name": node,
      "read-only": disk.readOnly ?? false,
      file: { driver: "file", filename: resolve(disk.path) },
    });
    this.hotNodes.set(disk.id, node);
    const used = new Set(this.opts.disks.map((d) => d.scsiId));
    let target = 0;
    while (used.has(target)) target++;
    await this.qmpExecute("device_add", {
      driver: "scsi-hd",
      drive: node,
      id: `dev-${disk.id}`,
      bus: "scsi0.0",
      channel: 0,
      "scsi-id": target,
      lun: 0,
      serial: disk.id,
    });
    this.opts.disks = [...this.opts.disks, { ...disk, scsiId: target }];
  }

  async qmpExecute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (!this.qmp || this.exited) throw new VmlabError(`QMP ${command}: machine ${this.opts.name} is not running`);
    return this.qmp.execute<T>(command, args);
  }

  private async waitExit(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.exited && Date.now() < deadline) await sleep(100);
    if (!this.exited) await this.kill();
    this.qmp?.close();
    this.qmp = undefined;
  }

  /**
   * Let QEMU outlive this process, for a machine kept after its run: it is no
   * longer ended on exit, and nothing here waits for it. Returns its pid; from
   * now on the machine is reached through its sockets and SSH port only.
   */
  release(): number {
    const p = this.proc;
    if (!p?.pid || this.exited) throw new VmlabError(`machine ${this.opts.name} is not running, so it cannot be kept`, { output: this.exitInfo });
    if (!this.opts.keepable) {
      throw new VmlabError(`machine ${this.opts.name} was started tied to this process, so it cannot be kept`, {
        hint: "start it with `keepable: true` (the command's --keep or --stop-before does)",
      });
    }
    this.closeSerial();
    this.qmp?.close();
    this.qmp = undefined;
    unregisterPid(p.pid);
    p.unref();
    return p.pid;
  }

  /** End QEMU at once by its pid. Safe to call at any time. */
  async kill(): Promise<void> {
    this.closeSerial();
    this.qmp?.close();
    this.qmp = undefined;
    const p = this.proc;
    if (!p || this.exited) return;
    try {
      process.kill(p.pid!, "SIGKILL");
    } catch {
      /* gone */
    }
    await p.catch(() => undefined);
    this.exited = true;
    unregisterPid(p.pid!);
  }

  /**
   * Type on the serial console (the way back in when SSH is gone). The lab
   * keeps one connection to the console socket open while the machine runs:
   * QEMU reads a client's bytes only as fast as the guest's UART takes them,
   * and drops what it has not read when the client hangs up, so a connection
   * closed right after a write loses characters on a busy host.
   */
  async type(text: string): Promise<void> {
    this.actions++;
    const sock = await this.serialConnection();
    await new Promise<void>((resolve, reject) => sock.write(text, (err) => (err ? reject(err) : resolve())));
  }

  private serial?: Socket;

  private async serialConnection(): Promise<Socket> {
    if (this.serial && !this.serial.destroyed) return this.serial;
    const sock: Socket = createConnection(this.serialSocket);
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", () => resolve());
      sock.once("error", reject);
    });
    // What the guest prints is in the console log already; what reaches this socket is read and dropped.
    sock.on("data", () => undefined);
    sock.on("error", () => undefined);
    sock.on("close", () => {
      if (this.serial === sock) this.serial = undefined;
    });
    this.serial = sock;
    return sock;
  }

  /** Hang up the lab's console connection (before a person attaches to a kept machine, or when QEMU ends). */
  private closeSerial(): void {
    this.serial?.destroy();
    this.serial = undefined;
  }
}

const BOOT_ID_COMMAND = "cat /proc/sys/kernel/random/boot_id";

/**
 * Whether a boot is proven new: its slice of the console shows the firmware's
 * banner (the kernel's for a direct kernel boot), and when SSH answered, the
 * boot_id differs from the one read before it.
 */
export function newBootProof(via: BootVia, c: Pick<BootClassification, "outcome" | "reached">, bootId: string | undefined, previousBootId: string | undefined): NewBootProof {
  const banner = via === "direct-kernel" ? c.reached.kernel : c.reached.firmware;
  const what = via === "direct-kernel" ? "the kernel's banner" : "the firmware's banner";
  const proof: NewBootProof = { banner, proven: false, why: "" };
  if (bootId) proof.bootId = bootId;
  if (previousBootId) proof.previousBootId = previousBootId;
  if (!banner) proof.why = `${what} is not in this boot's slice of the console`;
  else if (c.outcome === "ssh" && !bootId) proof.why = "ssh answered, but the boot_id was not read";
  else if (c.outcome === "ssh" && previousBootId !== undefined && bootId === previousBootId) proof.why = `the boot_id ${bootId} is the one from before`;
  else {
    proof.proven = true;
    proof.why = c.outcome === "ssh" ? (previousBootId ? `${what}, and boot_id ${previousBootId} → ${bootId}` : `${what}, first boot_id ${bootId}`) : `${what} in this boot's console`;
  }
  return proof;
}

/** Throw unless a boot ended as expected; the message carries the evidence and the console tail. */
export async function expectBoot(m: Machine, boot: BootRecord, expected: BootRecord["outcome"]): Promise<void> {
  if (boot.outcome === expected && boot.newBoot?.proven !== false) return;
  if (boot.outcome === expected) {
    throw new VmlabError(`boot ended as ${boot.outcome}, but it is not a proven new boot: ${boot.newBoot!.why}`, {
      where: `machine ${m.opts.name}, boot via ${boot.via} (${boot.reason})`,
      output: await m.consoleTail(25, boot.log.from),
      hint: `open the console log ${boot.log.file}`,
    });
  }
  const tail = await m.consoleTail(25, boot.log.from);
  throw new VmlabError(`boot ended as ${boot.outcome}${boot.detail ? ` (${boot.detail})` : ""}, expected ${expected}`, {
    where: `machine ${m.opts.name}, boot via ${boot.via} (${boot.reason})`,
    output: [...boot.evidence.map((l) => `evidence: ${l}`), "console tail:", tail].join("\n"),
    hint: `open the console log ${boot.log.file}`,
  });
}

