/**
 * The HTML reports: one self-contained page per run (report.html), a picture
 * of a fault sweep (sweep.html) and an index of merged runs (index.html).
 * Pure: data in, a string out. Each page is one file with its CSS inline and
 * a few lines of inline JS, no external resource, so it opens from file://
 * and from a CI artifact alike.
 *
 * The markup is also well-formed XML (void elements closed, attributes
 * quoted, no named entities, no `<` or `&` in the style and script), so the
 * unit tests can parse it with a strict parser. Every text that comes from a
 * report or a console goes through htmlEscape.
 */
import { basename, dirname, relative, isAbsolute } from "node:path";
import { consoleLines } from "../boot/classify.ts";
import { reportHead, stepFailureText } from "../scenario/report.ts";
import type { ProbeResult, ScenarioReport, StepRecord } from "../scenario/types.ts";

/** Escape text for HTML element content and quoted attribute values; control characters other than tab and newline are dropped. */
export function htmlEscape(s: unknown): string {
  return String(s ?? "")
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\ufffe\uffff]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

const esc = htmlEscape;

/** A class name from free text: lower case letters, digits and dashes. */
const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "none";

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "?";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${(s - m * 60).toFixed(0).padStart(2, "0")} s`;
}

/** Boot outcomes that mean the machine came up. */
const GOOD_OUTCOMES = new Set(["ssh", "login-prompt"]);

const CSS = `
:root { --pass: #1a7f37; --fail: #cf222e; --skip: #8c959f; --warn: #bf8700; --muted: #57606a; --bg: #f6f8fa; --line: #d0d7de; --ev: #fff3b0; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 64px; }
h1 { font-size: 20px; margin: 0; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
pre, code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: var(--bg); padding: 8px 10px; overflow-x: auto; white-space: pre-wrap; word-break: break-word; margin: 4px 0; border-radius: 4px; }
a { color: #0969da; }
.muted { color: var(--muted); }
.verdict { display: flex; gap: 20px; align-items: center; padding: 16px 20px; border-radius: 8px; color: #fff; margin: 8px 0 12px; }
.verdict.pass { background: var(--pass); }
.verdict.fail { background: var(--fail); }
.verdict .word { font-size: 44px; font-weight: 800; letter-spacing: 2px; }
.verdict ul { margin: 0; padding-left: 18px; font-size: 15px; }
.verdict .reason-more { list-style: none; opacity: .9; }
.eo { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.eo > div { background: var(--bg); border-radius: 6px; padding: 8px 12px; }
.eo h3 { font-size: 13px; margin: 0 0 4px; text-transform: uppercase; color: var(--muted); }
.eo ul { margin: 0; padding-left: 18px; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
table.meta th { width: 160px; }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600; color: #fff; background: var(--muted); }
.badge.good, .badge.passed { background: var(--pass); }
.badge.bad, .badge.failed { background: var(--fail); }
.badge.skipped { background: var(--skip); }
.badge.replayed { background: #8250df; }
.timeline { list-style: none; padding: 0; margin: 0; }
.tl-step { display: grid; grid-template-columns: minmax(260px, 38%) 1fr; gap: 8px; border-bottom: 1px solid #eaeef2; padding: 3px 0; }
.tl-label { overflow-wrap: anywhere; }
.tl-label .num { display: inline-block; min-width: 2em; color: var(--muted); }
.tl-label .dur { color: var(--muted); font-size: 12px; margin-left: 4px; }
.tl-track { position: relative; height: 18px; background: var(--bg); border-radius: 3px; margin-top: 2px; }
.tl-bar { position: absolute; top: 2px; bottom: 2px; min-width: 3px; border-radius: 3px; background: var(--pass); }
.tl-step.failed .tl-bar { background: var(--fail); }
.tl-step.skipped .tl-bar { background: var(--skip); }
.tl-step.replayed .tl-bar { background: repeating-linear-gradient(45deg, #8250df, #8250df 4px, #c297ff 4px, #c297ff 8px); }
.tl-step.failed .tl-label { color: var(--fail); font-weight: 600; }
.tl-detail { grid-column: 1 / -1; margin-left: 2em; }
.tl-detail summary { cursor: pointer; color: var(--muted); font-size: 12px; }
.tl-fault { position: absolute; top: -2px; bottom: -2px; width: 3px; background: var(--warn); }
.tl-axis { display: grid; grid-template-columns: minmax(260px, 38%) 1fr; gap: 8px; font-size: 12px; color: var(--muted); }
.tl-axis .tl-track { background: none; }
pre.failure { background: #ffebe9; border-left: 3px solid var(--fail); }
table.boots td:last-child { width: 40%; }
ol.evidence { margin: 0; padding-left: 20px; }
ol.evidence li { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; overflow-wrap: anywhere; }
.ev-missing { color: var(--muted); }
details.console { margin: 8px 0; border: 1px solid var(--line); border-radius: 6px; }
details.console > summary { padding: 6px 10px; background: var(--bg); cursor: pointer; font-weight: 600; }
.log { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; max-height: 75vh; overflow: auto; }
.line { display: flex; white-space: pre-wrap; overflow-wrap: anywhere; }
.line .ln { flex: 0 0 5em; text-align: right; padding-right: 8px; color: #8c959f; text-decoration: none; user-select: none; }
.line .tx { flex: 1; }
.line.ev { background: var(--ev); }
.line.ev .back { margin-left: 8px; font-size: 11px; }
.line:target { outline: 2px solid var(--warn); background: #ffe58f; }
.legend { display: flex; gap: 14px; flex-wrap: wrap; margin: 8px 0; }
.legend span::before { content: ""; display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; border-radius: 2px; background: var(--c); }
.cat-old-root { --c: #2da44e; }
.cat-new-root { --c: #0969da; }
.cat-data-lost { --c: #fb8500; }
.cat-no-boot { --c: #cf222e; }
.cat-rescued { --c: #8250df; }
.cat-lab-error { --c: #6e7781; }
.cat-unknown { --c: #afb8c1; }
td.cell { background: var(--c); color: #fff; }
td.cell a { color: #fff; }
td.cell .o { font-weight: 700; }
tr.fail td.v { color: var(--fail); font-weight: 700; }
tr.pass td.v { color: var(--pass); font-weight: 700; }
`;

/** Open the <details> holding the target of a fragment link, then bring it into view. No `<` or `&` here: the page stays well-formed XML. */
const JS = `
function vmlabReveal() {
  var id = decodeURIComponent(location.hash.slice(1));
  if (!id) return;
  var el = document.getElementById(id);
  if (!el) return;
  for (var p = el.parentElement; p; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
  el.scrollIntoView({ block: "center" });
}
window.addEventListener("hashchange", vmlabReveal);
window.addEventListener("DOMContentLoaded", vmlabReveal);
`;

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"/>
<title>${esc(title)}</title>
<style>${CSS}</style>
<script>${JS}</script>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

// ---------------------------------------------------------------- console

interface ConsoleView {
  name: string;
  /** The text shown for each line of the file (escape sequences and \r removed). */
  shown: string[];
  /** Each line's pieces as the boot classifier reads them (consoleLines): what evidence lines are. */
  pieces: string[][];
  /** Byte offset of each line's start in the file. */
  starts: number[];
  /** Piece text → the lines holding it, in order. */
  index: Map<string, number[]>;
  /** Line index → the boots whose evidence it is. */
  marks: Map<number, number[]>;
}

function consoleView(name: string, text: string): ConsoleView {
  const raw = text.split("\n");
  if (raw.length > 1 && raw.at(-1) === "") raw.pop();
  const shown: string[] = [];
  const pieces: string[][] = [];
  const starts: number[] = [];
  const index = new Map<string, number[]>();
  let offset = 0;
  raw.forEach((line, i) => {
    starts.push(offset);
    offset += Buffer.byteLength(line, "utf8") + 1;
    const p = consoleLines(line);
    pieces.push(p);
    shown.push(p.join("  "));
    for (const piece of p) {
      const at = index.get(piece);
      if (at) at.push(i);
      else index.set(piece, [i]);
    }
  });
  return { name, shown, pieces, starts, index, marks: new Map() };
}

const lineId = (c: number, i: number) => `con${c}-L${i + 1}`;

/** The console a boot was read from: by the file name in the boot's log range, else by the machine's name. */
function consoleOf(b: ScenarioReport["boots"][number], views: ConsoleView[]): number {
  const file = b.log?.file ? basename(b.log.file) : undefined;
  const byFile = file ? views.findIndex((v) => basename(v.name) === file) : -1;
  if (byFile >= 0) return byFile;
  return views.findIndex((v) => basename(v.name).startsWith(`${b.machine}.`));
}

/**
 * Where each boot's evidence lines are in its console: first within the
 * boot's own byte range of the log, else anywhere in it. Lines the lab wrote
 * itself ("sshd answered after resuming the saved state") are in no console.
 */
function locateEvidence(boots: ScenarioReport["boots"], views: ConsoleView[]): { console: number; line: number }[][] {
  return boots.map((b, bi) => {
    const c = consoleOf(b, views);
    const v = views[c];
    return (b.evidence ?? []).map((e) => {
      if (!v) return { console: -1, line: -1 };
      const at = v.index.get(e.trim()) ?? [];
      const from = b.log?.from ?? 0;
      const to = b.log?.to ?? Infinity;
      const inRange = at.find((i) => v.starts[i]! < to && (v.starts[i + 1] ?? Infinity) > from);
      const line = inRange ?? at[0];
      if (line === undefined) return { console: c, line: -1 };
      const marks = v.marks.get(line) ?? [];
      if (!marks.includes(bi)) marks.push(bi);
      v.marks.set(line, marks);
      return { console: c, line };
    });
  });
}

function renderConsole(v: ConsoleView, c: number, open: boolean): string {
  const rows = v.shown.map((text, i) => {
    const id = lineId(c, i);
    const marks = v.marks.get(i);
    const back = marks ? marks.map((b) => `<a class="back" href="#boot-${b + 1}">boot ${b + 1}</a>`).join("") : "";
    return `<div class="line${marks ? " ev" : ""}" id="${id}"><a class="ln" href="#${id}">${i + 1}</a><span class="tx">${esc(text)}</span>${back}</div>`;
  });
  const evidence = v.marks.size;
  return `<details class="console" id="console-${c}" data-name="${esc(v.name)}"${open ? ' open="open"' : ""}>
<summary>${esc(v.name)} <span class="muted">${v.shown.length} lines${evidence ? `, ${evidence} evidence line${evidence === 1 ? "" : "s"} highlighted` : ""}</span></summary>
<div class="log">
${rows.join("\n")}
</div>
</details>`;
}

// ---------------------------------------------------------------- run report

function list(items: string[], cls = ""): string {
  return items.length ? `<ul${cls ? ` class="${cls}"` : ""}>${items.map((l) => `<li>${esc(l)}</li>`).join("")}</ul>` : `<p class="muted">(none)</p>`;
}

function verdictSection(r: ScenarioReport): string {
  const j = r.judgement;
  // Without a judgement (an old report) the head is what the terminal shows: the boots.
  const reasons = j ? j.reasons : reportHead(r);
  const reasonItems = reasons.map((l) => (l.startsWith("  ") ? `<li class="reason-more">${esc(l.trim())}</li>` : `<li>${esc(l)}</li>`)).join("");
  let out = `<section class="verdict ${r.verdict === "pass" ? "pass" : "fail"}" id="verdict">
<div class="word">${r.verdict === "pass" ? "PASS" : "FAIL"}</div>
<div><h1>${esc(r.scenario)}</h1><ul class="reasons">${reasonItems}</ul></div>
</section>`;
  if (j) {
    out += `<div class="eo"><div><h3>expected</h3>${list(j.expected)}</div><div><h3>observed</h3>${list(j.observed)}</div></div>`;
  }
  if (r.error) {
    const e = r.error;
    out += `<h2>Error</h2><pre class="failure">${esc(e.message)}</pre>`;
    if (e.step) out += `<p>in step: ${esc(e.step)}</p>`;
    if (e.where) out += `<p>where: <code>${esc(e.where)}</code></p>`;
    if (e.output) out += `<p>output:</p><pre>${esc(e.output)}</pre>`;
    if (e.hint) out += `<p>try: ${esc(e.hint)}</p>`;
    if (e.consoleTail) out += `<p>console tail:</p><pre>${esc(e.consoleTail)}</pre>`;
  }
  return out;
}

function metaSection(r: ScenarioReport): string {
  const rows: [string, string][] = [
    ["scenario", `${esc(r.scenario)}<div class="muted">${esc(r.description)}</div>`],
    ["kind", esc(r.kind)],
    ["image", r.image ? `${esc(r.image.name)} <span class="muted mono">${esc(r.image.hash)}</span>${r.image.firmware ? ` · ${r.image.firmware === "uefi" ? "UEFI (OVMF)" : "BIOS (SeaBIOS)"}` : ""}` : "-"],
    ["accelerator", r.accel ? `${esc(r.accel.accel)} <div class="muted">${esc(r.accel.reason)}</div>` : "-"],
    ["started", esc(r.startedAt)],
    ["duration", esc(formatDuration(r.durationMs))],
    ["run directory", `<code>${esc(r.runDir)}</code>`],
  ];
  const f = r.forkedFrom;
  if (f) {
    rows.push([
      "forked from",
      `${esc(f.scenario)}'s checkpoint before step ${esc(f.beforeStep.index)} (${esc(f.beforeStep.name)}): ${esc(f.replayedCalls)} calls replayed, paused ${esc(formatDuration(f.pausedMs))}<div class="muted mono">${esc(f.runDir)}</div>`,
    ]);
  }
  if (r.stoppedBefore) rows.push(["stopped before", `step ${esc(r.stoppedBefore.index)} (${esc(r.stoppedBefore.step)})${r.stoppedBefore.forForks ? " for the forks" : ""}`]);
  if (r.kept?.length) rows.push(["kept machines", r.kept.map((k) => `<code>${esc(k.id)}</code>`).join(", ")]);
  return `<h2>Run</h2><table class="meta">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join("")}</table>`;
}

function timelineSection(r: ScenarioReport): string {
  const ends = r.steps.map((s) => s.startedAtMs + s.durationMs);
  const total = Math.max(1, r.durationMs, ...ends, ...(r.faults ?? []).map((f) => f.atMs));
  const pct = (ms: number) => `${Math.min(100, Math.max(0, (ms / total) * 100)).toFixed(3)}%`;
  const faults = (r.faults ?? [])
    .map((f) => `<div class="tl-fault" style="left:${pct(f.atMs)}" title="${esc(`${f.fault} at ${formatDuration(f.atMs)}${f.step ? `, in or before: ${f.step}` : ""}`)}"></div>`)
    .join("");
  const axis = `<div class="tl-axis"><div>step</div><div class="tl-track"><span>0</span><span style="position:absolute;right:0">${esc(formatDuration(total))}</span>${faults}</div></div>`;
  const items = r.steps.map((s: StepRecord, i) => {
    const cls = ["tl-step", slug(s.status), s.replayed ? "replayed" : ""].filter(Boolean).join(" ");
    const title = `${s.name}: ${s.status}${s.replayed ? " (replayed)" : ""}, ${formatDuration(s.durationMs)} from ${formatDuration(s.startedAtMs)}`;
    const detail: string[] = [];
    if (s.status === "failed") detail.push(`<pre class="failure">${esc(stepFailureText(s))}</pre>`);
    if (s.log.length) {
      detail.push(`<details${s.status === "failed" ? ' open="open"' : ""}><summary>${s.log.length} log line${s.log.length === 1 ? "" : "s"}</summary><pre>${esc(s.log.join("\n"))}</pre></details>`);
    }
    return `<li class="${cls}" id="step-${i + 1}" data-status="${esc(s.status)}">
<div class="tl-label"><span class="num">${i + 1}</span>${esc(s.name)}<span class="dur">${esc(formatDuration(s.durationMs))}</span>${s.replayed ? ' <span class="badge replayed">replayed</span>' : ""}${s.status !== "passed" ? ` <span class="badge ${slug(s.status)}">${esc(s.status)}</span>` : ""}</div>
<div class="tl-track"><div class="tl-bar" style="left:${pct(s.startedAtMs)};width:${pct(s.durationMs)}" title="${esc(title)}"></div></div>${detail.length ? `\n<div class="tl-detail">${detail.join("")}</div>` : ""}
</li>`;
  });
  const replayed = r.steps.filter((s) => s.replayed).length;
  const note = replayed ? `<p class="muted">${replayed} step${replayed === 1 ? " was" : "s were"} replayed from the run this one forked from (striped).</p>` : "";
  return `<h2>Steps</h2>${note}${axis}<ol class="timeline">${items.join("\n")}</ol>`;
}

function bootsSection(r: ScenarioReport, where: { console: number; line: number }[][]): string {
  if (!r.boots.length) return `<h2>Boots</h2><p class="muted">(no boot recorded)</p>`;
  const rows = r.boots.map((b, i) => {
    const good = GOOD_OUTCOMES.has(b.outcome);
    const ev = (b.evidence ?? []).map((e, k) => {
      const at = where[i]?.[k];
      return at && at.line >= 0
        ? `<li><a class="ev-link" href="#${lineId(at.console, at.line)}">${esc(e)}</a></li>`
        : `<li class="ev-missing" title="not a console line (written by the lab) or not in the console shown here">${esc(e)}</li>`;
    });
    const nb = b.newBoot;
    const proof = nb ? `<span class="badge ${nb.proven ? "good" : "bad"}">${nb.proven ? "proven" : "not proven"}</span> ${esc(nb.why)}` : `<span class="muted">-</span>`;
    return `<tr class="boot ${good ? "good" : "bad"}" id="boot-${i + 1}" data-outcome="${esc(b.outcome)}">
<td>${i + 1}</td><td>${esc(b.machine)}</td><td>${esc(b.reason)}</td><td>${esc(b.via)}</td>
<td><span class="badge outcome ${good ? "good" : "bad"}">${esc(b.outcome)}</span></td><td>${esc(b.detail ?? "")}</td><td>${esc(formatDuration(b.durationMs))}</td><td>${proof}</td>
<td>${ev.length ? `<ol class="evidence">${ev.join("")}</ol>` : ""}</td>
</tr>`;
  });
  return `<h2>Boots</h2><table class="boots"><thead><tr><th>#</th><th>machine</th><th>reason</th><th>via</th><th>outcome</th><th>detail</th><th>took</th><th>new boot</th><th>evidence</th></tr></thead><tbody>${rows.join("\n")}</tbody></table>`;
}

const json = (x: unknown) => `<pre>${esc(JSON.stringify(x, null, 2))}</pre>`;

function probeSection(p: ProbeResult): string {
  const rows: [string, string][] = [
    ["fault", `${p.fault} before step ${p.at} (${p.before})`],
    ["procedure", p.procedure],
    ["firmware boot", `${p.boot.outcome}${p.boot.detail ? ` (${p.boot.detail})` : ""}`],
    ["root", p.root.which === "none" ? "none" : `${p.root.which} ${p.root.device ?? ""}`],
    ["data", `${p.data.state}${p.data.summary ? `: ${p.data.summary}` : ""}`],
  ];
  if (p.rescue) rows.push(["rescue", p.rescue.error ? `failed: ${p.rescue.error}` : `${p.rescue.boot.outcome}, root ${p.rescue.root.which} ${p.rescue.root.device ?? ""}, data ${p.rescue.data.state}`]);
  return `<h2>Probe</h2><table class="meta probe">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</table>`;
}

function faultsSection(r: ScenarioReport): string {
  if (!r.faults?.length) return "";
  const rows = r.faults.map(
    (f) => `<tr><td>${esc(f.fault)}</td><td>${esc(formatDuration(f.atMs))}</td><td>${esc(f.step ?? "")}</td><td><code>${esc(f.how)}</code></td><td>${list(f.observed)}${Object.keys(f.details ?? {}).length ? json(f.details) : ""}</td></tr>`,
  );
  return `<h2>Faults</h2><table class="faults"><thead><tr><th>fault</th><th>at</th><th>step</th><th>how</th><th>observed</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

/**
 * The page of one run: the verdict with its reasons, the steps on a
 * timeline, the boots with their evidence linked to the console lines, the
 * facts, faults and probe, and the consoles with those lines highlighted.
 * `consoles` are the run's console logs by file name (vm.console.log, ...).
 */
export function renderRunHtml(report: ScenarioReport, consoles: { name: string; text: string }[]): string {
  const r = report;
  const views = consoles.map((c) => consoleView(c.name, c.text));
  const where = locateEvidence(r.boots ?? [], views);
  // Open the consoles of machines with a boot that did not come up; with none, the first one of a failed run.
  const failing = new Set<number>();
  (r.boots ?? []).forEach((b) => {
    if (!GOOD_OUTCOMES.has(b.outcome)) failing.add(consoleOf(b, views));
  });
  if (failing.size === 0 && r.verdict === "fail") failing.add(0);
  const sections = [
    verdictSection(r),
    metaSection(r),
    timelineSection(r),
    bootsSection(r, where),
    r.final ? `<h2>Final state</h2>${json(r.final)}` : "",
    r.probe ? probeSection(r.probe) : "",
    faultsSection(r),
    `<h2>Facts</h2>${Object.keys(r.facts ?? {}).length ? json(r.facts) : `<p class="muted">(none recorded)</p>`}`,
    r.data ? `<h2>Data set</h2>${json(r.data)}` : "",
    `<h2>Console</h2>${views.length ? views.map((v, c) => renderConsole(v, c, failing.has(c))).join("\n") : `<p class="muted">(no console log found)</p>`}`,
  ];
  return page(`${r.verdict === "pass" ? "PASS" : "FAIL"} ${r.scenario}`, sections.filter(Boolean).join("\n"));
}

// ---------------------------------------------------------------- sweep

/** What sweep.json holds (src/suite/sweep.ts SweepResult), read back from disk. */
export interface SweepLike {
  scenario: string;
  fault: string;
  rows: (ProbeResult & { verdict: "pass" | "fail"; error?: string; report?: string; forked?: boolean; disk?: string })[];
  recording?: { report: string; verdict: "pass" | "fail"; steps: number };
  wallMs: number;
  dir: string;
}

type SweepRow = SweepLike["rows"][number];

export const SWEEP_CATEGORIES = [
  ["old-root", "came back on the old root, data intact"],
  ["new-root", "came back on the new root, data intact"],
  ["data-lost", "came back, data lost"],
  ["rescued", "did not boot; the rescue route brought it back"],
  ["no-boot", "did not boot"],
  ["lab-error", "lab error (no observation)"],
  ["unknown", "booted, root or data unknown"],
] as const;

export function sweepCategory(x: SweepRow): (typeof SWEEP_CATEGORIES)[number][0] {
  if (x.verdict !== "pass") return "lab-error";
  if (x.data.state === "lost") return "data-lost";
  if (!GOOD_OUTCOMES.has(x.boot.outcome)) return x.rescue && !x.rescue.error && GOOD_OUTCOMES.has(x.rescue.boot.outcome) ? "rescued" : "no-boot";
  if (x.data.state === "intact" && x.root.which === "old") return "old-root";
  if (x.data.state === "intact" && x.root.which === "new") return "new-root";
  return "unknown";
}

/** A link from the page in `from` to the report.html beside a run's report.json, when that is known. */
function runLink(from: string, reportJson: string | undefined): string | undefined {
  if (!reportJson) return undefined;
  const dir = dirname(reportJson);
  const rel = isAbsolute(dir) && isAbsolute(from) ? relative(from, dir) : dir;
  return `${(rel || ".").split("\\").join("/")}/report.html`;
}

const bootText = (b: { outcome: string; detail?: string }) => (b.outcome === "ssh" ? "boots" : `${b.outcome}${b.detail ? ` (${b.detail})` : ""}`);

/**
 * The danger map of a sweep: one row per step boundary, one column per
 * fault, each cell coloured by what became of the machine. Takes one
 * sweep.json, or several (of the same scenario, other faults) for a wider map.
 */
export function renderSweepHtml(result: SweepLike | SweepLike[]): string {
  const sweeps = Array.isArray(result) ? result : [result];
  const first = sweeps[0];
  if (!first) throw new Error("renderSweepHtml needs a sweep");
  const cells = new Map<string, { row: SweepRow; dir: string }>();
  const boundaries = new Map<number, string>();
  const faults: string[] = [];
  for (const s of sweeps) {
    for (const row of s.rows) {
      // A pulled-disk sweep over several disks: a column per disk.
      const fault = `${row.fault ?? s.fault}${row.disk && s.rows.some((r) => r.disk !== row.disk) ? ` ${row.disk}` : ""}`;
      if (!faults.includes(fault)) faults.push(fault);
      // Several faults' rows name the step alike; a cut "during" one adds how far in: keep the first name given.
      if (!boundaries.has(row.at)) boundaries.set(row.at, row.before);
      cells.set(`${row.at}\u0000${fault}`, { row, dir: s.dir });
    }
    if (s.rows.length === 0 && !faults.includes(s.fault)) faults.push(s.fault);
  }
  const ats = [...boundaries.keys()].sort((a, b) => a - b);
  const head = `<tr><th>step</th><th>fault goes in before</th>${faults.map((f) => `<th>${esc(f)}</th>`).join("")}</tr>`;
  const body = ats.map((at) => {
    const tds = faults.map((f) => {
      const c = cells.get(`${at}\u0000${f}`);
      if (!c) return `<td class="empty muted">-</td>`;
      const x = c.row;
      const cat = sweepCategory(x);
      const root = x.root.which === "none" ? "no root" : `${x.root.which} root${x.root.device ? ` ${x.root.device}` : ""}`;
      const data = x.data.state === "lost" ? `data LOST${x.data.summary ? `: ${x.data.summary.split("\n")[0]}` : ""}` : `data ${x.data.state}`;
      const lines = [`<span class="o">${esc(bootText(x.boot))}</span>`, esc(root), esc(data)];
      if (x.verdict !== "pass") lines.unshift(`lab error: ${esc(x.error ?? "?")}`);
      else if (x.procedure !== "stopped") lines.push(esc(`procedure ${x.procedure}`));
      if (x.rescue) lines.push(esc(x.rescue.error ? `rescue failed: ${x.rescue.error.split("\n")[0]}` : `rescue: ${bootText(x.rescue.boot)}, ${x.rescue.root.which} root, data ${x.rescue.data.state}`));
      const href = runLink(c.dir, x.report);
      if (href) lines.push(`<a href="${esc(href)}">run report</a>`);
      return `<td class="cell cat-${cat}" data-category="${cat}" title="${esc(SWEEP_CATEGORIES.find(([k]) => k === cat)![1])}">${lines.join("<br/>")}</td>`;
    });
    return `<tr id="at-${at}"><td>${at}</td><td>${esc(boundaries.get(at))}</td>${tds.join("")}</tr>`;
  });
  const legend = `<div class="legend">${SWEEP_CATEGORIES.map(([k, t]) => `<span class="cat-${k}">${esc(t)}</span>`).join("")}</div>`;
  const runs = sweeps.reduce((n, s) => n + s.rows.length, 0);
  const wall = sweeps.reduce((n, s) => n + s.wallMs, 0);
  const rec = sweeps
    .filter((s) => s.recording)
    .map((s) => {
      const href = runLink(s.dir, s.recording!.report);
      return `<li>recording run for ${esc(s.fault)}: ${esc(s.recording!.verdict)}, ${esc(s.recording!.steps)} steps${href ? ` (<a href="${esc(href)}">report</a>)` : ""}</li>`;
    })
    .join("");
  const body_ = `<h1>Sweep: ${esc(first.scenario)}</h1>
<p>${esc(faults.join(", "))}: ${runs} run${runs === 1 ? "" : "s"} in ${esc(formatDuration(wall))} wall time. Each row is the fault injected before that step, then a power cycle through the firmware.</p>
${legend}
<table class="sweep"><thead>${head}</thead><tbody>${body.join("\n")}</tbody></table>
${rec ? `<ul class="muted">${rec}</ul>` : ""}`;
  return page(`sweep ${first.scenario} ${faults.join(", ")}`, body_);
}

// ---------------------------------------------------------------- index

export interface IndexEntry {
  scenario: string;
  verdict: "pass" | "fail";
  durationMs: number;
  startedAt?: string;
  /** Where the run came from (its directory, relative to its input). */
  from?: string;
  failedStep?: string;
  error?: string;
  /** The run's report.html, relative to the index page. */
  href?: string;
}

/** The index of a merged report directory: one row per run, failures first. */
export function renderIndexHtml(entries: IndexEntry[]): string {
  const failed = entries.filter((e) => e.verdict !== "pass").length;
  const ordered = [...entries.filter((e) => e.verdict !== "pass"), ...entries.filter((e) => e.verdict === "pass")];
  const rows = ordered.map((e) => {
    const pass = e.verdict === "pass";
    const name = e.href ? `<a href="${esc(e.href)}">${esc(e.scenario)}</a>` : esc(e.scenario);
    const why = pass ? "" : `${e.failedStep ? `failed step: ${esc(e.failedStep)}` : ""}${e.error ? `<div class="mono">${esc(e.error.split("\n")[0])}</div>` : ""}`;
    return `<tr class="run ${pass ? "pass" : "fail"}"><td class="v">${pass ? "PASS" : "FAIL"}</td><td>${name}</td><td>${esc(formatDuration(e.durationMs))}</td><td class="muted">${esc(e.startedAt ?? "")}</td><td class="muted mono">${esc(e.from ?? "")}</td><td>${why}</td></tr>`;
  });
  const body = `<section class="verdict ${failed ? "fail" : "pass"}"><div class="word">${failed ? "FAIL" : "PASS"}</div><div><h1>${entries.length} run${entries.length === 1 ? "" : "s"}: ${entries.length - failed} passed, ${failed} failed</h1></div></section>
<table class="index"><thead><tr><th>verdict</th><th>scenario</th><th>duration</th><th>started</th><th>from</th><th>failure</th></tr></thead><tbody>${rows.join("\n")}</tbody></table>`;
  return page(`vmlab: ${entries.length - failed} passed, ${failed} failed`, body);
}
