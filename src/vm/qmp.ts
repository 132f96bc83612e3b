/**
 * A small client for QEMU's machine protocol (QMP) over a unix socket.
 *
 * Wire format: one JSON object per line ("\r\n" from QEMU). The server greets
 * with {"QMP": {...}}; the client must send qmp_capabilities before anything
 * else. Replies carry the request's "id"; events carry "event" and no id.
 */
import { connect as netConnect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { VmlabError } from "../errors.ts";

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** QEMU answered a command with {"error": {"class", "desc"}}. */
export class QmpError extends VmlabError {
  constructor(
    /** QMP error class: "GenericError", "CommandNotFound", "DeviceNotFound", ... */
    readonly errorClass: string,
    readonly desc: string,
    readonly command: string,
  ) {
    super(`QMP ${command} failed: ${desc} (${errorClass})`, { where: `QMP command ${command}` });
  }
}

export interface QmpConnectOptions {
  /** How long to keep trying: the socket may not exist yet while QEMU starts. Default 10 s. */
  timeoutMs?: number;
  /** Default reply timeout for execute(). Default 60 s. */
  commandTimeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer?: NodeJS.Timeout;
}

interface Waiter {
  name: string;
  predicate?: (e: QmpEvent) => boolean;
  resolve: (e: QmpEvent) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Unclaimed events kept for waitForEvent; older ones are dropped. */
const EVENT_BUFFER = 256;

export class QmpClient {
  private buf = "";
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(e: QmpEvent) => void>();
  private readonly waiters = new Set<Waiter>();
  private readonly unclaimed: QmpEvent[] = [];
  private closedBecause: string | null = null;
  private readonly closedPromise: Promise<void>;
  private greetingResolve?: (g: QmpGreeting) => void;
  private greetingReject?: (why: string) => void;

  private constructor(
    private readonly socket: Socket,
    readonly socketPath: string,
    private readonly commandTimeoutMs: number,
  ) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("error", () => {}); // "close" follows and rejects what is pending
    this.closedPromise = new Promise((resolve) =>
      socket.once("close", () => {
        this.shutdown("the connection to QEMU closed (did QEMU exit?)");
        resolve();
      }),
    );
  }

  /** The greeting QEMU sent: its version and capabilities. */
  greeting!: QmpGreeting;

  /**
   * Connect to QEMU's QMP socket, retrying until it accepts or `timeoutMs`
   * passes, read the greeting and leave negotiation mode (qmp_capabilities).
   */
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    const fail = (why: string, cause?: unknown) =>
      new VmlabError(`Could not connect to QEMU's QMP socket within ${timeoutMs} ms: ${why}`, {
        where: socketPath,
        hint: "check that QEMU is running with -qmp unix:PATH,server=on,wait=off and did not exit early (see its stderr)",
        cause,
      });

    let socket: Socket | undefined;
    while (!socket) {
      try {
        socket = await openSocket(socketPath, Math.max(1, deadline - Date.now()));
      } catch (err) {
        if (Date.now() >= deadline) throw fail(describeError(err), err);
        await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
      }
    }

    const client = new QmpClient(socket, socketPath, opts.commandTimeoutMs ?? 60_000);
    const remaining = Math.max(1, deadline - Date.now());
    try {
      client.greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        const timer = setTimeout(() => reject(fail("no greeting from QEMU")), remaining);
        client.greetingResolve = (g) => (clearTimeout(timer), resolve(g));
        client.greetingReject = (why) => (clearTimeout(timer), reject(fail(`${why} before greeting`)));
      });
      await client.execute("qmp_capabilities", undefined, { timeoutMs: remaining });
    } catch (err) {
      client.socket.destroy();
      throw err instanceof VmlabError && !(err instanceof QmpError) ? err : fail(describeError(err), err);
    }
    return client;
  }

  /** True once the connection is gone (close(), or QEMU closed it / exited). */
  get closed(): boolean {
    return this.closedBecause !== null;
  }

  /**
   * Run a QMP command. Resolves with its "return" value; rejects with QmpError
   * if QEMU answers with an error, or with a VmlabError if the connection
   * closes first or no reply comes within `timeoutMs` (default from connect()).
   */
  execute<T = unknown>(command: string, args?: object, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closedBecause) {
      return Promise.reject(this.closedError(command));
    }
    const id = this.nextId++;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg.arguments = args;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { command, resolve: resolve as (v: unknown) => void, reject };
      const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
      p.timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new VmlabError(`QMP ${command}: no reply from QEMU within ${timeoutMs} ms`, { where: this.socketPath }));
      }, timeoutMs);
      this.pending.set(id, p);
      this.socket.write(JSON.stringify(msg) + "\n");
    });
  }

  /** Run a human monitor (HMP) command, e.g. "info version"; returns its text output. */
  async humanMonitorCommand(commandLine: string): Promise<string> {
    return this.execute<string>("human-monitor-command", { "command-line": commandLine });
  }

  /** Call `cb` for every event from now on. Returns a function that unsubscribes. */
  onEvent(cb: (e: QmpEvent) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /**
   * Wait for an event named `name` (and matching `predicate`).
   *
   * Race-free: every event received since connect() that no waitForEvent has
   * claimed yet is kept (the last 256), and is looked at first, oldest first.
   * So `await execute("stop"); await waitForEvent("STOP", …)` works even if
   * STOP arrived before the wait began. The flip side: an event nobody waited
   * for stays claimable; call clearEvents() before an action whose event you
   * will wait for if an older, identical event may be in the buffer.
   *
   * Rejects after `timeoutMs`, or at once when the connection closes.
   */
  waitForEvent(name: string, timeoutMs: number, predicate?: (e: QmpEvent) => boolean): Promise<QmpEvent> {
    const i = this.unclaimed.findIndex((e) => e.event === name && (!predicate || predicate(e)));
    if (i >= 0) return Promise.resolve(this.unclaimed.splice(i, 1)[0]);
    if (this.closedBecause) {
      return Promise.reject(new VmlabError(`QMP: no ${name} event: ${this.closedBecause}`, { where: this.socketPath }));
    }
    return new Promise<QmpEvent>((resolve, reject) => {
      const w: Waiter = {
        name,
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w);
          reject(new VmlabError(`QMP: no ${name} event within ${timeoutMs} ms`, { where: this.socketPath }));
        }, timeoutMs),
      };
      this.waiters.add(w);
    });
  }

  /** Forget events no waitForEvent has claimed. */
  clearEvents(): void {
    this.unclaimed.length = 0;
  }

  /** Close the connection. Pending commands and waits reject. Never rejects itself. */
  async close(): Promise<void> {
    if (!this.closedBecause) this.shutdown("the QMP client was closed");
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 1000);
    await this.closedPromise;
    clearTimeout(timer);
  }

  // ------------------------------------------------------------ internals

  private closedError(command: string): VmlabError {
    return new VmlabError(`QMP ${command}: no reply: ${this.closedBecause}`, {
      where: this.socketPath,
      hint: "look at QEMU's stderr and exit status, and at the serial log",
    });
  }

  /** Reject everything pending; idempotent. */
  private shutdown(reason: string): void {
    if (this.closedBecause) return;
    this.closedBecause = reason;
    this.greetingReject?.(reason);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.closedError(p.command));
    }
    this.pending.clear();
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new VmlabError(`QMP: no ${w.name} event: ${reason}`, { where: this.socketPath }));
    }
    this.waiters.clear();
  }

  /** Split the stream into lines; a chunk may hold part of a message or several. */
  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue; // not QMP; QEMU never sends this, ignore rather than kill the session
      }
      this.onMessage(msg);
    }
  }

  private onMessage(msg: Record<string, unknown>): void {
    if ("QMP" in msg) {
      this.greetingResolve?.(msg.QMP as QmpGreeting);
      return;
    }
    if (typeof msg.event === "string") {
      this.onEventMessage(msg as unknown as QmpEvent);
      return;
    }
    const id = msg.id;
    const p = typeof id === "number" ? this.pending.get(id) : undefined;
    if (!p) return; // a reply after its timeout
    this.pending.delete(id as number);
    clearTimeout(p.timer);
    if ("error" in msg) {
      const e = msg.error as { class?: string; desc?: string };
      p.reject(new QmpError(e.class ?? "GenericError", e.desc ?? "unknown error", p.command));
    } else {
      p.resolve(msg.return);
    }
  }

  private onEventMessage(e: QmpEvent): void {
    for (const cb of this.listeners) {
      try {
        cb(e);
      } catch {
        // a listener's bug must not break the protocol stream
      }
    }
    for (const w of this.waiters) {
      if (w.name === e.event && (!w.predicate || w.predicate(e))) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(e);
        return; // claimed
      }
    }
    this.unclaimed.push(e);
    if (this.unclaimed.length > EVENT_BUFFER) this.unclaimed.shift();
  }
}

/** Open a unix socket connection, failing fast if nothing listens there. */
function openSocket(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(path);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error("connect timed out"));
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      s.removeAllListeners("error");
      s.on("error", () => {}); // the client's own handler takes over; "close" reports the end
      resolve(s);
    });
    s.once("error", (err) => {
      clearTimeout(timer);
      s.destroy();
      reject(err);
    });
  });
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "the socket does not exist";
    if (code === "ECONNREFUSED") return "nothing is listening on the socket";
    return err.message;
  }
  return String(err);
}
