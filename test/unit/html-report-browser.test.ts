/**
 * report.html in a real browser: Debian's chromium (`apt-get install -y
 * chromium`; .ci/run installs it) driven through playwright-core, which
 * downloads no browser of its own. The page is opened from file:// as a
 * person opens it from a report directory: it must load with no console
 * error and no network request, show one timeline bar per step, and take
 * a click on a boot's evidence line to that line in the console,
 * highlighted. Skipped, saying why, only where /usr/bin/chromium is absent.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { classifyBoot } from "../../src/boot/classify.ts";
import { renderIndexHtml, renderRunHtml, renderSweepHtml } from "../../src/report/html.ts";
import type { ScenarioReport } from "../../src/scenario/types.ts";

const CHROMIUM = "/usr/bin/chromium";
const NO_CHROMIUM = `${CHROMIUM} is not installed (apt-get install -y chromium): the browser test of report.html does not run`;

/** The part of playwright-core's API used here (the module is imported by name at run time). */
interface Pw {
  chromium: { launch(o: { executablePath: string; args?: string[]; headless?: boolean }): Promise<PwBrowser> };
}
interface PwBrowser {
  newPage(): Promise<PwPage>;
  close(): Promise<void>;
}
interface PwPage {
  on(event: "console", fn: (m: { type(): string; text(): string }) => void): void;
  on(event: "pageerror", fn: (e: Error) => void): void;
  on(event: "request", fn: (r: { url(): string }) => void): void;
  on(event: "dialog", fn: (d: { message(): string; dismiss(): Promise<void> }) => void): void;
  goto(url: string, o?: { waitUntil?: "load" }): Promise<unknown>;
  click(selector: string): Promise<void>;
  waitForFunction(fn: string): Promise<unknown>;
  evaluate<T>(fn: string): Promise<T>;
  screenshot(o: { path: string; fullPage?: boolean }): Promise<unknown>;
  close(): Promise<void>;
}

const RUNS = join(import.meta.dirname, "..", "fixtures", "runs");
const CONSOLES = join(import.meta.dirname, "..", "fixtures", "console");

let tmp: DirectoryResult;
let browser: PwBrowser | undefined;
let report: ScenarioReport;
let url: string;

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  // A recorded run whose machine went to emergency mode, with a recorded console of that failure
  // (the run's own was not kept) and the evidence the lab's classifier finds in it.
  report = JSON.parse(await readFile(join(RUNS, "stale-fstab.json"), "utf8"));
  const log = await readFile(join(CONSOLES, "emergency-mode-missing-fstab-uuid.log"), "utf8");
  report.boots[1]!.evidence = classifyBoot(log).evidence;
  report.boots[1]!.log = { file: "vm.console.log", from: 0, to: Buffer.byteLength(log) };
  // Hostile text in a step's log and in the console: shown, never run.
  report.steps[3]!.log.push(`<script>alert("step")</script>`);
  const hostile = `${log}\r\n<img src=x onerror="alert('console')"><script>alert(1)</script>\r\n`;
  const file = join(tmp.path, "report.html");
  await writeFile(file, renderRunHtml(report, [{ name: "vm.console.log", text: hostile }]));
  url = pathToFileURL(file).href;
  if (!existsSync(CHROMIUM)) return;
  const name = "playwright-core";
  const pw = (await import(name).catch((err: Error) => {
    throw new Error(`${name} is not installed (npm install -D ${name}): ${err.message}`);
  })) as Pw;
  // Root in a container: chromium's sandbox needs user namespaces it may not have.
  browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

afterAll(async () => {
  await browser?.close();
  await tmp?.cleanup();
});

/** Screenshots of the pages, kept after the run: $VMLAB_TEST_ARTIFACTS, or reports/screenshots in the project. */
const SHOTS = process.env.VMLAB_TEST_ARTIFACTS ? join(process.env.VMLAB_TEST_ARTIFACTS, "screenshots") : join(import.meta.dirname, "..", "..", "reports", "screenshots");

async function open(at = url): Promise<{ page: PwPage; errors: string[]; requests: string[]; dialogs: string[] }> {
  const page = await browser!.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  const dialogs: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("request", (r) => requests.push(r.url()));
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.goto(at, { waitUntil: "load" });
  return { page, errors, requests, dialogs };
}

describe("report.html in chromium", () => {
  it("loads from file:// with no console error, no network request and no script from the report", async (ctx) => {
    if (!existsSync(CHROMIUM)) return ctx.skip(NO_CHROMIUM);
    const { page, errors, requests, dialogs } = await open();
    expect(errors).toEqual([]);
    expect(requests).toEqual([url]);
    expect(dialogs).toEqual([]);
    expect(await page.evaluate<string>("document.title")).toBe("PASS stale-fstab");
    expect(await page.evaluate<string>(`document.querySelector("#verdict .word").textContent`)).toBe("PASS");
    expect(await page.evaluate<number>(`document.scripts.length`)).toBe(1);
    expect(await page.evaluate<number>(`document.images.length`)).toBe(0);
  });

  it("shows one bar per step on the timeline, in order, inside its track", async (ctx) => {
    if (!existsSync(CHROMIUM)) return ctx.skip(NO_CHROMIUM);
    const { page } = await open();
    const bars = await page.evaluate<{ status: string; x: number; w: number; h: number; trackX: number; trackW: number }[]>(`
      Array.from(document.querySelectorAll("li.tl-step")).map(function (li) {
        var bar = li.querySelector(".tl-bar").getBoundingClientRect();
        var track = li.querySelector(".tl-track").getBoundingClientRect();
        return { status: li.dataset.status, x: bar.x, w: bar.width, h: bar.height, trackX: track.x, trackW: track.width };
      })`);
    expect(bars.map((b) => b.status)).toEqual(report.steps.map((s) => s.status));
    for (const [i, b] of bars.entries()) {
      expect(b.w, `step ${i + 1} is drawn`).toBeGreaterThan(0);
      expect(b.h).toBeGreaterThan(0);
      expect(b.x).toBeGreaterThanOrEqual(b.trackX - 0.5);
      expect(b.x + b.w).toBeLessThanOrEqual(b.trackX + b.trackW + 0.5);
      // The steps ran one after another: each bar starts no earlier than the one before.
      if (i > 0) expect(b.x).toBeGreaterThanOrEqual(bars[i - 1]!.x - 0.5);
    }
    // The longest step (the reboot into emergency mode) has the widest bar.
    const longest = report.steps.reduce((m, s, i) => (s.durationMs > report.steps[m]!.durationMs ? i : m), 0);
    expect(bars.reduce((m, b, i) => (b.w > bars[m]!.w ? i : m), 0)).toBe(longest);
  });

  it("a click on a boot's evidence line goes to that line of the console, highlighted, even from a closed console", async (ctx) => {
    if (!existsSync(CHROMIUM)) return ctx.skip(NO_CHROMIUM);
    const { page, errors } = await open();
    await page.evaluate(`document.getElementById("console-0").open = false`);
    const evidence = report.boots[1]!.evidence;
    // The fourth evidence line: far down the console, out of view before the click.
    const href = await page.evaluate<string>(`document.querySelectorAll("#boot-2 a.ev-link")[3].getAttribute("href")`);
    expect(href).toMatch(/^#con0-L\d+$/);
    await page.click("#boot-2 ol.evidence li:nth-child(4) a.ev-link");
    await page.waitForFunction(`location.hash === ${JSON.stringify(href)}`);
    const target = await page.evaluate<{ id: string; cls: string; text: string; open: boolean; top: number; bottom: number; vh: number; bg: string }>(`(function () {
      var el = document.querySelector(":target");
      var r = el.getBoundingClientRect();
      return { id: el.id, cls: el.className, text: el.querySelector(".tx").textContent, open: document.getElementById("console-0").open,
               top: r.top, bottom: r.bottom, vh: window.innerHeight, bg: getComputedStyle(el).backgroundColor };
    })()`);
    expect(`#${target.id}`).toBe(href);
    expect(target.cls.split(" ")).toContain("ev");
    expect(target.text).toBe(evidence[3]);
    expect(target.open).toBe(true);
    // In view, and painted (the :target highlight).
    expect(target.top).toBeGreaterThanOrEqual(0);
    expect(target.bottom).toBeLessThanOrEqual(target.vh);
    expect(target.bg).not.toBe("rgba(0, 0, 0, 0)");
    // Every highlighted line is one of the boot's evidence lines.
    const highlighted = await page.evaluate<string[]>(`Array.from(document.querySelectorAll("#console-0 .line.ev .tx")).map(function (e) { return e.textContent; })`);
    expect(highlighted.sort()).toEqual([...evidence].sort());
    expect(errors).toEqual([]);
  });

  it("a sweep's page: one coloured cell per row of a real sweep, old root above the pivot and new below, with a legend", async (ctx) => {
    if (!browser) return ctx.skip(NO_CHROMIUM);
    const sweep = JSON.parse(await readFile(join(import.meta.dirname, "..", "fixtures", "sweeps", "runbook-root-to-lvm-power-cut.json"), "utf8"));
    const file = join(tmp.path, "sweep.html");
    await writeFile(file, renderSweepHtml(sweep));
    const { page, errors, requests } = await open(pathToFileURL(file).href);
    const cells = await page.evaluate<string[]>(`[...document.querySelectorAll("td.cell")].map((c) => c.dataset.category)`);
    expect(cells).toHaveLength(sweep.rows.length);
    // Rows 1-4 (before the copy) came back on the old root, 5-12 on the new one: the colours say so.
    expect(cells).toEqual(sweep.rows.map((r: { root: { which: string } }) => (r.root.which === "old" ? cells[0] : cells[11])));
    expect(new Set(cells).size).toBe(2);
    const legend = await page.evaluate<number>(`document.querySelectorAll(".legend *").length`);
    expect(legend).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    expect(requests.filter((r) => !r.startsWith("file:"))).toEqual([]);
    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, "sweep.png"), fullPage: true });
    await page.close();
  });

  it("a merged report's index: one row per run, failures first, each linking to its run's page", async (ctx) => {
    if (!browser) return ctx.skip(NO_CHROMIUM);
    const names = ["runbook-root-to-lvm", "runbook-root-to-lvm-no-relabel", "runbook-lvm-snapshot-rollback", "runbook-lvm-snapshot-too-small", "stale-fstab"];
    const entries = await Promise.all(
      names.map(async (n) => {
        const r = JSON.parse(await readFile(join(RUNS, n.startsWith("runbook-") ? "runbooks" : "", `${n}.json`), "utf8")) as ScenarioReport;
        return { scenario: r.scenario, verdict: n === "stale-fstab" ? ("fail" as const) : r.verdict, durationMs: r.durationMs, startedAt: r.startedAt, href: `${n}/report.html` };
      }),
    );
    const file = join(tmp.path, "index.html");
    await writeFile(file, renderIndexHtml(entries));
    const { page, errors } = await open(pathToFileURL(file).href);
    const rows = await page.evaluate<{ v: string; name: string; href: string }[]>(
      `[...document.querySelectorAll("tr.run")].map((r) => ({ v: r.querySelector(".v").textContent, name: r.querySelector("a").textContent, href: r.querySelector("a").getAttribute("href") }))`,
    );
    expect(rows).toHaveLength(names.length);
    expect(rows[0]).toEqual({ v: "FAIL", name: "stale-fstab", href: "stale-fstab/report.html" });
    expect(rows.slice(1).map((r) => r.v)).toEqual(["PASS", "PASS", "PASS", "PASS"]);
    expect(errors).toEqual([]);
    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, "index.html.png"), fullPage: true });
    await page.close();
    // And the run's own page, as a person first sees it.
    const run = await open();
    await run.page.screenshot({ path: join(SHOTS, "report.html.png"), fullPage: false });
    await run.page.close();
  });
});
