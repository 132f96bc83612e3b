/**
 * withDirLock (src/util/lock.ts) on real lock directories: two callers in one
 * process and in two node processes run one after the other, the second told
 * once that it waits; a lock whose holder was SIGKILLed is taken over within
 * seconds; a lock directory left by an older vmlab (never refreshed) too.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { dir, type DirectoryResult } from "tmp-promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../src/paths.ts";
import { withDirLock } from "../../src/util/lock.ts";

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true, prefix: "vmlab-lock-" });
});
afterAll(async () => {
  await tmp.cleanup();
});

/** A node process running `body` (an ES module, withDirLock imported) from inside the repo. */
function node(body: string): ChildProcess & { out: () => string } {
  let out = "";
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", `import { withDirLock } from "./src/util/lock.ts";\n${body}`], {
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d) => (out += String(d)));
  child.stderr!.on("data", (d) => (out += String(d)));
  return Object.assign(child, { out: () => out });
}

const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once("exit", (code) => r(code))));

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await sleep(50);
  }
}

describe("withDirLock", () => {
  it("runs two callers in one process one after the other; the second waits, is told once, and knows it waited", async () => {
    const lock = join(tmp.path, "one-process.lock");
    const events: string[] = [];
    let waits = 0;
    const job = (name: string) =>
      withDirLock(
        lock,
        async (waited) => {
          events.push(`${name} start`);
          await sleep(1500);
          events.push(`${name} end`);
          return { name, waited };
        },
        { onWait: () => waits++, pollMs: 100 },
      );
    const results = await Promise.all([job("a"), job("b")]);
    // Either may take the lock first (the two attempts race on a busy host); the other waits for the whole of it.
    const first = events[0]!.split(" ")[0]!;
    const second = first === "a" ? "b" : "a";
    expect(events).toEqual([`${first} start`, `${first} end`, `${second} start`, `${second} end`]);
    expect(results.map((r) => [r.name, r.waited]).sort()).toEqual([
      [first, false],
      [second, true],
    ].sort());
    expect(waits).toBe(1);
  });

  it("runs two node processes one after the other", async () => {
    const lock = join(tmp.path, "two-processes.lock");
    const log = join(tmp.path, "two-processes.log");
    const body = (name: string) => `
      import { appendFileSync } from "node:fs";
      await withDirLock(${JSON.stringify(lock)}, async (waited) => {
        appendFileSync(${JSON.stringify(log)}, "${name} start " + waited + "\\n");
        await new Promise((r) => setTimeout(r, 1500));
        appendFileSync(${JSON.stringify(log)}, "${name} end\\n");
      }, { pollMs: 100, onWait: () => console.log("waiting") });`;
    const a = node(body("a"));
    const b = node(body("b"));
    expect(await Promise.all([exited(a), exited(b)])).toEqual([0, 0]);
    const lines = readFileSync(log, "utf8").trim().split("\n");
    // Either may go first; the other starts only after the first ended, and knows it waited.
    const [first, second] = lines[0]!.startsWith("a") ? ["a", "b"] : ["b", "a"];
    expect(lines).toEqual([`${first} start false`, `${first} end`, `${second} start true`, `${second} end`]);
    expect((second === "a" ? a : b).out()).toBe("waiting\n");
  });

  it("takes over within seconds the lock of a holder that was SIGKILLed", async () => {
    const lock = join(tmp.path, "killed.lock");
    const holder = node(`await withDirLock(${JSON.stringify(lock)}, async () => { console.log("held"); await new Promise(() => setInterval(() => {}, 1000)); }, { staleMs: 3000 });`);
    await until(() => holder.out().includes("held"), 30_000);
    holder.kill("SIGKILL");
    await exited(holder);
    const t = Date.now();
    let waits = 0;
    const waited = await withDirLock(lock, async (w) => w, { staleMs: 3000, pollMs: 100, onWait: () => waits++ });
    const ms = Date.now() - t;
    expect(waited).toBe(true);
    expect(waits).toBe(1);
    // Stale 3 s after the last refresh, which came at most 1 s before the kill:
    // seconds, not the hour a mkdir lock was given; the bound is loose for a busy host.
    expect(ms).toBeLessThan(30_000);
  });

  it("a held lock is not taken over however long its holder holds it", async () => {
    const lock = join(tmp.path, "long.lock");
    const events: string[] = [];
    // The holder keeps it for three stale periods; the lock is refreshed all along.
    const holder = withDirLock(lock, async () => {
      events.push("holder start");
      await sleep(7000);
      events.push("holder end");
    }, { staleMs: 2000 });
    await sleep(100);
    await withDirLock(lock, async () => void events.push("second"), { staleMs: 2000, pollMs: 100 });
    await holder;
    expect(events).toEqual(["holder start", "holder end", "second"]);
  });

  it("takes over at once a lock directory that was never refreshed (an older vmlab's, whose holder died)", async () => {
    const lock = join(tmp.path, "old.lock");
    mkdirSync(lock);
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    const t = Date.now();
    expect(await withDirLock(lock, async (w) => w)).toBe(false);
    expect(Date.now() - t).toBeLessThan(1000);
  });

  it("removes its lock when fn fails, and the failure reaches the caller", async () => {
    const lock = join(tmp.path, "fails.lock");
    await expect(withDirLock(lock, async () => { throw new Error("build failed"); })).rejects.toThrow("build failed");
    expect(await withDirLock(lock, async (w) => w)).toBe(false);
  });
});
