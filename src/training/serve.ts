/**
 * `vmlab train serve`: training mode in a browser.
 *
 * A trainee opens the exercise list, starts a session, reads the story, and
 * works on the machine through two terminals in the page (its serial console
 * and SSH, each an xterm.js terminal over a WebSocket), with buttons for a
 * hint, the check, a reset, the rescue system and the solution. A trainer
 * opens /trainer and sees every session; it can end one.
 *
 * The server runs root shells on guests, so everything that reaches one is
 * guarded, and refused before any machine is touched:
 *
 * - it listens on 127.0.0.1 unless told otherwise;
 * - every request's Host must be a name of this server (no DNS rebinding),
 *   and a WebSocket's Origin must be this server's own origin (403 before
 *   the upgrade);
 * - a session's token (TrainingSession.token) opens that session's API and
 *   terminals and nothing else: `Authorization: Bearer TOKEN` on the JSON
 *   API, `?token=TOKEN` on a WebSocket; the trainer's token opens /trainer
 *   and /api/trainer/; tokens are compared with crypto.timingSafeEqual;
 * - exercise names, ids, JSON bodies (16 KiB), terminal messages (64 KiB),
 *   typing rate and terminal sizes are bounded;
 * - nothing typed reaches a host shell: ssh is spawned with an argument
 *   array, and the serial console is a unix socket;
 * - a session used through the server with no terminal input and no action
 *   for `idleMinutes` is stopped, and a new machine is started only while the host has the
 *   memory for it (503 otherwise).
 *
 * Long actions (check, reset, rescue, rescue done) run in the background;
 * the page polls the session's state. While one runs, the session's
 * terminals are closed (the machine reboots or is replaced), and they
 * reconnect to the machine now in front when it ends.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { open as openFile, readFile } from "node:fs/promises";
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { createConnection, isIP, type Socket } from "node:net";
import { freemem, hostname, networkInterfaces, totalmem } from "node:os";
import { dirname, join } from "node:path";
import type { Duplex } from "node:stream";
import MarkdownIt from "markdown-it";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { UsageError, VmlabError } from "../errors.ts";
import { findKept } from "../vm/kept.ts";
import { labSshOptions } from "../vm/ssh.ts";
import * as exerciseModule from "./exercise.ts";
import * as sessionModule from "./session.ts";
import type { CheckAttempt, Exercise, SessionTerminals, TrainingSession } from "./types.ts";

/** What the server needs of the session module (src/training/session.ts). */
export interface SessionApi {
  startSession(name: string, o?: { onProgress?: (line: string) => void }): Promise<TrainingSession>;
  listSessions(): Promise<TrainingSession[]>;
  findSession(id: string): Promise<TrainingSession>;
  nextHint(id: string): Promise<{ index: number; total: number; text: string }>;
  checkSession(id: string): Promise<CheckAttempt>;
  resetSession(id: string): Promise<TrainingSession>;
  rescueSession(id: string): Promise<TrainingSession>;
  rescueDoneSession(id: string): Promise<TrainingSession>;
  giveUp(id: string): Promise<{ session: TrainingSession; solution: string }>;
  stopSession(id: string): Promise<void>;
  sessionTerminals(id: string): Promise<SessionTerminals>;
  touchSession(id: string): Promise<void>;
}

/** What the server needs of the exercise module (src/training/exercise.ts). */
export interface ExerciseApi {
  validExerciseName(name: string): boolean;
  listExercises(): Promise<Exercise[]>;
  loadExercise(name: string): Promise<Exercise>;
}

export interface ServeOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: a free one). */
  port?: number;
  /** The trainer's token (default: VMLAB_TRAINER_TOKEN, else a random one). */
  trainerToken?: string;
  /** Stop a session after this many minutes with no terminal input and no action (default 30). */
  idleMinutes?: number;
  /** Host memory one more machine needs, in bytes (default 1 GiB for the guest + 256 MiB for QEMU). */
  machineBytes?: number;
  /** The host memory available now, in bytes (default: MemAvailable from /proc/meminfo). */
  memAvailable?: () => number;
  /** The host's memory, in bytes (default os.totalmem()). */
  memTotal?: () => number;
  /** Lines for the server's log (default: stderr). */
  log?: (line: string) => void;
  sessions?: SessionApi;
  exercises?: ExerciseApi;
}

export interface TrainServer {
  server: Server;
  host: string;
  port: number;
  /** http://host:port as a browser reaches it. */
  url: string;
  trainerToken: string;
  /** Stop listening and close every terminal; the sessions' machines go on. */
  close(): Promise<void>;
}

export const BODY_LIMIT = 16 * 1024;
export const WS_MESSAGE_LIMIT = 64 * 1024;
/** Typing into a terminal: at most this many bytes a second, averaged over a few seconds (a paste of a script is fine). */
export const INPUT_RATE = 64 * 1024;
export const TERMINAL_COLS = { min: 2, max: 500 };
export const TERMINAL_ROWS = { min: 2, max: 200 };
const GiB = 2 ** 30;
export const DEFAULT_MACHINE_BYTES = GiB + 256 * 2 ** 20;

const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TOKEN = /^[\x21-\x7e]{1,512}$/;
/** The session states in which the session has (or is getting) a machine. */
const ENDED = new Set(["stopped"]);

/** Constant-time comparison of two secrets of any length. */
export function sameSecret(given: string, expected: string): boolean {
  if (!expected) return false;
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** MemAvailable from /proc/meminfo, in bytes; os.freemem() where there is none. */
export function memAvailable(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return freemem();
}

/** Whether an address only this host can reach. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const webDir = join(dirname(new URL(import.meta.url).pathname), "web");
const require = createRequire(import.meta.url);

/** The files the server hands out, by their fixed paths. Nothing else on disk is reachable. */
function staticFiles(): Map<string, { file: string; type: string }> {
  const js = "text/javascript; charset=utf-8";
  const css = "text/css; charset=utf-8";
  return new Map([
    ["/static/app.css", { file: join(webDir, "app.css"), type: css }],
    ["/static/common.js", { file: join(webDir, "common.js"), type: js }],
    ["/static/index.js", { file: join(webDir, "index.js"), type: js }],
    ["/static/session.js", { file: join(webDir, "session.js"), type: js }],
    ["/static/trainer.js", { file: join(webDir, "trainer.js"), type: js }],
    ["/static/xterm/xterm.mjs", { file: require.resolve("@xterm/xterm/lib/xterm.mjs"), type: js }],
    ["/static/xterm/xterm.css", { file: require.resolve("@xterm/xterm/css/xterm.css"), type: css }],
    ["/static/xterm/addon-fit.mjs", { file: require.resolve("@xterm/addon-fit/lib/addon-fit.mjs"), type: js }],
  ]);
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

type Action = "check" | "reset" | "rescue" | "rescue-done";

const ACTION_WORDS: Record<Action, string> = {
  check: "checking: the machine reboots through its firmware and is judged (about a minute under TCG)",
  reset: "resetting: back to the broken machine",
  rescue: "booting the rescue system with the machine's disks",
  "rescue-done": "powering the rescue system off and booting the machine from its own disk",
};

interface Job {
  action: Action;
  state: "running" | "done" | "failed";
  startedAt: string;
  endedAt?: string;
  words: string;
  error?: { message: string; hint?: string };
  check?: CheckAttempt;
}

interface Launch {
  id: string;
  token: string;
  exercise: string;
  startedAt: string;
  state: "running" | "done" | "failed";
  lines: string[];
  session?: { id: string; token: string };
  error?: { message: string; hint?: string };
  endedAt?: number;
}

interface Terminal {
  kind: "serial" | "ssh";
  ws: WebSocket;
  end(): void;
}

const md = new MarkdownIt({ html: false, linkify: false, typographer: false });

/** A hint as HTML: its heading (the first line) in bold, the rest as Markdown; raw HTML in it is shown as text. */
export function hintHtml(text: string): string {
  const [head, ...rest] = text.split("\n");
  return `<p><strong>${md.renderInline(head ?? "")}</strong></p>${md.render(rest.join("\n"))}`;
}

/** A path segment, decoded; a malformed escape is the client's mistake (400), not the server's. */
function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, "a malformed escape in the address");
  }
}

function publicSession(s: TrainingSession): Omit<TrainingSession, "token" | "dir"> {
  const { token, dir, ...rest } = s;
  void token;
  void dir;
  return rest;
}

function errorBody(err: unknown): { message: string; hint?: string } {
  if (err instanceof VmlabError) return { message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
  return { message: err instanceof Error ? err.message : String(err) };
}

/** Start the server; resolves once it listens. */
export async function startTrainServer(o: ServeOptions = {}): Promise<TrainServer> {
  const sessions = o.sessions ?? (sessionModule as SessionApi);
  const exercises = o.exercises ?? (exerciseModule as ExerciseApi);
  const bindHost = o.host ?? "127.0.0.1";
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const idleMs = (o.idleMinutes ?? 30) * 60_000;
  const machineBytes = o.machineBytes ?? DEFAULT_MACHINE_BYTES;
  const available = o.memAvailable ?? memAvailable;
  const total = o.memTotal ?? totalmem;
  const envToken = process.env.VMLAB_TRAINER_TOKEN;
  const trainerToken = o.trainerToken ?? (envToken && envToken.length > 0 ? envToken : randomBytes(24).toString("base64url"));
  if (trainerToken.length < 16 || !TOKEN.test(trainerToken)) {
    throw new UsageError("the trainer token must be at least 16 printable characters without spaces", { hint: "unset VMLAB_TRAINER_TOKEN for a random one" });
  }
  const files = staticFiles();
  const jobs = new Map<string, Job>();
  const launches = new Map<string, Launch>();
  const terminals = new Map<string, Set<Terminal>>();
  const lastTouch = new Map<string, number>();
  const persisted = new Map<string, number>();
  /** Sessions used through this server (started here, or opened with their token): the idle limit applies to them. */
  const known = new Set<string>();
  let port = o.port ?? 0;

  // ---------------------------------------------------------------- hosts

  /** The names a browser may use for this server (Host header, without the port). */
  function allowedHostNames(): Set<string> {
    const names = new Set<string>(["127.0.0.1", "localhost", "[::1]"]);
    const wildcard = bindHost === "0.0.0.0" || bindHost === "::" || bindHost === "";
    if (!isLoopback(bindHost) || wildcard) {
      names.add(bindHost.includes(":") ? `[${bindHost}]` : bindHost);
      names.add(hostname());
      for (const list of Object.values(networkInterfaces())) {
        for (const a of list ?? []) names.add(a.family === "IPv6" ? `[${a.address.split("%")[0]}]` : a.address);
      }
    }
    return names;
  }
  const hostNames = allowedHostNames();

  /** The Host header, if it names this server; the origin a browser gives this server is http:// and that. */
  function checkedHost(req: IncomingMessage): string {
    const host = (req.headers.host ?? "").toLowerCase();
    const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/.exec(host);
    if (!m || !hostNames.has(m[1]!) || Number(m[2] ?? 80) !== port) {
      throw new HttpError(421, `this server does not answer to the name "${host.slice(0, 100)}"`, "open it at the address `vmlab train serve` printed");
    }
    return host;
  }

  function checkOrigin(req: IncomingMessage, host: string, required: boolean): void {
    const origin = req.headers.origin;
    if (origin === undefined && !required) return;
    if (origin !== `http://${host}`) throw new HttpError(403, "requests from another site are refused", `open the page at http://${host}/`);
  }

  // ---------------------------------------------------------------- tokens

  function bearer(req: IncomingMessage): string | undefined {
    const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(req.headers.authorization ?? "");
    return m?.[1];
  }

  function requireTrainer(token: string | undefined): void {
    if (!token || !sameSecret(token, trainerToken)) throw new HttpError(403, "this needs the trainer's token", "use the /trainer address `vmlab train serve` printed");
  }

  /** The session `id` if `token` is its own; 403 for a wrong token and for an unknown session alike. */
  async function sessionFor(id: string, token: string | undefined): Promise<TrainingSession> {
    if (!SESSION_ID.test(id)) throw new HttpError(404, "no such session");
    let s: TrainingSession | undefined;
    try {
      s = await sessions.findSession(id);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
    }
    if (!token || !s || !sameSecret(token, s.token)) throw new HttpError(403, "this session's token is needed", "open the session from the link you were given when it started");
    known.add(s.id);
    return s;
  }

  // ---------------------------------------------------------------- activity, terminals

  /**
   * Activity, for the idle limit. Actions are marked here only: the session module records their
   * time itself, and a second writer of the session's file during an action could undo the action's
   * own record. Typing in a terminal (no action runs then: the terminals are closed) is also written
   * to the session, at most every 20 s, so that it counts after a restart of the server too.
   */
  function touch(id: string, persist = false): void {
    const now = Date.now();
    lastTouch.set(id, now);
    if (!persist || now - (persisted.get(id) ?? 0) < 20_000 || jobs.get(id)?.state === "running") return;
    persisted.set(id, now);
    sessions.touchSession(id).catch((err) => log(`session ${id}: recording activity failed: ${errorBody(err).message}`));
  }

  function closeTerminals(id: string, code: number, reason: string): void {
    for (const t of [...(terminals.get(id) ?? [])]) {
      try {
        t.ws.close(code, reason);
      } catch {
        // already closed
      }
      t.end();
    }
    terminals.delete(id);
  }

  // ---------------------------------------------------------------- HTTP

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store", "Content-Length": Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  function securityHeaders(host: string): Record<string, string> {
    return {
      "Content-Security-Policy": `default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self' ws://${host}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      "X-Content-Type-Options": "nosniff",
      "X-Frame-Options": "DENY",
      "Referrer-Policy": "no-referrer",
    };
  }

  async function sendFile(res: ServerResponse, host: string, file: string, type: string): Promise<void> {
    const body = await readFile(file);
    res.writeHead(200, { "Content-Type": type, "Content-Length": body.length, "Cache-Control": "no-cache", ...securityHeaders(host) });
    res.end(body);
  }

  async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
    const tooLarge = () => new HttpError(413, `the body is larger than ${BODY_LIMIT} bytes`);
    if (Number(req.headers["content-length"] ?? 0) > BODY_LIMIT) throw tooLarge();
    // Read by events, not by iterating: leaving an iteration early would destroy the socket before the 413 is sent.
    const raw = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      req.on("data", (chunk: Buffer) => {
        if (done) return;
        size += chunk.length;
        if (size > BODY_LIMIT) {
          done = true;
          reject(tooLarge());
          return;
        }
        chunks.push(chunk);
      });
      req.on("end", () => {
        if (!done) resolve(Buffer.concat(chunks));
        done = true;
      });
      req.on("error", (err) => {
        if (!done) reject(err);
        done = true;
      });
    });
    if (raw.length === 0) return {};
    const type = String(req.headers["content-type"] ?? "");
    if (!/^application\/json\s*(;|$)/i.test(type)) throw new HttpError(415, "send JSON (Content-Type: application/json)");
    let v: unknown;
    try {
      v = JSON.parse(raw.toString("utf8"));
    } catch {
      throw new HttpError(400, "the body is not JSON");
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new HttpError(400, "the body must be a JSON object");
    return v as Record<string, unknown>;
  }

  /** Every POST: JSON or nothing, from this site only (a form on another site cannot send JSON without asking first). */
  function checkPost(req: IncomingMessage, host: string): void {
    checkOrigin(req, host, false);
    const type = String(req.headers["content-type"] ?? "");
    const length = Number(req.headers["content-length"] ?? 0);
    if ((length > 0 || req.headers["transfer-encoding"]) && !/^application\/json\s*(;|$)/i.test(type)) {
      throw new HttpError(415, "send JSON (Content-Type: application/json)");
    }
  }

  function exerciseSummary(e: Exercise) {
    return { name: e.name, title: e.title, level: e.level, minutes: e.minutes, tags: e.tags, needsRescue: e.needsRescue };
  }

  async function exerciseByName(name: unknown): Promise<Exercise> {
    if (typeof name !== "string" || !exercises.validExerciseName(name)) {
      throw new HttpError(400, "an exercise name is lower-case letters, digits and dashes, at most 64");
    }
    try {
      return await exercises.loadExercise(name);
    } catch (err) {
      if (err instanceof UsageError && /no exercise named/.test(err.message)) throw new HttpError(404, err.message, err.hint);
      throw err;
    }
  }

  function reservedBytes(): number {
    const starting = [...launches.values()].filter((l) => l.state === "running").length;
    return starting * machineBytes;
  }

  /**
   * Room for one more machine: the memory available now, less what the sessions being started will
   * take, must hold it; and all the machines together must fit in the host's memory with 1 GiB left
   * for the host (a guest takes its memory as it touches it, so MemAvailable alone admits too many).
   */
  async function checkCapacity(): Promise<void> {
    const mib = (b: number) => `${Math.max(0, Math.floor(b / 2 ** 20))} MiB`;
    const hint = "wait until a session ends, or ask the trainer to end one";
    const free = available() - reservedBytes();
    if (free < machineBytes) {
      throw new HttpError(503, `the host is full: ${mib(free)} of memory is free for machines, and one more needs ${mib(machineBytes)}`, hint);
    }
    const most = Math.max(0, Math.floor((total() - GiB) / machineBytes));
    const live = (await sessions.listSessions()).filter((s) => !ENDED.has(s.state)).length;
    const starting = [...launches.values()].filter((l) => l.state === "running").length;
    if (live + starting >= most) {
      throw new HttpError(503, `the host is full: it has memory for ${most} machine${most === 1 ? "" : "s"} of ${mib(machineBytes)} and ${live + starting} are running or starting`, hint);
    }
  }

  function sweepLaunches(): void {
    const old = Date.now() - 15 * 60_000;
    for (const [id, l] of launches) if (l.endedAt !== undefined && l.endedAt < old) launches.delete(id);
  }

  function startLaunch(exercise: Exercise): Launch {
    sweepLaunches();
    const l: Launch = {
      id: randomBytes(9).toString("base64url"),
      token: randomBytes(24).toString("base64url"),
      exercise: exercise.name,
      startedAt: new Date().toISOString(),
      state: "running",
      lines: [],
    };
    launches.set(l.id, l);
    log(`starting a session of ${exercise.name}`);
    sessions
      .startSession(exercise.name, {
        onProgress: (line) => {
          l.lines.push(line.slice(0, 500));
          if (l.lines.length > 200) l.lines.splice(0, l.lines.length - 200);
        },
      })
      .then((s) => {
        l.state = "done";
        l.session = { id: s.id, token: s.token };
        lastTouch.set(s.id, Date.now());
        known.add(s.id);
        log(`session ${s.id} of ${exercise.name} started`);
      })
      .catch((err) => {
        l.state = "failed";
        l.error = errorBody(err);
        log(`a session of ${exercise.name} did not start: ${l.error.message}`);
      })
      .finally(() => {
        l.endedAt = Date.now();
      });
    return l;
  }

  /** One action at a time per session: the session module reads, changes and writes the session's file. */
  function busy(s: TrainingSession): void {
    const running = jobs.get(s.id);
    if (running?.state === "running") throw new HttpError(409, `the session is busy: ${running.words}`);
  }

  function runJob(s: TrainingSession, action: Action): Job {
    busy(s);
    if (ENDED.has(s.state)) throw new HttpError(409, `the session has ended (${s.state})`);
    const job: Job = { action, state: "running", startedAt: new Date().toISOString(), words: ACTION_WORDS[action] };
    jobs.set(s.id, job);
    touch(s.id);
    // The machine reboots or is replaced: the terminals come back when it is there.
    closeTerminals(s.id, 4002, action);
    const work: Promise<unknown> =
      action === "check"
        ? sessions.checkSession(s.id).then((c) => (job.check = c))
        : action === "reset"
          ? sessions.resetSession(s.id)
          : action === "rescue"
            ? sessions.rescueSession(s.id)
            : sessions.rescueDoneSession(s.id);
    log(`session ${s.id}: ${action}`);
    work
      .then(() => {
        job.state = "done";
      })
      .catch((err) => {
        job.state = "failed";
        job.error = errorBody(err);
        log(`session ${s.id}: ${action} failed: ${job.error.message}`);
      })
      .finally(() => {
        job.endedAt = new Date().toISOString();
        touch(s.id);
      });
    return job;
  }

  async function sessionView(s: TrainingSession) {
    let exercise: Exercise | undefined;
    try {
      exercise = await exercises.loadExercise(s.exercise);
    } catch {
      exercise = undefined;
    }
    const job = jobs.get(s.id);
    return {
      session: publicSession(s),
      exercise: exercise
        ? {
            ...exerciseSummary(exercise),
            storyHtml: md.render(exercise.story),
            hintsTotal: exercise.hints.length,
            hints: exercise.hints.slice(0, s.hintsUsed).map(hintHtml),
            solution: s.state === "gave-up" ? exercise.solve.script : undefined,
            solutionWhere: exercise.solve.where,
          }
        : undefined,
      job: job ?? null,
      idleMinutes: idleMs / 60_000,
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const host = checkedHost(req);
    const url = new URL(req.url ?? "/", `http://${host}`);
    const path = url.pathname;
    const method = req.method ?? "GET";
    const get = method === "GET" || method === "HEAD";
    let m: RegExpExecArray | null;

    // Pages and their files.
    if (get && path === "/") return sendFile(res, host, join(webDir, "index.html"), "text/html; charset=utf-8");
    if (get && (m = /^\/session\/([^/]+)$/.exec(path))) {
      if (!SESSION_ID.test(m[1]!)) throw new HttpError(404, "no such page");
      return sendFile(res, host, join(webDir, "session.html"), "text/html; charset=utf-8");
    }
    if (get && path === "/trainer") {
      requireTrainer(url.searchParams.get("token") ?? bearer(req));
      return sendFile(res, host, join(webDir, "trainer.html"), "text/html; charset=utf-8");
    }
    const file = get ? files.get(path) : undefined;
    if (file) return sendFile(res, host, file.file, file.type);

    // The exercises, open to anyone who reaches the server.
    if (get && path === "/api/exercises") {
      const list = await exercises.listExercises();
      return send(res, 200, { exercises: list.map(exerciseSummary) });
    }
    if (get && (m = /^\/api\/exercises\/([^/]+)$/.exec(path))) {
      const e = await exerciseByName(decode(m[1]!));
      return send(res, 200, { ...exerciseSummary(e), storyHtml: md.render(e.story) });
    }

    // Starting a session: the answer is a launch to poll, whose token later yields the session's.
    if (method === "POST" && path === "/api/sessions") {
      checkPost(req, host);
      const body = await readJson(req);
      const e = await exerciseByName(body.exercise);
      await checkCapacity();
      const l = startLaunch(e);
      return send(res, 202, { launch: l.id, token: l.token });
    }
    if (get && (m = /^\/api\/launches\/([A-Za-z0-9_-]{1,40})$/.exec(path))) {
      const l = launches.get(m[1]!);
      const token = bearer(req);
      if (!l || !token || !sameSecret(token, l.token)) throw new HttpError(403, "this launch's token is needed");
      return send(res, 200, { exercise: l.exercise, state: l.state, startedAt: l.startedAt, lines: l.lines.slice(-50), session: l.session, error: l.error });
    }

    // A trainee's session: its own token only.
    if ((m = /^\/api\/sessions\/([^/]+)(?:\/([a-z-]+))?$/.exec(path))) {
      const id = decode(m[1]!);
      const what = m[2];
      if (method === "POST") checkPost(req, host);
      const s = await sessionFor(id, bearer(req));
      if (get && what === undefined) return send(res, 200, await sessionView(s));
      if (method !== "POST") throw new HttpError(405, "use POST for actions");
      await readJson(req);
      switch (what) {
        case "hint": {
          if (ENDED.has(s.state)) throw new HttpError(409, `the session has ended (${s.state})`);
          busy(s);
          touch(s.id);
          const h = await sessions.nextHint(s.id);
          return send(res, 200, { ...h, html: hintHtml(h.text) });
        }
        case "solution": {
          busy(s);
          touch(s.id);
          const g = await sessions.giveUp(s.id);
          return send(res, 200, { solution: g.solution, session: publicSession(g.session) });
        }
        case "check":
        case "reset":
        case "rescue":
        case "rescue-done":
          return send(res, 202, { job: runJob(s, what) });
        case "stop": {
          busy(s);
          closeTerminals(s.id, 4001, "the session has ended");
          await sessions.stopSession(s.id);
          log(`session ${s.id}: stopped by its trainee`);
          return send(res, 200, { stopped: s.id });
        }
        default:
          throw new HttpError(404, "no such action");
      }
    }

    // The trainer.
    if (path.startsWith("/api/trainer/")) {
      if (method === "POST") checkPost(req, host);
      requireTrainer(bearer(req));
      if (get && path === "/api/trainer/sessions") {
        const list = await sessions.listSessions();
        const now = Date.now();
        return send(res, 200, {
          now: new Date(now).toISOString(),
          idleMinutes: idleMs / 60_000,
          sessions: list.map((s) => {
            const last = s.checks.at(-1);
            return {
              ...publicSession(s),
              checks: undefined,
              checksTried: s.checks.length,
              lastCheck: last ? { at: last.at, pass: last.pass, summary: last.summary } : undefined,
              job: jobs.get(s.id) ?? null,
              terminals: terminals.get(s.id)?.size ?? 0,
            };
          }),
          starting: [...launches.values()].filter((l) => l.state === "running").map((l) => ({ exercise: l.exercise, startedAt: l.startedAt, last: l.lines.at(-1) })),
        });
      }
      if (method === "POST" && (m = /^\/api\/trainer\/sessions\/([^/]+)\/stop$/.exec(path))) {
        await readJson(req);
        const id = decode(m[1]!);
        if (!SESSION_ID.test(id)) throw new HttpError(404, "no such session");
        let s: TrainingSession;
        try {
          s = await sessions.findSession(id);
        } catch (err) {
          if (err instanceof UsageError) throw new HttpError(404, err.message);
          throw err;
        }
        if (jobs.get(s.id)?.state === "running") throw new HttpError(409, `the session is busy: ${jobs.get(s.id)!.words}; end it when that is over`);
        closeTerminals(s.id, 4001, "the trainer ended the session");
        await sessions.stopSession(s.id);
        log(`session ${s.id}: ended by the trainer`);
        return send(res, 200, { stopped: s.id });
      }
      throw new HttpError(404, "no such trainer call");
    }

    throw new HttpError(404, "not found");
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) {
        send(res, err.status, { error: err.message, ...(err.hint ? { hint: err.hint } : {}) }, err.status === 413 ? { Connection: "close" } : {});
        if (err.status === 413) req.resume();
        return;
      }
      const b = errorBody(err);
      // The session module's refusals (a wrong state, an unknown name) are the trainee's to read; anything else is the server's.
      const status = err instanceof UsageError ? 409 : 500;
      if (status === 500) log(`${req.method} ${req.url?.split("?")[0]}: ${b.message}`);
      send(res, status, { error: b.message, ...(b.hint ? { hint: b.hint } : {}) });
    });
  });
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;

  // ---------------------------------------------------------------- WebSockets

  const wss = new WebSocketServer({ noServer: true, maxPayload: WS_MESSAGE_LIMIT, perMessageDeflate: false });

  function refuseUpgrade(socket: Duplex, status: number, message: string): void {
    const body = `${message}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }

  function size(v: string | null, bounds: { min: number; max: number }, dflt: number): number {
    if (v === null) return dflt;
    if (!/^\d{1,4}$/.test(v)) throw new HttpError(400, "terminal sizes are whole numbers");
    const n = Number(v);
    if (n < bounds.min || n > bounds.max) throw new HttpError(400, `terminal sizes are from ${bounds.min} to ${bounds.max}`);
    return n;
  }

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    (async () => {
      const host = checkedHost(req);
      const url = new URL(req.url ?? "/", `http://${host}`);
      const m = /^\/ws\/sessions\/([^/]+)\/(serial|ssh)$/.exec(url.pathname);
      if (!m) throw new HttpError(404, "no such WebSocket");
      checkOrigin(req, host, true);
      const s = await sessionFor(decode(m[1]!), url.searchParams.get("token") ?? undefined);
      const cols = size(url.searchParams.get("cols"), TERMINAL_COLS, 80);
      const rows = size(url.searchParams.get("rows"), TERMINAL_ROWS, 24);
      wss.handleUpgrade(req, socket, head, (ws) => {
        attachTerminal(s, m[2] as "serial" | "ssh", ws, cols, rows).catch((err) => {
          log(`session ${s.id}: ${m[2]} terminal: ${errorBody(err).message}`);
          ws.close(4004, "the terminal could not be opened");
        });
      });
    })().catch((err) => {
      if (err instanceof HttpError) refuseUpgrade(socket, err.status, err.message);
      else {
        log(`WebSocket ${req.url?.split("?")[0]}: ${errorBody(err).message}`);
        refuseUpgrade(socket, 500, "the server failed");
      }
    });
  });

  function status(ws: WebSocket, text: string, extra: Record<string, unknown> = {}): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: "status", text, ...extra }));
  }

  /** Bytes typed into a terminal, bounded in rate: a burst of a few seconds' worth, then INPUT_RATE a second. */
  function inputLimiter(): (n: number) => boolean {
    let allowance = INPUT_RATE * 4;
    let at = Date.now();
    return (n) => {
      const now = Date.now();
      allowance = Math.min(INPUT_RATE * 4, allowance + ((now - at) / 1000) * INPUT_RATE);
      at = now;
      allowance -= n;
      return allowance >= 0;
    };
  }

  /** The last part of the machine's console log, from a line start: what the console showed before the page connected. */
  async function consoleTail(machine: string, bytes = 16 * 1024): Promise<Buffer | undefined> {
    try {
      const e = await findKept(machine);
      if (!e.serialLog) return undefined;
      const fh = await openFile(e.serialLog, "r");
      try {
        const { size: total } = await fh.stat();
        const from = Math.max(0, total - bytes);
        const buf = Buffer.alloc(total - from);
        await fh.read(buf, 0, buf.length, from);
        const nl = from > 0 ? buf.indexOf(0x0a) : -1;
        return nl >= 0 ? buf.subarray(nl + 1) : buf;
      } finally {
        await fh.close();
      }
    } catch {
      return undefined;
    }
  }

  async function attachTerminal(s: TrainingSession, kind: "serial" | "ssh", ws: WebSocket, cols: number, rows: number): Promise<void> {
    if (ENDED.has(s.state)) {
      ws.close(4001, "the session has ended");
      return;
    }
    const job = jobs.get(s.id);
    if (job?.state === "running") {
      ws.close(4002, job.action);
      return;
    }
    const set = terminals.get(s.id) ?? new Set<Terminal>();
    terminals.set(s.id, set);
    // One page per terminal: QEMU's console socket takes one client at a time, and a second page would steal keystrokes.
    for (const t of [...set]) {
      if (t.kind !== kind) continue;
      t.ws.close(4003, "opened in another page");
      t.end();
      set.delete(t);
    }
    let ended = false;
    const term: Terminal = { kind, ws, end: () => undefined };
    set.add(term);
    const forget = () => {
      set.delete(term);
      if (set.size === 0 && terminals.get(s.id) === set) terminals.delete(s.id);
    };
    ws.on("close", () => {
      ended = true;
      forget();
      term.end();
    });
    ws.on("error", () => ws.terminate());
    touch(s.id);
    let t: SessionTerminals;
    try {
      t = await sessions.sessionTerminals(s.id);
    } catch (err) {
      status(ws, `the machine cannot be reached: ${errorBody(err).message}`);
      ws.close(4004, "unreachable");
      return;
    }
    if (ended) return;
    const allow = inputLimiter();
    /** Input from the page: binary frames are keystrokes, text frames are JSON control messages. */
    const onInput = (write: (b: Buffer) => void, resize: (c: number, r: number) => void) => {
      ws.on("message", (data: RawData, isBinary: boolean) => {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        if (!allow(buf.length)) {
          ws.close(1008, "typing too fast");
          return;
        }
        if (isBinary) {
          touch(s.id, true);
          write(buf);
          return;
        }
        let msg: unknown;
        try {
          msg = JSON.parse(buf.toString("utf8"));
        } catch {
          ws.close(1008, "bad message");
          return;
        }
        const r = msg as { type?: unknown; cols?: unknown; rows?: unknown };
        if (r.type === "resize") {
          const c = r.cols;
          const w = r.rows;
          if (
            typeof c !== "number" || typeof w !== "number" || !Number.isInteger(c) || !Number.isInteger(w) ||
            c < TERMINAL_COLS.min || c > TERMINAL_COLS.max || w < TERMINAL_ROWS.min || w > TERMINAL_ROWS.max
          ) {
            ws.close(1008, "bad terminal size");
            return;
          }
          resize(c, w);
        }
      });
    };
    /** Output to the page, pausing the source while the page is behind. */
    const forward = (src: { pause(): unknown; resume(): unknown }) => (chunk: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(chunk, { binary: true });
      if (ws.bufferedAmount > 1024 * 1024) {
        src.pause();
        const wait = setInterval(() => {
          if (ws.readyState !== ws.OPEN || ws.bufferedAmount < 256 * 1024) {
            clearInterval(wait);
            src.resume();
          }
        }, 50);
      }
    };

    if (kind === "serial") {
      const sock: Socket = createConnection(t.serialSocket);
      term.end = () => sock.destroy();
      sock.on("error", (err) => {
        status(ws, `the serial console is not there: ${err.message}`);
        ws.close(4000, "console closed");
      });
      sock.on("close", () => {
        if (!ended) ws.close(4000, "console closed");
      });
      await new Promise<void>((resolve) => sock.once("connect", resolve).once("error", () => resolve()));
      if (sock.destroyed || ended) return;
      const tail = await consoleTail(t.machine);
      if (tail?.length && ws.readyState === ws.OPEN) ws.send(tail, { binary: true });
      status(ws, `serial console of ${t.machine}`, { machine: t.machine, connected: true });
      sock.on("data", forward(sock));
      onInput((b) => sock.write(b), () => undefined);
      return;
    }

    // SSH: the lab's options, a pseudo-terminal forced (-tt), and a remote command that reports the
    // terminal's name (an OSC sequence the page's xterm.js ignores) so that a resize can be applied
    // to it, sets the size, and starts root's login shell. Only whole numbers reach that command.
    const { ssh } = t;
    if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(ssh.user) || !/^[A-Za-z0-9.:-]{1,253}$/.test(ssh.host) || ssh.host.startsWith("-")) {
      throw new Error(`bad SSH target ${ssh.user}@${ssh.host}`);
    }
    const target = [...labSshOptions(ssh.keyPath, ssh.port), "-o", "BatchMode=yes", "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=12"];
    const remote = `printf '\\033]7770;%s\\007' "$(tty)"; stty rows ${rows} cols ${cols} 2>/dev/null; exec "\${SHELL:-/bin/sh}" -l`;
    const child: ChildProcess = spawn("ssh", [...target, "-tt", "--", `${ssh.user}@${ssh.host}`, remote], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, TERM: "xterm-256color", LANG: process.env.LANG ?? "C.UTF-8" },
    });
    term.end = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    };
    let tty: string | undefined;
    let seen = "";
    const out = forward(child.stdout!);
    child.stdout!.on("data", (chunk: Buffer) => {
      if (tty === undefined && seen.length < 8192) {
        seen += chunk.toString("latin1");
        const m = /\x1b\]7770;(\/dev\/pts\/\d{1,6})\x07/.exec(seen);
        if (m) tty = m[1];
      }
      out(chunk);
    });
    child.stderr!.on("data", (chunk: Buffer) => out(chunk));
    child.on("error", (err) => {
      status(ws, `ssh could not start: ${err.message}`);
      ws.close(4004, "ssh failed");
    });
    child.on("exit", (code) => {
      if (!ended) {
        status(ws, `the SSH connection ended (exit ${code ?? "by signal"})`);
        ws.close(4000, "ssh ended");
      }
    });
    child.stdin!.on("error", () => undefined);
    status(ws, `SSH to ${t.machine}`, { machine: t.machine, connected: true });
    let resizeTimer: NodeJS.Timeout | undefined;
    onInput(
      (b) => child.stdin!.write(b),
      (c, r) => {
        clearTimeout(resizeTimer);
        resizeTimer = setTimeout(() => {
          if (!tty || ended) return;
          // A second connection sets the size of the first one's terminal; the kernel tells its shell (SIGWINCH).
          const p = spawn("ssh", [...target, "-T", "--", `${ssh.user}@${ssh.host}`, `stty -F ${tty} rows ${r} cols ${c}`], { stdio: "ignore" });
          p.on("error", () => undefined);
        }, 400);
      },
    );
  }

  // ---------------------------------------------------------------- idle sessions

  let sweeping = false;
  async function sweepIdle(): Promise<void> {
    if (sweeping) return;
    sweeping = true;
    try {
      const now = Date.now();
      for (const s of await sessions.listSessions()) {
        // A session only used from the command line is not this server's to judge: its terminals are elsewhere.
        if (!known.has(s.id) || ENDED.has(s.state) || s.state === "starting" || jobs.get(s.id)?.state === "running") continue;
        const last = Math.max(Date.parse(s.lastActivityAt) || 0, lastTouch.get(s.id) ?? 0);
        if (now - last < idleMs) continue;
        log(`session ${s.id} (${s.exercise}): idle for ${Math.round((now - last) / 60_000)} minutes, stopped`);
        closeTerminals(s.id, 4001, "the session was idle and has been stopped");
        await sessions.stopSession(s.id).catch((err) => log(`session ${s.id}: stopping it failed: ${errorBody(err).message}`));
      }
    } catch (err) {
      log(`looking for idle sessions failed: ${errorBody(err).message}`);
    } finally {
      sweeping = false;
    }
  }
  const idleTimer = setInterval(() => void sweepIdle(), Math.min(60_000, Math.max(1000, idleMs / 4)));
  idleTimer.unref();
  const firstSweep = setTimeout(() => void sweepIdle(), 1000);
  firstSweep.unref();

  // ---------------------------------------------------------------- listen

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, bindHost, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address();
  if (addr && typeof addr === "object") port = addr.port;
  const shownHost = bindHost === "0.0.0.0" || bindHost === "::" ? hostname() : isIP(bindHost) === 6 ? `[${bindHost}]` : bindHost;
  if (bindHost === "0.0.0.0" || bindHost === "::") hostNames.add(hostname());
  return {
    server,
    host: bindHost,
    port,
    url: `http://${shownHost}:${port}`,
    trainerToken,
    async close() {
      clearInterval(idleTimer);
      clearTimeout(firstSweep);
      for (const id of [...terminals.keys()]) closeTerminals(id, 1001, "the server is stopping");
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
