/**
 * The HTML pages (src/report/html.ts) rendered from the recorded real runs in
 * test/fixtures/runs and the recorded consoles in test/fixtures/console.
 *
 * The pages are well-formed XML by design, so they are parsed here with a
 * strict XML parser into a tree and checked as a reader would look at them:
 * the verdict, one timeline bar per step, the boots and their outcomes, the
 * evidence lines highlighted in the console and linked from their boot, and
 * hostile text shown as text. The same pages in a real browser:
 * html-report-browser.test.ts.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { classifyBoot, consoleLines } from "../../src/boot/classify.ts";
import { htmlEscape, renderIndexHtml, renderRunHtml, renderSweepHtml, type SweepLike } from "../../src/report/html.ts";
import { stepFailureText } from "../../src/scenario/report.ts";
import type { ScenarioReport } from "../../src/scenario/types.ts";
import { vmlab } from "../vm/helpers.ts";

const RUNS = join(import.meta.dirname, "..", "fixtures", "runs");
const CONSOLES = join(import.meta.dirname, "..", "fixtures", "console");

// ---------------------------------------------------------------- a small DOM over a strict parse

interface El {
  tag: string;
  attrs: Record<string, string>;
  children: (El | string)[];
}

const parser = new XMLParser({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: "", parseTagValue: false, parseAttributeValue: false, trimValues: false, processEntities: true, htmlEntities: true });

function toEl(nodes: Record<string, unknown>[]): (El | string)[] {
  const out: (El | string)[] = [];
  for (const n of nodes) {
    if ("#text" in n) {
      out.push(String(n["#text"]));
      continue;
    }
    const tag = Object.keys(n).find((k) => k !== ":@")!;
    if (tag.startsWith("!") || tag.startsWith("?")) continue;
    out.push({ tag, attrs: (n[":@"] as Record<string, string>) ?? {}, children: toEl(n[tag] as Record<string, unknown>[]) });
  }
  return out;
}

function parse(html: string): El {
  const valid = XMLValidator.validate(html);
  if (valid !== true) throw new Error(`not well-formed: ${JSON.stringify(valid)}`);
  const top = toEl(parser.parse(html)).filter((x): x is El => typeof x !== "string");
  return { tag: "#document", attrs: {}, children: top };
}

function all(root: El, pred: (e: El) => boolean): El[] {
  const out: El[] = [];
  const walk = (e: El) => {
    for (const c of e.children) {
      if (typeof c === "string") continue;
      if (pred(c)) out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

const classes = (e: El) => (e.attrs.class ?? "").split(/\s+/).filter(Boolean);
const hasClass = (c: string) => (e: El) => classes(e).includes(c);
const byClass = (root: El, c: string) => all(root, hasClass(c));
const byTag = (root: El, t: string) => all(root, (e) => e.tag === t);
function byId(root: El, id: string): El {
  const found = all(root, (e) => e.attrs.id === id);
  expect(found, `one element with id ${id}`).toHaveLength(1);
  return found[0]!;
}
function one(root: El, c: string): El {
  const found = byClass(root, c);
  expect(found, `one .${c}`).toHaveLength(1);
  return found[0]!;
}
const text = (e: El): string => e.children.map((c) => (typeof c === "string" ? c : text(c))).join("");

// ---------------------------------------------------------------- fixtures

async function runFixture(name: string): Promise<ScenarioReport> {
  return JSON.parse(await readFile(join(RUNS, `${name}.json`), "utf8"));
}

const fixtureNames = (await readdir(RUNS)).filter((f) => f.endsWith(".json")).map((f) => f.replace(/\.json$/, "")).sort();

/**
 * A recorded run and a recorded console together: the run's console was not
 * kept, so the console is a recorded boot of the same kind and the boot's
 * evidence is what the lab's classifier finds in it (as the runner does).
 */
async function withConsole(run: string, bootIndex: number, consoleFile: string): Promise<{ report: ScenarioReport; log: string }> {
  const report = await runFixture(run);
  const log = await readFile(join(CONSOLES, consoleFile), "utf8");
  const c = classifyBoot(log);
  const boot = report.boots[bootIndex]!;
  expect(c.outcome).toBe(boot.outcome);
  boot.evidence = c.evidence;
  boot.log = { file: join(report.runDir, "vm.console.log"), from: 0, to: Buffer.byteLength(log) };
  return { report, log };
}

/** The console line an evidence link points at. */
function linkTarget(doc: El, a: El): El {
  const href = a.attrs.href!;
  expect(href.startsWith("#")).toBe(true);
  return byId(doc, href.slice(1));
}

const lineText = (line: El) => text(one(line, "tx"));

// ---------------------------------------------------------------- tests

describe("htmlEscape", () => {
  it("escapes markup and both quotes, drops control characters", () => {
    expect(htmlEscape(`<script>alert("x")</script> & 'y'`)).toBe("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;");
    expect(htmlEscape("a\u0000b\u001b[0mc\td\ne")).toBe("ab[0mc\td\ne");
    expect(htmlEscape(undefined)).toBe("");
    expect(htmlEscape(42)).toBe("42");
  });
});

describe("report.html of each recorded run", () => {
  it.each(fixtureNames)("%s: verdict, one timeline bar per step with its status, the boots with their outcomes", async (name) => {
    const r = await runFixture(name);
    const html = renderRunHtml(r, []);
    const doc = parse(html);

    // The verdict, big, with the judgement's reasons, expected and observed.
    const verdict = byId(doc, "verdict");
    expect(classes(verdict)).toContain(r.verdict);
    expect(text(one(verdict, "word"))).toBe(r.verdict === "pass" ? "PASS" : "FAIL");
    const reasons = text(one(verdict, "reasons"));
    for (const l of r.judgement!.reasons) expect(reasons).toContain(l.trim());
    const eo = text(one(doc, "eo"));
    for (const l of [...r.judgement!.expected, ...r.judgement!.observed]) expect(eo).toContain(l);
    expect(text(byTag(doc, "title")[0]!)).toBe(`${r.verdict === "pass" ? "PASS" : "FAIL"} ${r.scenario}`);

    // The run's particulars.
    const meta = text(byClass(doc, "meta")[0]!);
    for (const s of [r.scenario, r.kind, r.image!.name, r.accel!.accel]) expect(meta).toContain(s);
    if (r.forkedFrom) expect(meta).toContain(`forked from${r.forkedFrom.scenario}'s checkpoint before step ${r.forkedFrom.beforeStep.index}`);
    else expect(meta).not.toContain("forked from");

    // One timeline element per step, in order, classed by status, replayed ones marked.
    const steps = byClass(doc, "tl-step");
    expect(steps).toHaveLength(r.steps.length);
    steps.forEach((el, i) => {
      const st = r.steps[i]!;
      expect(classes(el)).toContain(st.status);
      expect(el.attrs["data-status"]).toBe(st.status);
      expect(classes(el).includes("replayed")).toBe(!!st.replayed);
      expect(text(one(el, "tl-label"))).toContain(st.name);
      const bar = one(el, "tl-bar");
      const left = Number(/left:([\d.]+)%/.exec(bar.attrs.style!)![1]);
      const width = Number(/width:([\d.]+)%/.exec(bar.attrs.style!)![1]);
      expect(left).toBeGreaterThanOrEqual(0);
      expect(left + width).toBeLessThanOrEqual(100.01);
      expect(left).toBeCloseTo((st.startedAtMs / Math.max(r.durationMs, ...r.steps.map((s) => s.startedAtMs + s.durationMs))) * 100, 1);
      if (st.status === "failed") expect(text(one(el, "failure"))).toBe(stepFailureText(st));
      for (const l of st.log) expect(text(el)).toContain(l);
    });
    if (r.steps.some((s) => s.replayed)) expect(html).toContain("replayed from the run this one forked from");

    // One row per boot: machine, reason, via, outcome, detail, the new-boot proof, the evidence.
    const boots = byClass(doc, "boot");
    expect(boots).toHaveLength(r.boots.length);
    boots.forEach((row, i) => {
      const b = r.boots[i]!;
      expect(row.attrs["data-outcome"]).toBe(b.outcome);
      const cells = byTag(row, "td").map(text);
      expect(cells.slice(1, 6)).toEqual([b.machine, b.reason, b.via, b.outcome, b.detail ?? ""]);
      if (b.newBoot) expect(cells[7]).toContain(b.newBoot.why);
      // A boot to SSH can end before the console shows its login prompt: no evidence lines, no list.
      if (b.evidence.length) expect(byTag(one(row, "evidence"), "li").map(text)).toEqual(b.evidence);
      else expect(byClass(row, "evidence")).toHaveLength(0);
    });

    if (r.probe) expect(text(one(doc, "probe"))).toContain(`${r.probe.fault} before step ${r.probe.at}`);
    if (r.faults?.length) expect(byTag(one(doc, "faults"), "tr")).toHaveLength(r.faults.length + 1);
    if (Object.keys(r.facts).length) expect(html).toContain(htmlEscape(JSON.stringify(r.facts, null, 2)));
    // Self-contained: no external resource of any kind.
    expect(html).not.toMatch(/\b(?:src|href)="(?:https?:)?\/\//);
    expect(byTag(doc, "link")).toHaveLength(0);
    expect(byTag(doc, "script").every((s) => s.attrs.src === undefined)).toBe(true);
  });
});

describe("evidence lines in the console", () => {
  it("emergency mode: each evidence line of the boot links to its line in the console, which is highlighted", async () => {
    const { report, log } = await withConsole("stale-fstab", 1, "emergency-mode-missing-fstab-uuid.log");
    const doc = parse(renderRunHtml(report, [{ name: "vm.console.log", text: log }]));
    const boot = byId(doc, "boot-2");
    const links = byClass(boot, "ev-link");
    expect(links.map(text)).toEqual(report.boots[1]!.evidence);
    const raw = log.split("\n");
    for (const a of links) {
      const line = linkTarget(doc, a);
      expect(classes(line)).toContain("line");
      expect(classes(line)).toContain("ev");
      expect(lineText(line)).toBe(text(a));
      // The number shown is the line's number in the file.
      const n = Number(text(one(line, "ln")));
      expect(consoleLines(raw[n - 1]!)).toContain(text(a));
      // And the highlighted line links back to its boot.
      expect(byClass(line, "back").map((b) => b.attrs.href)).toEqual(["#boot-2"]);
    }
    // Exactly the evidence lines are highlighted.
    const console = byId(doc, "console-0");
    expect(byClass(console, "ev").map(lineText).sort()).toEqual([...report.boots[1]!.evidence].sort());
    // The console is shown whole, one numbered row per line of the file, without escape sequences or \r.
    const lines = byClass(console, "line");
    expect(lines).toHaveLength(raw.at(-1) === "" ? raw.length - 1 : raw.length);
    expect(lines.map(lineText).join("\n")).not.toMatch(/[\u001b\r]/);
    expect(lines.map(lineText)).toContain("SeaBIOS (version 1.16.2-debian-1.16.2-1)");
    // The machine that did not come up has its console open.
    expect(console.attrs.open).toBe("open");
    // Lines the lab wrote itself are not console lines: shown, not linked.
    const resume = byId(doc, "boot-1");
    expect(byClass(resume, "ev-link")).toHaveLength(0);
    expect(byClass(resume, "ev-missing").map(text)).toEqual(["sshd answered after resuming the saved state"]);
  });

  it.each([
    ["power-cut", 1, "initramfs-shell-root-uuid-gone.log"],
    ["missing-initrd", 1, "kernel-panic-no-initrd.log"],
    ["mbr-446-pitfall", 1, "no-bootable-device-blank-disk.log"],
  ] as const)("%s: every evidence line of boot %i found and highlighted in %s", async (run, i, file) => {
    const { report, log } = await withConsole(run, i, file);
    const doc = parse(renderRunHtml(report, [{ name: "vm.console.log", text: log }]));
    const links = byClass(byId(doc, `boot-${i + 1}`), "ev-link");
    expect(links.length).toBeGreaterThan(0);
    // The classifier may add a line of its own; every line from the console is linked.
    expect(links.length + byClass(byId(doc, `boot-${i + 1}`), "ev-missing").length).toBe(report.boots[i]!.evidence.length);
    for (const a of links) {
      const line = linkTarget(doc, a);
      expect(classes(line)).toContain("ev");
      expect(lineText(line)).toContain(text(a));
    }
  });

  it("a line printed by two boots is linked in the boot's own part of the console", async () => {
    const once = await readFile(join(CONSOLES, "login-prompt-debian12.log"), "utf8");
    // The first boot's last line ends before the next boot's firmware banner, on a line of its own.
    const log = `${once}\r\n${once}`;
    const first = classifyBoot(once);
    expect(first.evidence.length).toBeGreaterThan(0);
    const report = await runFixture("mbr-boot-restore");
    const end = Buffer.byteLength(`${once}\r\n`);
    report.boots = [
      { ...report.boots[1]!, reason: "start", evidence: first.evidence, log: { file: "/elsewhere/vm.console.log", from: 0, to: end } },
      { ...report.boots[1]!, reason: "reboot", evidence: first.evidence, log: { file: "/elsewhere/vm.console.log", from: end, to: 2 * end } },
    ];
    const doc = parse(renderRunHtml(report, [{ name: "vm.console.log", text: log }]));
    const firstLines = `${once}\r\n`.split("\n").length - 1;
    const numbers = (boot: string) => byClass(byId(doc, boot), "ev-link").map((a) => Number(text(one(linkTarget(doc, a), "ln"))));
    expect(numbers("boot-1").every((n) => n <= firstLines)).toBe(true);
    expect(numbers("boot-2").every((n) => n > firstLines)).toBe(true);
    expect(numbers("boot-2")).toEqual(numbers("boot-1").map((n) => n + firstLines));
  });

  it("each machine's boots link into that machine's console", async () => {
    const report = await runFixture("missing-initrd");
    const vm = await readFile(join(CONSOLES, "kernel-panic-no-initrd.log"), "utf8");
    const rescueLog = "Debian GNU/Linux 12 vmlab-rescue ttyS0\r\n\r\nvmlab-rescue login: ";
    report.boots[1]!.evidence = classifyBoot(vm).evidence;
    const doc = parse(
      renderRunHtml(report, [
        { name: "vm.console.log", text: vm },
        { name: "rescue.console.log", text: rescueLog },
      ]),
    );
    const targets = (i: number) => byClass(byId(doc, `boot-${i}`), "ev-link").map((a) => a.attrs.href!);
    expect(targets(2).length).toBeGreaterThan(0);
    expect(targets(2).every((h) => h.startsWith("#con0-"))).toBe(true);
    expect(targets(3)).toEqual(["#con1-L1", "#con1-L3"]);
    const consoles = byClass(doc, "console");
    expect(consoles.map((c) => c.attrs["data-name"])).toEqual(["vm.console.log", "rescue.console.log"]);
    // The machine with a boot that failed is open; the rescue system's console, which came up, is closed.
    expect(consoles.map((c) => c.attrs.open)).toEqual(["open", undefined]);
  });
});

describe("hostile text", () => {
  const evil = `<script>alert(1)</script> "double" 'single' & <b>bold</b>`;

  it("from the report and the console is shown as text, never as markup", async () => {
    const r = await runFixture("root-to-lvm");
    r.scenario = `x${evil}`;
    r.steps[2] = { ...r.steps[2]!, name: evil, status: "failed", error: evil, failure: { command: `echo '${evil}'`, exitCode: 1, stderr: evil }, log: [evil] };
    r.judgement!.reasons = [evil];
    r.facts = { evil };
    r.boots[1]!.evidence = [evil];
    r.boots[1]!.detail = evil;
    r.boots[1]!.log = { file: "/x/vm.console.log", from: 0, to: 1e6 };
    const consoleText = `SeaBIOS\r\n\u001b[0;1;31m${evil}\u001b[0m\r\nvmlab login: \r\n`;
    const html = renderRunHtml(r, [{ name: `vm.console.log`, text: consoleText }]);
    expect(html).not.toContain("<script>alert");
    expect(html).not.toContain("<b>bold");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt; &quot;double&quot; &#39;single&#39; &amp; &lt;b&gt;bold&lt;/b&gt;");
    const doc = parse(html);
    // Only the page's own script, no element from the text.
    expect(byTag(doc, "script")).toHaveLength(1);
    expect(byTag(doc, "b")).toHaveLength(0);
    // The text reads back exactly as it was.
    expect(text(one(doc, "reasons"))).toBe(evil);
    const step = byId(doc, "step-3");
    expect(text(one(step, "tl-label"))).toContain(evil);
    expect(one(step, "tl-bar").attrs.title).toContain(evil);
    expect(text(one(step, "failure"))).toBe(stepFailureText(r.steps[2]!));
    // The evidence line matched its console line through the escape sequences and is linked.
    const a = one(byId(doc, "boot-2"), "ev-link");
    expect(text(a)).toBe(evil);
    expect(lineText(linkTarget(doc, a))).toBe(evil);
    expect(text(byTag(doc, "title")[0]!)).toBe(`PASS x${evil}`);
  });
});

// ---------------------------------------------------------------- sweep and index

async function sweepFromFixtures(): Promise<SweepLike> {
  const rows = await Promise.all(
    ["sweep-root-to-lvm-power-cut-at-3", "sweep-root-to-lvm-power-cut-at-9"].map(async (n) => {
      const r = await runFixture(n);
      return { ...r.probe!, verdict: r.verdict, report: join(r.runDir, "report.json"), forked: true };
    }),
  );
  const d = dirname(dirname(rows[0]!.report));
  return { scenario: "root-to-lvm", fault: "power-cut", rows, wallMs: 400_000, dir: d, recording: { report: join(d, "root-to-lvm-20261130T044738-000000", "report.json"), verdict: "pass", steps: 9 } };
}

describe("sweep.html", () => {
  it("one row per boundary, a column per fault, cells coloured by outcome with a legend, linked to each run's page", async () => {
    const s = await sweepFromFixtures();
    const doc = parse(renderSweepHtml(s));
    const table = one(doc, "sweep");
    expect(byTag(byTag(table, "thead")[0]!, "th").map(text)).toEqual(["step", "fault goes in before", "power-cut"]);
    const rows = byTag(byTag(table, "tbody")[0]!, "tr");
    expect(rows.map((r) => r.attrs.id)).toEqual(["at-3", "at-9"]);
    const cells = rows.map((r) => one(r, "cell"));
    expect(cells.map((c) => c.attrs["data-category"])).toEqual(["old-root", "new-root"]);
    expect(text(cells[0]!)).toContain("boots");
    expect(text(cells[0]!)).toContain("old root /dev/sda2");
    expect(text(cells[0]!)).toContain("data intact");
    expect(text(cells[1]!)).toContain("new root /dev/mapper/sys-root");
    // Relative links: the sweep directory may be moved or downloaded whole.
    expect(byTag(cells[0]!, "a").map((a) => a.attrs.href)).toEqual([`${basename(dirname(s.rows[0]!.report!))}/report.html`]);
    expect(text(rows[0]!)).toContain("dd /dev/sda2 to /dev/sys/root, fsck, resize2fs");
    const legend = one(doc, "legend");
    for (const c of cells) expect(byClass(legend, `cat-${c.attrs["data-category"]}`)).toHaveLength(1);
  });

  it("a pulled-disk sweep over two disks: a column per disk, from the recorded UEFI RAID1 sweep", () => {
    const s = JSON.parse(readFileSync(join(import.meta.dirname, "../fixtures/sweeps/root-to-mdraid1-uefi-pulled-disk-sda-sdb.json"), "utf8")) as SweepLike;
    const doc = parse(renderSweepHtml(s));
    expect(byTag(byTag(doc, "thead")[0]!, "th").map(text)).toEqual(["step", "fault goes in before", "pulled-disk sda", "pulled-disk sdb"]);
    const rows = byTag(byTag(doc, "tbody")[0]!, "tr");
    expect(rows).toHaveLength(14);
    const cat = (at: number, col: number) => byTag(byId(doc, `at-${at}`), "td")[2 + col]!.attrs["data-category"];
    // Until sda's partitions join the mirrors, the machine lives on sda: without it nothing boots, without sdb the old root does.
    for (let at = 1; at <= 12; at++) expect([at, cat(at, 0), cat(at, 1)]).toEqual([at, "no-boot", "old-root"]);
    expect([cat(13, 0), cat(13, 1)]).toEqual(["no-boot", "no-boot"]);
    expect([cat(14, 0), cat(14, 1)]).toEqual(["new-root", "new-root"]);
  });

  it("several faults: a column each, a blank where a fault was not injected, and the failures' categories", async () => {
    const s = await sweepFromFixtures();
    const pulled = await runFixture("pulled-disk");
    const cut = await runFixture("power-cut");
    const other: SweepLike = { scenario: "root-to-lvm", fault: "pulled-disk", rows: [{ ...pulled.probe!, verdict: "pass", report: "" }], wallMs: 1, dir: "/x" };
    const lost = { ...s.rows[1]!, at: 10, before: "grub-install and update-grub", data: { state: "lost" as const, summary: "missing: small/a\nmissing: small/b" } };
    const broken = { ...s.rows[1]!, at: 11, before: "reboot", verdict: "fail" as const, error: "QEMU did not start" };
    const failing = { ...cut.probe!, verdict: "pass" as const, at: 12, before: "after", rescue: { boot: { outcome: "ssh" }, root: { which: "new" as const }, data: { state: "intact" as const } } };
    const doc = parse(renderSweepHtml([{ ...s, rows: [...s.rows, lost, broken, failing] }, other]));
    expect(byTag(byTag(doc, "thead")[0]!, "th").map(text)).toEqual(["step", "fault goes in before", "power-cut", "pulled-disk"]);
    const rows = byTag(byTag(doc, "tbody")[0]!, "tr");
    expect(rows.map((r) => r.attrs.id)).toEqual(["at-2", "at-3", "at-9", "at-10", "at-11", "at-12"]);
    const cat = (at: number, col: number) => byTag(byId(doc, `at-${at}`), "td")[2 + col]!.attrs["data-category"];
    expect([cat(2, 0), cat(2, 1)]).toEqual([undefined, "no-boot"]);
    expect([cat(3, 0), cat(9, 0), cat(10, 0), cat(11, 0), cat(12, 0)]).toEqual(["old-root", "new-root", "data-lost", "lab-error", "rescued"]);
    expect(text(byTag(byId(doc, "at-10"), "td")[2]!)).toContain("data LOST: missing: small/a");
    expect(text(byTag(byId(doc, "at-11"), "td")[2]!)).toContain("lab error: QEMU did not start");
    // A row whose report is not known has no link.
    expect(byTag(byTag(byId(doc, "at-2"), "td")[3]!, "a")).toHaveLength(0);
  });
});

describe("index.html", () => {
  it("one row per run, failures first, each linked to its page", () => {
    const doc = parse(
      renderIndexHtml([
        { scenario: "alpha", verdict: "pass", durationMs: 42_000, href: "../shard-1/alpha-1/report.html" },
        { scenario: "beta <&>", verdict: "fail", durationMs: 17_000, failedStep: "pivot_root", error: "pivot_root: Invalid argument", href: "failures/beta-1/report.html" },
        { scenario: "gamma", verdict: "pass", durationMs: 3_000 },
      ]),
    );
    const rows = byClass(doc, "run");
    expect(rows.map((r) => classes(r)[1])).toEqual(["fail", "pass", "pass"]);
    expect(rows.map((r) => text(byTag(r, "td")[1]!))).toEqual(["beta <&>", "alpha", "gamma"]);
    expect(rows.map((r) => byTag(r, "a")[0]?.attrs.href)).toEqual(["failures/beta-1/report.html", "../shard-1/alpha-1/report.html", undefined]);
    expect(text(rows[0]!)).toContain("failed step: pivot_root");
    expect(text(one(doc, "verdict"))).toContain("3 runs: 2 passed, 1 failed");
  });
});

// ---------------------------------------------------------------- vmlab report html

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("vmlab report html", () => {
  it("renders report.html for run directories and sweep.html for sweep directories", async () => {
    const { report, log } = await withConsole("stale-fstab", 1, "emergency-mode-missing-fstab-uuid.log");
    const run = join(tmp.path, "stale-fstab-1");
    await mkdir(run);
    await writeFile(join(run, "report.json"), JSON.stringify(report));
    // The recorded console path is of the machine that ran it; the log beside report.json is the one read.
    await writeFile(join(run, "vm.console.log"), log);

    const s = await sweepFromFixtures();
    const sweepDir = join(tmp.path, "sweep-root-to-lvm-power-cut-1");
    await mkdir(sweepDir);
    await writeFile(join(sweepDir, "sweep.json"), JSON.stringify(s));
    const rowRun = join(sweepDir, basename(dirname(s.rows[0]!.report!)));
    await mkdir(rowRun);
    await writeFile(join(rowRun, "report.json"), await readFile(join(RUNS, "sweep-root-to-lvm-power-cut-at-3.json"), "utf8"));

    const r = await vmlab(["report", "html", run, sweepDir]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.split("\n")).toEqual([join(run, "report.html"), join(rowRun, "report.html"), join(sweepDir, "sweep.html")]);
    const page = parse(await readFile(join(run, "report.html"), "utf8"));
    expect(byClass(byId(page, "boot-2"), "ev-link")).toHaveLength(report.boots[1]!.evidence.length);
    expect(byClass(page, "ev").length).toBeGreaterThan(0);
    const sweepPage = parse(await readFile(join(sweepDir, "sweep.html"), "utf8"));
    // The row's link leads to the page just written.
    const href = byTag(byTag(sweepPage, "tbody")[0]!, "a")[0]!.attrs.href!;
    expect(existsSync(join(sweepDir, href))).toBe(true);
  });

  it("bad input: no such directory, no report, not a vmlab report: exit 2, a clear message, nothing written", async () => {
    const good = join(tmp.path, "good");
    await mkdir(good);
    await writeFile(join(good, "report.json"), await readFile(join(RUNS, "smoke.json"), "utf8"));
    const empty = join(tmp.path, "empty");
    await mkdir(empty);
    const junk = join(tmp.path, "junk");
    await mkdir(junk);
    await writeFile(join(junk, "report.json"), JSON.stringify({ hello: 1 }));
    const broken = join(tmp.path, "broken");
    await mkdir(broken);
    await writeFile(join(broken, "report.json"), "{ cut off");
    const badSweep = join(tmp.path, "bad-sweep");
    await mkdir(badSweep);
    await writeFile(join(badSweep, "sweep.json"), JSON.stringify({ scenario: "x" }));

    const cases: [string, string][] = [
      [join(tmp.path, "no-such-dir"), "is not a directory"],
      [empty, "holds no report.json and no sweep.json"],
      [junk, "is not a vmlab report"],
      [broken, "is not valid JSON"],
      [badSweep, "is not a vmlab sweep"],
    ];
    for (const [bad, says] of cases) {
      // The good directory first: nothing is written before every input is checked.
      const r = await vmlab(["report", "html", good, bad]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toContain(says);
      expect(r.stdout).toBe("");
    }
    expect(existsSync(join(good, "report.html"))).toBe(false);
    expect((await vmlab(["report", "html"])).exitCode).toBe(2);
  });
});
