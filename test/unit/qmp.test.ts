import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import { dir, type DirectoryResult } from "tmp-promise";
import { QmpClient, QmpError, type QmpEvent } from "../../src/vm/qmp.ts";
import { VmlabError } from "../../src/errors.ts";
import { endQemu } from "../vm/helpers.ts";

let tmp: DirectoryResult;
let qemu: ResultPromise<{ reject: false }> | undefined;
let client: QmpClient | undefined;
let server: Server | undefined;

beforeEach(async () => {
  tmp = await dir({ unsafeCleanup: true, prefix: "vmlab-qmp-" });
});

afterEach(async () => {
  await client?.close();
  client = undefined;
  if (qemu) {
    await endQemu(qemu);
    qemu = undefined;
  }
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  await tmp.cleanup();
});

/** A QEMU with no machine at all: starts in milliseconds, enough to talk QMP. */
async function startQemu(): Promise<QmpClient> {
  const sock = join(tmp.path, "qmp.sock");
  qemu = execa(
    "qemu-system-x86_64",
    ["-machine", "none", "-nodefaults", "-display", "none", "-qmp", `unix:${sock},server=on,wait=off`],
    { reject: false },
  );
  client = await QmpClient.connect(sock, { timeoutMs: 10_000 });
  return client;
}

describe("QmpClient against a real QEMU", () => {
  it("reads the greeting and runs query-version", async () => {
    const c = await startQemu();
    expect(c.greeting.version.qemu.major).toBeGreaterThanOrEqual(7);
    const v = await c.execute<{ qemu: { major: number; minor: number; micro: number }; package: string }>("query-version");
    expect(v.qemu).toEqual(c.greeting.version.qemu);
    expect(typeof v.package).toBe("string");
  });

  it("runs query-status", async () => {
    const c = await startQemu();
    const s = await c.execute<{ status: string; running: boolean }>("query-status");
    expect(typeof s.status).toBe("string");
    expect(typeof s.running).toBe("boolean");
  });

  it("rejects an unknown command with QmpError CommandNotFound", async () => {
    const c = await startQemu();
    const err = await c.execute("no-such-command").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toBeInstanceOf(VmlabError);
    const q = err as QmpError;
    expect(q.errorClass).toBe("CommandNotFound");
    expect(q.command).toBe("no-such-command");
    expect(q.desc).toMatch(/has not been found/);
    expect(q.message).toContain("no-such-command");
    // The connection is still usable afterwards.
    await expect(c.execute("query-status")).resolves.toBeTruthy();
  });

  it("sees STOP and RESUME events for stop and cont", async () => {
    const c = await startQemu();
    const seen: string[] = [];
    c.onEvent((e) => seen.push(e.event));
    await c.execute("stop");
    // STOP may well have arrived already: the unclaimed-event buffer makes this race-free.
    const stop = await c.waitForEvent("STOP", 5_000);
    expect(stop.timestamp.seconds).toBeGreaterThan(0);
    expect((await c.execute<{ status: string }>("query-status")).status).toBe("paused");
    const resume = c.waitForEvent("RESUME", 5_000);
    await c.execute("cont");
    await resume;
    expect(seen).toEqual(["STOP", "RESUME"]);
    // A claimed event is not handed out twice.
    await expect(c.waitForEvent("STOP", 100)).rejects.toThrow(/no STOP event within 100 ms/);
  });

  it("runs a human monitor command and returns its text", async () => {
    const c = await startQemu();
    const { major, minor, micro } = c.greeting.version.qemu;
    const text = await c.humanMonitorCommand("info version");
    expect(text).toContain(`${major}.${minor}.${micro}`);
  });

  it("quit: SHUTDOWN event, QEMU exits, later commands reject clearly", async () => {
    const c = await startQemu();
    const shutdown = c.waitForEvent("SHUTDOWN", 5_000);
    await c.execute("quit");
    const ev: QmpEvent = await shutdown;
    expect(ev.data?.guest).toBe(false);
    const exited = await qemu!;
    expect(exited.exitCode).toBe(0);
    await expect(c.waitForEvent("RESUME", 5_000)).rejects.toThrow(/connection to QEMU closed/);
    const err = await c.execute("query-status").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmlabError);
    expect(err).not.toBeInstanceOf(QmpError);
    expect((err as Error).message).toMatch(/QMP query-status: no reply: the connection to QEMU closed/);
    expect(c.closed).toBe(true);
  });

  it("fails with a clear VmlabError when nothing listens on the socket", async () => {
    const path = join(tmp.path, "nobody.sock");
    const started = Date.now();
    const err = await QmpClient.connect(path, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(err).toBeInstanceOf(VmlabError);
    const v = err as VmlabError;
    expect(v.message).toMatch(/Could not connect to QEMU's QMP socket within 300 ms: the socket does not exist/);
    expect(v.where).toBe(path);
    expect(v.hint).toMatch(/-qmp unix:/);
  });
});

/** A scripted QMP server, to test framing that a real QEMU will not produce on demand. */
async function fakeServer(onConnect: (sock: Socket) => void): Promise<string> {
  const path = join(tmp.path, "fake.sock");
  server = createServer(onConnect);
  await new Promise<void>((resolve) => server!.listen(path, resolve));
  return path;
}

const GREETING = JSON.stringify({
  QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: "fake" }, capabilities: [] },
});

/** Answer each request with `reply(request)`; undefined means no answer. */
function onRequests(sock: Socket, reply: (req: { execute: string; id: number }) => string | undefined): void {
  let buf = "";
  sock.on("data", (d) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const req = JSON.parse(buf.slice(0, nl)) as { execute: string; id: number };
      buf = buf.slice(nl + 1);
      const out = reply(req);
      if (out !== undefined) sock.write(out);
    }
  });
}

describe("QmpClient framing and failures (scripted server)", () => {
  it("handles messages split across chunks and several messages in one chunk", async () => {
    const path = await fakeServer((sock) => {
      // The greeting arrives in two pieces.
      sock.write(GREETING.slice(0, 20));
      setTimeout(() => sock.write(GREETING.slice(20) + "\r\n"), 20);
      onRequests(sock, (req) => {
        if (req.execute === "qmp_capabilities") return JSON.stringify({ return: {}, id: req.id }) + "\r\n";
        if (req.execute === "query-status") {
          // An event, the reply, and half of another event in one chunk; the rest later.
          const ev = (n: string) => JSON.stringify({ event: n, timestamp: { seconds: 1, microseconds: 2 } });
          const second = ev("RESUME") + "\r\n";
          setTimeout(() => sock.write(second.slice(10)), 20);
          return ev("STOP") + "\r\n" + JSON.stringify({ return: { status: "paused" }, id: req.id }) + "\r\n" + second.slice(0, 10);
        }
        return undefined;
      });
    });
    client = await QmpClient.connect(path, { timeoutMs: 2_000 });
    expect(client.greeting.version.package).toBe("fake");
    await expect(client.execute("query-status")).resolves.toEqual({ status: "paused" });
    await expect(client.waitForEvent("STOP", 1_000)).resolves.toMatchObject({ event: "STOP" });
    await expect(client.waitForEvent("RESUME", 1_000)).resolves.toMatchObject({ event: "RESUME" });
  });

  it("rejects pending commands and waits when the connection closes", async () => {
    const path = await fakeServer((sock) => {
      sock.write(GREETING + "\r\n");
      onRequests(sock, (req) => {
        if (req.execute === "qmp_capabilities") return JSON.stringify({ return: {}, id: req.id }) + "\r\n";
        setTimeout(() => sock.destroy(), 20); // never answers, hangs up instead
        return undefined;
      });
    });
    client = await QmpClient.connect(path, { timeoutMs: 2_000 });
    const wait = client.waitForEvent("SHUTDOWN", 10_000);
    const err = await client.execute("query-status").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmlabError);
    expect((err as Error).message).toMatch(/QMP query-status: no reply: the connection to QEMU closed/);
    await expect(wait).rejects.toThrow(/no SHUTDOWN event: the connection to QEMU closed/);
  });

  it("times out a command that gets no reply", async () => {
    const path = await fakeServer((sock) => {
      sock.write(GREETING + "\r\n");
      onRequests(sock, (req) =>
        req.execute === "qmp_capabilities" ? JSON.stringify({ return: {}, id: req.id }) + "\r\n" : undefined,
      );
    });
    client = await QmpClient.connect(path, { timeoutMs: 2_000 });
    await expect(client.execute("query-status", undefined, { timeoutMs: 100 })).rejects.toThrow(
      /QMP query-status: no reply from QEMU within 100 ms/,
    );
  });
});
