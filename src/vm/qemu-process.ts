/**
 * A machine's QEMU process and its QMP connection: started tied to the lab's
 * process (or keepable), registered with the reaper at once, ended by pid.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { execa, type ResultPromise } from "execa";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { VmlabError } from "../errors.ts";
import { QmpClient, type QmpEvent } from "./qmp.ts";
import { registerPid, unregisterPid } from "./reaper.ts";

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


/** A file's text from a byte offset, trimmed; empty when it cannot be read. */
function readSince(file: string, from: number): string {
  try {
    return readFileSync(file).subarray(from).toString("utf8").trim();
  } catch {
    return "";
  }
}

export interface QemuStart {
  /** The machine's name, for messages. */
  name: string;
  /** The QEMU binary. */
  binary: string;
  /** The arguments, built once the SSH port is known (a port taken meanwhile means a new one and new arguments). */
  args: () => Promise<string[]>;
  qmpSocket: string;
  /** QEMU's own messages go to this file, appended. */
  log: string;
  keepable?: boolean;
  nice?: number;
}

export class QemuProcess {
  private proc?: ResultPromise;
  private qmp?: QmpClient;
  private exited = true;
  /** How QEMU ended: its exit code and last messages, for errors. */
  exitInfo = "";

  get pid(): number | undefined {
    return this.exited ? undefined : this.proc?.pid;
  }

  get running(): boolean {
    return !this.exited;
  }

  /**
   * Start QEMU and connect to its QMP socket. QEMU writes its messages to a
   * file, not a pipe, and runs in its own session, so a machine kept after
   * the run (see release) outlives this process. A port another process took
   * between the check and QEMU's bind is tried again with a new one.
   */
  async start(s: QemuStart): Promise<void> {
    if (!this.exited) throw new VmlabError(`machine ${s.name} is already running`);
    for (let attempt = 1; ; attempt++) {
      const args = await s.args();
      const logFd = openSync(s.log, "a");
      const logFrom = fstatSync(logFd).size;
      const qemuOutput = () => readSince(s.log, logFrom);
      // (execa's types take a descriptor number only as a literal, hence the cast)
      const qemuFd = logFd as 3;
      // setpriv (util-linux) sets PR_SET_PDEATHSIG and execs QEMU: same pid, dies with this process.
      const [plainFile, plainArgv] = s.keepable ? [s.binary, args] : ["setpriv", ["--pdeathsig", "KILL", "--", s.binary, ...args]];
      // nice execs what follows: still the same pid.
      const [file, argv] = s.nice === undefined ? [plainFile, plainArgv] : ["nice", ["-n", String(s.nice), plainFile, ...plainArgv]];
      const proc = execa(file, argv, { reject: false, stdin: "ignore", stdout: qemuFd, stderr: qemuFd, detached: true });
      if (!proc.pid) {
        const r = await proc;
        closeSync(logFd);
        throw new VmlabError(`could not start ${s.binary}`, {
          where: `machine ${s.name}`,
          output: qemuOutput() || String(r.shortMessage ?? ""),
          hint: "run `vmlab doctor` to check the host",
        });
      }
      closeSync(logFd);
      registerPid(proc.pid, `qemu ${s.name}`);
      this.proc = proc;
      this.exited = false;
      void proc.then((r) => {
        this.exited = true;
        this.exitInfo = `exit code ${r.exitCode ?? r.signal}: ${qemuOutput()}`;
        if (proc.pid) unregisterPid(proc.pid);
      });
      try {
        this.qmp = await QmpClient.connect(s.qmpSocket, { timeoutMs: 15_000 });
        return;
      } catch (err) {
        await this.kill();
        const out = this.exitInfo;
        if (attempt < 5 && /hostfwd|Could not set up host forwarding/i.test(out)) continue;
        throw new VmlabError(`QEMU for ${s.name} did not come up`, {
          where: `${s.binary} ${args.join(" ")}`,
          output: out || String(err),
          hint: "run `vmlab doctor`; check that the disk images exist and are not locked by another QEMU",
        });
      }
    }
  }

  /**
   * Take over a QEMU that another vmlab process started and kept: it is not
   * this process's child, so `alive` (its pid and command line) says whether
   * it still runs.
   */
  adopt(pid: number, alive: () => boolean): void {
    this.exited = false;
    const t = setInterval(() => {
      if (alive()) return;
      this.exited = true;
      this.exitInfo = `QEMU (pid ${pid}) is gone`;
      clearInterval(t);
    }, 500);
    t.unref();
  }

  async execute<T = unknown>(name: string, command: string, args?: Record<string, unknown>): Promise<T> {
    if (!this.qmp || this.exited) throw new VmlabError(`QMP ${command}: machine ${name} is not running`);
    return this.qmp.execute<T>(command, args);
  }

  /** Wait for a QMP event that `match` accepts. */
  async waitForEvent(event: string, timeoutMs: number, match: (e: QmpEvent) => boolean): Promise<void> {
    if (!this.qmp) throw new VmlabError(`no QMP connection while waiting for ${event}`);
    await this.qmp.waitForEvent(event, timeoutMs, match);
  }

  /** Close the QMP connection; QEMU runs on. */
  closeQmp(): void {
    this.qmp?.close();
    this.qmp = undefined;
  }

  /** Wait until QEMU exits; kill it when it has not within the timeout. */
  async waitExit(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.exited && Date.now() < deadline) await sleep(100);
    if (!this.exited) await this.kill();
    this.closeQmp();
  }

  /**
   * Let QEMU outlive this process: it is no longer ended on exit, and nothing
   * here waits for it. Returns its pid.
   */
  release(name: string, keepable: boolean | undefined): number {
    const p = this.proc;
    if (!p?.pid || this.exited) throw new VmlabError(`machine ${name} is not running, so it cannot be kept`, { output: this.exitInfo });
    if (!keepable) {
      throw new VmlabError(`machine ${name} was started tied to this process, so it cannot be kept`, {
        hint: "start it with `keepable: true` (the command's --keep or --stop-before does)",
      });
    }
    this.closeQmp();
    unregisterPid(p.pid);
    p.unref();
    return p.pid;
  }

  /** End QEMU at once by its pid. Safe to call at any time. */
  async kill(): Promise<void> {
    this.closeQmp();
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
}
