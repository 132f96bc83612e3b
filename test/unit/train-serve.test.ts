/**
 * `vmlab train serve` without a guest: the real server on an ephemeral
 * loopback port, real HTTP requests and real `ws` clients, against sessions
 * recorded where the session module keeps them (a private VMLAB_CACHE). No
 * machine is started: every refusal here comes before one would be touched,
 * and each is paired with the same request made rightly, which passes the
 * security layer (a hint is given; a terminal gets as far as finding that
 * the session's machine is not running).
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { WebSocket } from "ws";
import { BODY_LIMIT, startTrainServer, type TrainServer } from "../../src/training/serve.ts";
import { findSession, newSessionRecord, saveSession, sessionsDir } from "../../src/training/session.ts";
import type { TrainingSession } from "../../src/training/types.ts";

let tmp: DirectoryResult;
let srv: TrainServer;
let base: string;
const oldCache = process.env.VMLAB_CACHE;
const logged: string[] = [];

function session(id: string, over: Partial<TrainingSession> = {}): TrainingSession {
  return { ...newSessionRecord(id, "stale-fstab-uuid", join(sessionsDir(), id), "running"), ...over };
}

/** Record a session as the session module does: <cache>/training/sessions/<id>.json. */
async function record(s: TrainingSession): Promise<TrainingSession> {
  await saveSession(s);
  return s;
}

interface Answer {
  status: number;
  text: string;
  json: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
}

function call(method: string, path: string, o: { token?: string; body?: string | object; headers?: Record<string, string>; port?: number } = {}): Promise<Answer> {
  const body = o.body === undefined ? undefined : typeof o.body === "string" ? o.body : JSON.stringify(o.body);
  const headers: Record<string, string> = { ...(body !== undefined ? { "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(body)) } : {}), ...o.headers };
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  return new Promise((resolve, reject) => {
    const r = request({ host: "127.0.0.1", port: o.port ?? srv.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text);
        } catch {
          json = {};
        }
        resolve({ status: res.statusCode ?? 0, text, json, headers: res.headers });
      });
    });
    r.on("error", reject);
    if (body !== undefined) r.write(body);
    r.end();
  });
}

/** Open a WebSocket; resolves with the HTTP status of a refused upgrade, or the close code and reason of an accepted one. */
function ws(path: string, origin: string | null = base): Promise<{ refused?: number; opened?: boolean; code?: number; reason?: string; messages: string[] }> {
  return new Promise((resolve) => {
    const messages: string[] = [];
    const sock = new WebSocket(`ws://127.0.0.1:${srv.port}${path}`, origin === null ? {} : { origin });
    let opened = false;
    sock.on("unexpected-response", (_req, res) => {
      resolve({ refused: res.statusCode, messages });
      res.resume();
      sock.terminate();
    });
    sock.on("open", () => (opened = true));
    sock.on("message", (d, bin) => {
      if (!bin) messages.push(d.toString());
    });
    sock.on("close", (code, reason) => resolve({ opened, code, reason: reason.toString(), messages }));
    sock.on("error", () => undefined);
  });
}

let a: TrainingSession;
let b: TrainingSession;

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  process.env.VMLAB_CACHE = tmp.path;
  a = await record(session(`stale-fstab-uuid-${randomBytes(3).toString("hex")}`));
  b = await record(session(`stale-fstab-uuid-${randomBytes(3).toString("hex")}`));
  srv = await startTrainServer({ port: 0, trainerToken: "trainer-token-for-the-test", log: (l) => logged.push(l) });
  base = `http://127.0.0.1:${srv.port}`;
});

afterAll(async () => {
  await srv?.close();
  if (oldCache === undefined) delete process.env.VMLAB_CACHE;
  else process.env.VMLAB_CACHE = oldCache;
  await tmp?.cleanup();
});

describe("vmlab train serve: listening", () => {
  it("binds 127.0.0.1 by default", () => {
    const addr = srv.server.address();
    expect(addr && typeof addr === "object" && addr.address).toBe("127.0.0.1");
    expect(srv.url).toBe(base);
  });

  it("serves the pages and xterm.js from fixed paths, with a content security policy, and nothing else from disk", async () => {
    const page = await call("GET", "/");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toMatch(/^text\/html/);
    expect(page.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(page.headers["content-security-policy"]).toContain(`connect-src 'self' ws://127.0.0.1:${srv.port}`);
    for (const p of ["/static/xterm/xterm.mjs", "/static/xterm/addon-fit.mjs", "/static/session.js"]) {
      const r = await call("GET", p);
      expect(r.status, p).toBe(200);
      expect(r.headers["content-type"]).toMatch(/^text\/javascript/);
    }
    const css = await call("GET", "/static/xterm/xterm.css");
    expect(css.status).toBe(200);
    expect(css.text).toContain(".xterm");
    for (const p of ["/static/../package.json", "/static/%2e%2e/package.json", "/static/serve.ts", "/package.json"]) {
      expect((await call("GET", p)).status, p).toBe(404);
    }
    expect((await call("GET", `/session/${a.id}`)).status).toBe(200);
  });

  it("refuses a Host that is not a name of this server (DNS rebinding)", async () => {
    const r = await call("GET", "/api/exercises", { headers: { Host: `attacker.example:${srv.port}` } });
    expect(r.status).toBe(421);
    expect((await call("GET", "/api/exercises", { headers: { Host: `localhost:${srv.port}` } })).status).toBe(200);
  });
});

describe("vmlab train serve: exercises and starting a session", () => {
  it("lists the exercises", async () => {
    const r = await call("GET", "/api/exercises");
    expect(r.status).toBe(200);
    expect((r.json.exercises as { name: string }[]).map((e) => e.name)).toContain("stale-fstab-uuid");
  });

  it("a bad exercise name is 400, an unknown one 404", async () => {
    for (const name of ["Bad_Name", "../etc", "", "-x", "a".repeat(65), 42]) {
      const r = await call("POST", "/api/sessions", { body: { exercise: name } });
      expect(r.status, String(name)).toBe(400);
    }
    const unknown = await call("POST", "/api/sessions", { body: { exercise: "no-such-exercise" } });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatch(/no exercise named "no-such-exercise"/);
    expect((await call("GET", "/api/exercises/no-such-exercise")).status).toBe(404);
    expect((await call("GET", "/api/exercises/Bad_Name")).status).toBe(400);
    expect((await call("GET", "/api/exercises/%E0%A4%A")).status).toBe(400);
  });

  it("an oversized body is 413, a body that is not JSON 415 or 400", async () => {
    const big = JSON.stringify({ exercise: "stale-fstab-uuid", pad: "x".repeat(BODY_LIMIT) });
    expect((await call("POST", "/api/sessions", { body: big })).status).toBe(413);
    expect((await call("POST", `/api/sessions/${a.id}/hint`, { token: a.token, body: big })).status).toBe(413);
    const form = await call("POST", "/api/sessions", { body: "exercise=stale-fstab-uuid", headers: { "Content-Type": "application/x-www-form-urlencoded" } });
    expect(form.status).toBe(415);
    expect((await call("POST", "/api/sessions", { body: "{not json" })).status).toBe(400);
    expect((await call("POST", "/api/sessions", { body: "[1]" })).status).toBe(400);
  });

  it("a POST from another site is refused", async () => {
    const r = await call("POST", "/api/sessions", { body: { exercise: "no-such-exercise" }, headers: { Origin: "http://attacker.example" } });
    expect(r.status).toBe(403);
  });

  it("with no memory for one more machine, a start is 503 with the reason, before any machine starts", async () => {
    const full = await startTrainServer({ port: 0, trainerToken: "trainer-token-for-the-test", memAvailable: () => 512 * 2 ** 20, log: () => undefined });
    try {
      const r = await call("POST", "/api/sessions", { port: full.port, body: { exercise: "stale-fstab-uuid" }, headers: { Host: `127.0.0.1:${full.port}` } });
      expect(r.status).toBe(503);
      expect(r.json.error).toMatch(/the host is full: 512 MiB of memory is free for machines, and one more needs 1280 MiB/);
    } finally {
      await full.close();
    }
    const few = await startTrainServer({ port: 0, trainerToken: "trainer-token-for-the-test", memTotal: () => 2 * 2 ** 30, memAvailable: () => 64 * 2 ** 30, log: () => undefined });
    try {
      // 2 GiB, less 1 GiB for the host: no room for a machine of 1.25 GiB, whatever is free now.
      const r = await call("POST", "/api/sessions", { port: few.port, body: { exercise: "stale-fstab-uuid" } });
      expect(r.status).toBe(503);
      expect(r.json.error).toMatch(/memory for 0 machines/);
    } finally {
      await few.close();
    }
    expect((await readFile(join(sessionsDir(), `${a.id}.json`), "utf8")).length).toBeGreaterThan(0);
  });

  it("a launch is read with its own token only", async () => {
    expect((await call("GET", "/api/launches/abcdef", { token: a.token })).status).toBe(403);
  });
});

describe("vmlab train serve: a session's token opens that session only", () => {
  it("another session's token, no token, or an unknown session: 403 on reading and on every action", async () => {
    for (const token of [b.token, undefined, "x".repeat(32), `${a.token}x`]) {
      expect((await call("GET", `/api/sessions/${a.id}`, { token })).status).toBe(403);
      for (const action of ["hint", "check", "reset", "rescue", "rescue-done", "solution", "stop"]) {
        expect((await call("POST", `/api/sessions/${a.id}/${action}`, { token })).status, `${action} with ${token?.slice(0, 4)}`).toBe(403);
      }
    }
    expect((await call("GET", `/api/sessions/no-such-session-0`, { token: a.token })).status).toBe(403);
    // Nothing was done to the session.
    const after = await findSession(a.id);
    expect(after.hintsUsed).toBe(0);
    expect(after.state).toBe("running");
  });

  it("its own token reads the session (without any token in it) and takes a hint", async () => {
    const r = await call("GET", `/api/sessions/${a.id}`, { token: a.token });
    expect(r.status).toBe(200);
    expect(r.text).not.toContain(a.token);
    expect((r.json.session as TrainingSession).exercise).toBe("stale-fstab-uuid");
    expect((r.json.exercise as { storyHtml: string }).storyHtml).toMatch(/<p>/);
    const hint = await call("POST", `/api/sessions/${a.id}/hint`, { token: a.token });
    expect(hint.status).toBe(200);
    expect(hint.json.index).toBe(1);
    expect((await findSession(a.id)).hintsUsed).toBe(1);
    expect((await findSession(b.id)).hintsUsed).toBe(0);
  });

  it("the terminal WebSocket: another session's token and a bad token are 403 before the upgrade", async () => {
    for (const kind of ["serial", "ssh"]) {
      expect((await ws(`/ws/sessions/${a.id}/${kind}?token=${encodeURIComponent(b.token)}`)).refused).toBe(403);
      expect((await ws(`/ws/sessions/${a.id}/${kind}`)).refused).toBe(403);
      expect((await ws(`/ws/sessions/${a.id}/${kind}?token=nope`)).refused).toBe(403);
    }
    expect((await ws(`/ws/sessions/${a.id}/shell?token=${encodeURIComponent(a.token)}`)).refused).toBe(404);
    expect((await ws(`/api/sessions/${a.id}?token=${encodeURIComponent(a.token)}`)).refused).toBe(404);
  });

  it("the terminal WebSocket: a foreign Origin, or none, is 403 before the upgrade, even with the right token", async () => {
    const path = `/ws/sessions/${a.id}/serial?token=${encodeURIComponent(a.token)}`;
    expect((await ws(path, "http://attacker.example")).refused).toBe(403);
    expect((await ws(path, `http://127.0.0.1:${srv.port + 1}`)).refused).toBe(403);
    expect((await ws(path, `https://127.0.0.1:${srv.port}`)).refused).toBe(403);
    expect((await ws(path, "null")).refused).toBe(403);
    expect((await ws(path, null)).refused).toBe(403);
  });

  it("terminal sizes out of bounds are 400", async () => {
    const t = encodeURIComponent(a.token);
    expect((await ws(`/ws/sessions/${a.id}/ssh?token=${t}&cols=100000&rows=24`)).refused).toBe(400);
    expect((await ws(`/ws/sessions/${a.id}/ssh?token=${t}&cols=80&rows=0`)).refused).toBe(400);
    expect((await ws(`/ws/sessions/${a.id}/ssh?token=${t}&cols=8e1&rows=24`)).refused).toBe(400);
  });

  it("the right token and Origin pass: the terminal opens and says the machine is not running", async () => {
    const r = await ws(`/ws/sessions/${a.id}/serial?token=${encodeURIComponent(a.token)}&cols=100&rows=30`);
    expect(r.refused).toBeUndefined();
    expect(r.opened).toBe(true);
    expect(r.code).toBe(4004);
    expect(r.messages.join("\n")).toMatch(/the machine cannot be reached: .*(no kept machine|not running)/);
  });
});

describe("vmlab train serve: the trainer", () => {
  it("/trainer and its API refuse a missing or wrong token", async () => {
    expect((await call("GET", "/trainer")).status).toBe(403);
    expect((await call("GET", "/trainer?token=wrong-token-wrong-token")).status).toBe(403);
    expect((await call("GET", "/api/trainer/sessions")).status).toBe(403);
    expect((await call("GET", "/api/trainer/sessions", { token: a.token })).status).toBe(403);
    expect((await call("POST", `/api/trainer/sessions/${a.id}/stop`, { token: b.token })).status).toBe(403);
    expect((await findSession(a.id)).state).toBe("running");
  });

  it("with its token: every session with its exercise, state, time, hints used and checks tried, and no session's token", async () => {
    expect((await call("GET", "/trainer?token=trainer-token-for-the-test")).status).toBe(200);
    const r = await call("GET", "/api/trainer/sessions", { token: "trainer-token-for-the-test" });
    expect(r.status).toBe(200);
    expect(r.text).not.toContain(a.token);
    expect(r.text).not.toContain(b.token);
    const rows = r.json.sessions as { id: string; exercise: string; state: string; startedAt: string; hintsUsed: number; checksTried: number }[];
    const ra = rows.find((x) => x.id === a.id)!;
    expect(ra).toMatchObject({ exercise: "stale-fstab-uuid", state: "running", startedAt: a.startedAt, hintsUsed: 1, checksTried: 0 });
    expect(rows.some((x) => x.id === b.id)).toBe(true);
  });

  it("ends a session; its trainee's actions are then refused as ended", async () => {
    const r = await call("POST", `/api/trainer/sessions/${b.id}/stop`, { token: "trainer-token-for-the-test" });
    expect(r.status).toBe(200);
    expect((await findSession(b.id)).state).toBe("stopped");
    expect((await call("POST", `/api/sessions/${b.id}/hint`, { token: b.token })).status).toBe(409);
    expect((await call("POST", `/api/sessions/${b.id}/check`, { token: b.token })).status).toBe(409);
    const term = await ws(`/ws/sessions/${b.id}/serial?token=${encodeURIComponent(b.token)}`);
    expect(term.code).toBe(4001);
    expect((await call("POST", `/api/trainer/sessions/no-such-session-0/stop`, { token: "trainer-token-for-the-test" })).status).toBe(404);
  });

  it("a trainer token from VMLAB_TRAINER_TOKEN, or a random one; a short one is refused", async () => {
    const old = process.env.VMLAB_TRAINER_TOKEN;
    try {
      process.env.VMLAB_TRAINER_TOKEN = "from-the-environment-1234";
      const s1 = await startTrainServer({ port: 0, log: () => undefined });
      expect(s1.trainerToken).toBe("from-the-environment-1234");
      await s1.close();
      delete process.env.VMLAB_TRAINER_TOKEN;
      const s2 = await startTrainServer({ port: 0, log: () => undefined });
      const s3 = await startTrainServer({ port: 0, log: () => undefined });
      expect(s2.trainerToken).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(s2.trainerToken).not.toBe(s3.trainerToken);
      await s2.close();
      await s3.close();
      process.env.VMLAB_TRAINER_TOKEN = "short";
      await expect(startTrainServer({ port: 0, log: () => undefined })).rejects.toThrow(/at least 16/);
    } finally {
      if (old === undefined) delete process.env.VMLAB_TRAINER_TOKEN;
      else process.env.VMLAB_TRAINER_TOKEN = old;
    }
  });
});

describe("vmlab train serve: idle sessions", () => {
  it("a session used through the server with no activity for --idle-minutes is stopped; an active one, and one only used from the command line, are not", async () => {
    // Idle for 10 minutes: past this server's limit of 1, within the other server's 30.
    const tenAgo = new Date(Date.now() - 600_000).toISOString();
    const old = await record(session(`stale-fstab-uuid-${randomBytes(3).toString("hex")}`, { lastActivityAt: tenAgo }));
    const fresh = await record(session(`stale-fstab-uuid-${randomBytes(3).toString("hex")}`));
    const elsewhere = await record(session(`stale-fstab-uuid-${randomBytes(3).toString("hex")}`, { lastActivityAt: tenAgo }));
    const lines: string[] = [];
    const idle = await startTrainServer({ port: 0, idleMinutes: 1, trainerToken: "trainer-token-for-the-test", log: (l) => lines.push(l) });
    try {
      // The trainees' pages read their sessions (reading is not activity).
      for (const s of [old, fresh]) expect((await call("GET", `/api/sessions/${s.id}`, { port: idle.port, token: s.token })).status).toBe(200);
      const deadline = Date.now() + 20_000;
      while ((await findSession(old.id)).state !== "stopped" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect((await findSession(old.id)).state).toBe("stopped");
      expect((await findSession(fresh.id)).state).toBe("running");
      expect((await findSession(elsewhere.id)).state).toBe("running");
      expect(lines.join("\n")).toMatch(new RegExp(`session ${old.id} \\(stale-fstab-uuid\\): idle for 10 minutes, stopped`));
    } finally {
      await idle.close();
    }
  });
});
