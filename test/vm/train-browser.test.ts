/**
 * `vmlab train serve` in Debian's chromium (through playwright-core), on a
 * real guest, as a trainee uses it: the exercise list, a session of
 * `stale-fstab-uuid` started from its button (the machine is in emergency
 * mode), root's password and a command typed into the serial console
 * terminal with the guest's answer read back from the page, a check that
 * says "not yet" with the boot's evidence, the solution typed into the same
 * terminal, and a check that passes; then a command over the SSH terminal
 * of the repaired machine, and the trainer's page, which ends the session.
 * Screenshots are kept in reports/screenshots/ (or
 * $VMLAB_TEST_ARTIFACTS/screenshots/). Skipped, saying why, where
 * /usr/bin/chromium is absent.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../src/paths.ts";
import { consoleLines } from "../../src/training/exercise.ts";
import { findSession, stopSession } from "../../src/training/session.ts";
import { findKept, liveness } from "../../src/vm/kept.ts";

const CHROMIUM = "/usr/bin/chromium";
const NO_CHROMIUM = `${CHROMIUM} is not installed (apt-get install -y chromium): the browser test of vmlab train serve does not run`;
const SHOTS = process.env.VMLAB_TEST_ARTIFACTS ? join(process.env.VMLAB_TEST_ARTIFACTS, "screenshots") : join(projectRoot, "reports", "screenshots");

/** The part of playwright-core's API used here (imported by name at run time). */
interface Pw {
  chromium: { launch(o: { executablePath: string; args?: string[] }): Promise<PwBrowser> };
}
interface PwBrowser {
  newPage(o?: { viewport?: { width: number; height: number } }): Promise<PwPage>;
  close(): Promise<void>;
}
interface PwPage {
  on(event: "console", fn: (m: { type(): string; text(): string }) => void): void;
  on(event: "pageerror", fn: (e: Error) => void): void;
  goto(url: string, o?: { waitUntil?: "load" }): Promise<unknown>;
  click(selector: string): Promise<void>;
  waitForURL(re: RegExp, o?: { timeout?: number }): Promise<void>;
  waitForSelector(selector: string, o?: { timeout?: number }): Promise<unknown>;
  evaluate<T>(fn: string): Promise<T>;
  textContent(selector: string): Promise<string | null>;
  keyboard: { type(text: string, o?: { delay?: number }): Promise<void>; press(key: string): Promise<void> };
  screenshot(o: { path: string; fullPage?: boolean }): Promise<unknown>;
  url(): string;
  close(): Promise<void>;
}

let serve: ResultPromise | undefined;
let browser: PwBrowser | undefined;
let base = "";
let trainerToken = "";
let sessionId = "";
const serverLog: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) return;
  // The real command line, on a free loopback port.
  serve = execa("node", [join(projectRoot, "lab/vmlab.mjs"), "train", "serve", "--port", "0", "--idle-minutes", "1440"], { reject: false, stdin: "ignore", env: { ...process.env, CI: "true" } });
  let out = "";
  serve.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  serve.stderr!.on("data", (d: Buffer) => serverLog.push(d.toString()));
  const deadline = Date.now() + 60_000;
  while (!/trainer: +\S+/.test(out) && Date.now() < deadline && serve.exitCode === null) await new Promise((r) => setTimeout(r, 200));
  const m = /trainer: +(http:\/\/127\.0\.0\.1:\d+)\/trainer\?token=(\S+)/.exec(out);
  if (!m) throw new Error(`vmlab train serve did not start:\n${out}\n${serverLog.join("")}`);
  base = m[1]!;
  trainerToken = m[2]!;
  const name = "playwright-core";
  const pw = (await import(name)) as Pw;
  browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

afterAll(async () => {
  await browser?.close();
  // Whatever happened above, the session's machines end.
  if (sessionId) {
    const s = await findSession(sessionId).catch(() => undefined);
    if (s && s.state !== "stopped") await stopSession(sessionId);
  }
  if (serve && serve.exitCode === null) {
    serve.kill("SIGINT");
    await serve;
  }
});

/**
 * Wait until an expression is true in the page. Polled through evaluate, which the page's content
 * security policy allows (playwright's waitForFunction with a string would need 'unsafe-eval').
 */
async function waitUntil(page: PwPage, expr: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await page.evaluate<boolean>(`Boolean(${expr})`))) {
    if (Date.now() > deadline) throw new Error(`not true within ${ms / 1000} s: ${expr}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The text of a terminal of the page, scrollback included, from xterm.js's buffer. */
function terminalText(page: PwPage, kind: "serial" | "ssh"): Promise<string> {
  return page.evaluate<string>(`(function () {
    var b = window.vmlabTerminals.${kind}.buffer.active, out = [];
    for (var i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true));
    return out.join("\\n");
  })()`);
}

async function waitForText(page: PwPage, kind: "serial" | "ssh", re: RegExp, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  let text = "";
  while (Date.now() < deadline) {
    text = await terminalText(page, kind);
    if (re.test(text)) return text;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the ${kind} terminal did not show ${re} within ${ms / 1000} s; it shows:\n${text.split("\n").filter(Boolean).slice(-30).join("\n")}`);
}

/** Type a line into a terminal of the page, as a person does: click it, type, Enter. */
async function typeLine(page: PwPage, kind: "serial" | "ssh", line: string): Promise<void> {
  await page.click(`#term-${kind}`);
  await page.keyboard.type(line, { delay: 20 });
  await page.keyboard.press("Enter");
}

const PROMPT = /root@[\w-]+:[^\n]*# *$/;
const lastLine = (text: string) => text.split("\n").filter((l) => l.trim()).at(-1) ?? "";

async function waitForPrompt(page: PwPage, kind: "serial" | "ssh", ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (PROMPT.test(lastLine(await terminalText(page, kind)))) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`no root prompt on the ${kind} terminal: ${lastLine(await terminalText(page, kind))}`);
}

/** Press check and wait for its result box; returns its class (pass or fail) and text. */
async function check(page: PwPage, count: number): Promise<{ cls: string; text: string; evidence: string[]; outcome: string }> {
  await page.click("#btn-check");
  await waitUntil(page, `document.querySelector("#check h2") && document.querySelector("#check h2").textContent.includes("check ${count},")`, 10 * 60_000);
  return page.evaluate(`(function () {
    var box = document.getElementById("check");
    return { cls: box.className, text: box.textContent,
             evidence: Array.from(box.querySelectorAll("ol.evidence li")).map(function (l) { return l.textContent; }),
             outcome: (box.querySelector(".outcome") || {}).textContent || "" };
  })()`);
}

describe("vmlab train serve in chromium, on a real guest", () => {
  it("a trainee starts stale-fstab-uuid, works on its console in the page, checks, repairs it from the page and passes", async (ctx) => {
    if (!browser) return ctx.skip(NO_CHROMIUM);
    const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
    const errors: string[] = [];
    page.on("console", (m) => {
      // A refused WebSocket (the SSH terminal while the machine has no sshd) is logged by chromium as an error: not a page error.
      if (m.type() === "error" && !/WebSocket|Failed to load resource/.test(m.text())) errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    await mkdir(SHOTS, { recursive: true });

    await page.goto(`${base}/`, { waitUntil: "load" });
    await page.waitForSelector("#ex-stale-fstab-uuid button.start");
    await page.click("#ex-stale-fstab-uuid button.start");
    // The first session of an exercise makes its broken machine: minutes under TCG.
    await page.waitForURL(/\/session\/stale-fstab-uuid-[0-9a-f]+#token=/, { timeout: 20 * 60_000 });
    sessionId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop()!);
    await waitUntil(page, `document.getElementById("state").textContent !== ""`, 30_000);
    expect((await page.textContent("#title"))!).toContain("/boot is in fstab by a UUID that no disk has");
    expect((await page.textContent("#state"))!).toBe("running");
    expect(await page.textContent("#story")).toContain("serial console");

    // The console shows what the machine printed before the page came: emergency mode's password prompt.
    await waitForText(page, "serial", /Give root password for maintenance/, 90_000);
    await typeLine(page, "serial", "vmlab");
    await waitForPrompt(page, "serial");
    // A command typed in the page, answered by the guest (the page never had "42").
    await typeLine(page, "serial", "echo answer-$((6*7)); findmnt -n /boot >/dev/null || echo boot-is-not-mounted");
    const answered = await waitForText(page, "serial", /^answer-42$[\s\S]*^boot-is-not-mounted$/m, 60_000);
    expect(answered).toMatch(/^answer-42$/m);

    // The check reboots through the firmware and finds the same emergency mode.
    await page.evaluate(`window.vmlabTerminals.serial.reset()`);
    const first = await check(page, 1);
    expect(first.cls).toContain("fail");
    expect(first.text).toMatch(/Not yet/);
    expect(first.text).toMatch(/not yet: .*emergency mode/);
    expect(first.outcome).toBe("emergency-mode");
    expect(first.evidence.length).toBeGreaterThan(0);
    expect(first.evidence.join("\n")).toMatch(/Timed out waiting for device|Dependency failed for|emergency mode/);
    await page.screenshot({ path: join(SHOTS, "train-session-not-yet.png") });

    // The solution, typed into the same terminal after the check's boot (it reconnects by itself).
    const solution = consoleLines(await readFile(join(projectRoot, "exercises", "stale-fstab-uuid", "solve.sh"), "utf8"));
    expect(solution[0]).toBe("vmlab");
    await waitForText(page, "serial", /Give root password for maintenance/, 120_000);
    for (const [i, line] of solution.entries()) {
      await typeLine(page, "serial", line);
      await waitForPrompt(page, "serial", i === 0 ? 60_000 : 120_000);
    }
    await typeLine(page, "serial", "findmnt -n -o TARGET /boot");
    await waitForText(page, "serial", /^\/boot$/m, 30_000);

    const second = await check(page, 2);
    expect(second.cls, second.text).toContain("pass");
    expect(second.text).toMatch(/Passed/);
    expect(second.outcome).toBe("ssh");
    await waitUntil(page, `document.getElementById("state").textContent === "passed"`, 30_000);

    // The SSH terminal reaches the repaired machine.
    await waitForPrompt(page, "ssh", 120_000);
    await typeLine(page, "ssh", "echo ssh-$((6*7)) $(findmnt -n -o TARGET /boot)");
    await waitForText(page, "ssh", /^ssh-42 \/boot$/m, 30_000);
    await page.screenshot({ path: join(SHOTS, "train-session.png") });
    expect(errors).toEqual([]);

    // The trainer sees the session, and ends it.
    const trainer = await browser.newPage({ viewport: { width: 1400, height: 500 } });
    await trainer.goto(`${base}/trainer?token=${encodeURIComponent(trainerToken)}`, { waitUntil: "load" });
    await trainer.waitForSelector(`tr[data-session="${sessionId}"]`);
    const row = await trainer.evaluate<string[]>(`Array.from(document.querySelectorAll('tr[data-session="${sessionId}"] td')).map(function (t) { return t.textContent; })`);
    expect(row[1]).toBe("stale-fstab-uuid");
    expect(row[2]).toBe("passed");
    expect(row[6]).toBe("2");
    await trainer.screenshot({ path: join(SHOTS, "train-trainer.png") });
    const machine = (await findSession(sessionId)).machine;
    const kept = await findKept(machine);
    await trainer.click(`button[data-session="${sessionId}"]`);
    await trainer.click(`button[data-session="${sessionId}"]`);
    await waitUntil(trainer, `document.querySelector('tr[data-session="${sessionId}"] .badge').textContent === "stopped"`, 120_000);
    expect((await findSession(sessionId)).state).toBe("stopped");
    expect(liveness(kept).alive).toBe(false);
    // The trainee's page says so.
    await waitUntil(page, `document.getElementById("state").textContent === "stopped"`, 30_000);
    await trainer.close();
    await page.close();
  });
});
