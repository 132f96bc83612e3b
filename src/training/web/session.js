// A training session: the story, two terminals (serial console and SSH, xterm.js over WebSockets),
// and the actions. The session's token comes in the address's fragment (#token=...), which the
// browser never sends to a server; it goes to the server in an Authorization header, and to the
// terminals' WebSockets as ?token=.
import { Terminal } from "/static/xterm/xterm.mjs";
import { FitAddon } from "/static/xterm/addon-fit.mjs";
import { api, h, rememberSession, since } from "/static/common.js";

const id = decodeURIComponent(location.pathname.split("/").pop());
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) sessionStorage.setItem(`vmlab-token-${id}`, fromHash);
const token = fromHash || sessionStorage.getItem(`vmlab-token-${id}`);

const $ = (x) => document.getElementById(x);
let view = null;
let jobRunning = false;
let lastJobKey = "";
let solutionArmed = false;

function showError(msg) {
  $("error").textContent = msg || "";
  $("error").hidden = !msg;
}

/** One terminal pane: an xterm.js terminal and its WebSocket, reconnecting while the session lives. */
class Pane {
  constructor(kind) {
    this.kind = kind;
    this.ws = null;
    this.retry = null;
    this.wanted = true;
    // logLevel off: a guest prints malformed escape sequences (systemd cuts colour codes with "…"), which are its business, not errors of the page.
    this.term = new Terminal({ logLevel: "off", cursorBlink: true, fontSize: 14, scrollback: 5000, fontFamily: "ui-monospace, 'DejaVu Sans Mono', monospace", theme: { background: "#111418" } });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open($(`term-${kind}`));
    this.fit.fit();
    this.term.onData((s) => this.sendBytes(new TextEncoder().encode(s)));
    this.term.onBinary((s) => this.sendBytes(Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff)));
    this.term.onResize(({ cols, rows }) => {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "resize", cols, rows }));
    });
    new ResizeObserver(() => this.fit.fit()).observe($(`term-${kind}`));
    $(`connect-${kind}`).addEventListener("click", () => {
      this.wanted = true;
      this.connect();
    });
  }

  status(text, cls = "") {
    const el = $(`status-${this.kind}`);
    el.textContent = text;
    el.className = `pane-status ${cls}`;
  }

  note(text) {
    this.term.write(`\r\n\x1b[2m[${text}]\x1b[0m\r\n`);
  }

  sendBytes(bytes) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  connect() {
    clearTimeout(this.retry);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    $(`connect-${this.kind}`).hidden = true;
    const q = new URLSearchParams({ token, cols: String(this.term.cols), rows: String(this.term.rows) });
    const ws = new WebSocket(`ws://${location.host}/ws/sessions/${encodeURIComponent(id)}/${this.kind}?${q}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.status("connecting…");
    ws.onopen = () => this.status("connected", "ok");
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        let m = {};
        try {
          m = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (m.type === "status") {
          if (m.connected) {
            this.status(m.text, "ok");
            if (this.kind === "serial") this.note("serial console: press Enter for a prompt");
          } else this.note(m.text);
        }
        return;
      }
      this.term.write(new Uint8Array(ev.data));
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const reason = ev.reason || "";
      if (ev.code === 4001) {
        this.status("the session has ended");
        this.note(reason || "the session has ended");
        this.wanted = false;
      } else if (ev.code === 4002) {
        this.status("waiting for the machine…");
        this.note(`${reason || "the machine is busy"}: the terminal comes back when it is done`);
      } else if (ev.code === 4003) {
        this.status("opened in another page");
        this.note("this terminal was opened in another page");
        this.wanted = false;
        $(`connect-${this.kind}`).hidden = false;
      } else if (ev.code === 1008) {
        this.status(reason || "refused");
        this.wanted = false;
        $(`connect-${this.kind}`).hidden = false;
      } else if (this.kind === "ssh" && ev.code === 4000) {
        // The server said why just before (ssh's exit).
        this.status("disconnected");
        this.wanted = false;
        $(`connect-${this.kind}`).hidden = false;
      } else {
        this.status("disconnected; trying again…");
        this.schedule(ev.code === 4004 || ev.code === 1006 ? 5000 : 2000);
      }
    };
  }

  schedule(ms) {
    clearTimeout(this.retry);
    if (!this.wanted || jobRunning) return;
    this.retry = setTimeout(() => this.connect(), ms);
  }
}

const panes = { serial: new Pane("serial"), ssh: new Pane("ssh") };
// For tests and for copying out: the terminals' buffers.
window.vmlabTerminals = { serial: panes.serial.term, ssh: panes.ssh.term };

function renderCheck(c, count) {
  const box = $("check");
  box.hidden = false;
  box.className = `check ${c.pass ? "pass" : "fail"}`;
  const parts = [h("h2", {}, c.pass ? "Passed" : "Not yet", h("span", { class: "muted" }, ` — check ${count}, ${new Date(c.at).toLocaleTimeString()}`)), h("p", { class: "summary" }, c.summary)];
  if (c.reasons && c.reasons.length) parts.push(h("ul", { class: "reasons" }, c.reasons.map((r) => h("li", {}, r))));
  if (c.boot) {
    const b = c.boot;
    parts.push(
      h("h3", {}, "The boot"),
      h("p", { class: "boot" }, h("span", { class: `outcome ${b.outcome === "ssh" ? "ok" : "bad"}` }, b.outcome), b.detail ? ` (${b.detail})` : "", ` via ${b.via}, ${(b.durationMs / 1000).toFixed(1)} s`),
    );
    if (b.evidence && b.evidence.length) parts.push(h("ol", { class: "evidence" }, b.evidence.map((l) => h("li", {}, h("code", {}, l)))));
  }
  if (c.root) parts.push(h("p", {}, "/ is ", h("code", {}, c.root.device), ` (${c.root.fstype})`));
  if (c.data) parts.push(h("p", { class: c.data.intact ? "ok" : "bad" }, `data set: ${c.data.summary}`));
  if (c.commands && c.commands.length) {
    parts.push(h("ul", { class: "commands" }, c.commands.map((x) => h("li", { class: x.ok ? "ok" : "bad" }, x.ok ? "✓ " : "✗ ", x.says, " ", h("code", {}, x.run), !x.ok && x.output ? h("pre", {}, x.output) : null))));
  }
  box.replaceChildren(...parts);
}

function render(v) {
  view = v;
  const s = v.session;
  const ex = v.exercise;
  document.title = `${ex ? ex.title : s.exercise} — vmlab training`;
  $("title").textContent = ex ? ex.title : s.exercise;
  $("state").textContent = s.state;
  $("state").className = `badge ${s.state}`;
  $("clock").textContent = `started ${since(s.startedAt)} ago · hints ${s.hintsUsed}${ex ? `/${ex.hintsTotal}` : ""} · checks ${s.checks.length} · resets ${s.resets}`;
  if (ex && $("story").dataset.for !== s.exercise) {
    // The server rendered the story with markdown-it with raw HTML off.
    $("story").innerHTML = ex.storyHtml;
    $("story").dataset.for = s.exercise;
  }
  if (ex && ex.hints.length) {
    $("hints").hidden = false;
    // Rendered by the server with markdown-it, raw HTML off.
    $("hint-list").replaceChildren(...ex.hints.map((html) => hintItem(html)));
  }
  if (ex && ex.solution) showSolution(ex.solution, ex.solutionWhere);
  const job = v.job;
  jobRunning = Boolean(job && job.state === "running");
  const ended = s.state === "stopped";
  for (const b of document.querySelectorAll("#actions button")) b.disabled = jobRunning || ended;
  $("btn-rescue").hidden = s.state === "rescue";
  $("btn-rescue-done").hidden = s.state !== "rescue";
  if (ex && ex.hintsTotal <= s.hintsUsed) $("btn-hint").disabled = true;
  $("pane-ssh").querySelector("h2").textContent = s.state === "rescue" ? "SSH (rescue system)" : "SSH";
  $("pane-serial").querySelector("h2").textContent = s.state === "rescue" ? "Serial console (rescue system)" : "Serial console";
  const jobBox = $("job");
  if (job) {
    jobBox.hidden = false;
    jobBox.className = `job ${job.state}`;
    jobBox.textContent = job.state === "running" ? `${job.words}…` : job.state === "failed" ? `${job.action} failed: ${job.error.message}${job.error.hint ? ` (${job.error.hint})` : ""}` : `${job.action}: done`;
  } else jobBox.hidden = true;
  const last = s.checks[s.checks.length - 1];
  if (last) renderCheck(last, s.checks.length);
  if (ended) {
    for (const p of Object.values(panes)) {
      p.wanted = false;
      if (p.ws) p.ws.close();
      p.status("the session has ended");
    }
  }
  // When an action has ended, the machine in front may be another one: reconnect both terminals.
  const key = job ? `${job.action}@${job.startedAt}:${job.state}` : "";
  if (key !== lastJobKey) {
    const wasRunning = lastJobKey.endsWith(":running");
    lastJobKey = key;
    if (job && job.state !== "running" && wasRunning && !ended) {
      for (const p of Object.values(panes)) {
        p.wanted = true;
        if (p.ws) p.ws.close();
        p.ws = null;
        p.connect();
      }
    }
  }
}

function hintItem(html) {
  const li = h("li", { class: "hint" });
  li.innerHTML = html;
  return li;
}

function showSolution(text, where) {
  $("solution").hidden = false;
  $("solution-text").textContent = text;
  $("solution-where").textContent =
    where === "rescue" ? "Run in the rescue system, with the machine's disks." : where === "console" ? "Typed on the serial console." : "Run on the machine as root.";
}

let pollTimer = null;
async function refresh() {
  clearTimeout(pollTimer);
  try {
    render(await api("GET", `/api/sessions/${encodeURIComponent(id)}`, token));
    showError("");
  } catch (err) {
    showError(err.message);
    if (err.status === 403) return;
  }
  pollTimer = setTimeout(refresh, jobRunning ? 1500 : 10000);
}

async function act(action) {
  showError("");
  try {
    if (action === "hint") {
      const hint = await api("POST", `/api/sessions/${encodeURIComponent(id)}/hint`, token);
      $("hints").hidden = false;
      if ($("hint-list").children.length < hint.index) $("hint-list").append(hintItem(hint.html));
    } else if (action === "solution") {
      if (!solutionArmed) {
        solutionArmed = true;
        $("btn-solution").textContent = "Show the solution? (counts as giving up)";
        setTimeout(() => {
          solutionArmed = false;
          $("btn-solution").textContent = "Solution";
        }, 5000);
        return;
      }
      solutionArmed = false;
      $("btn-solution").textContent = "Solution";
      const r = await api("POST", `/api/sessions/${encodeURIComponent(id)}/solution`, token);
      showSolution(r.solution, view && view.exercise ? view.exercise.solutionWhere : "guest");
    } else {
      await api("POST", `/api/sessions/${encodeURIComponent(id)}/${action}`, token);
    }
  } catch (err) {
    showError(err.message);
  }
  await refresh();
}

for (const b of document.querySelectorAll("#actions button")) b.addEventListener("click", () => act(b.dataset.action));

async function main() {
  if (!token) {
    showError("This page needs the session's token: open the session from the link you got when it started.");
    return;
  }
  await refresh();
  if (!view) return;
  rememberSession({ id, token, exercise: view.session.exercise });
  if (view.session.state !== "stopped") {
    panes.serial.connect();
    panes.ssh.connect();
  }
}

main();
