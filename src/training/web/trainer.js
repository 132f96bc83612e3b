// The trainer's page: every session, refreshed every few seconds; a session can be ended.
// The trainer's token comes in the address (?token=, as `vmlab train serve` printed it) and goes
// to the API in an Authorization header.
import { api, h, since } from "/static/common.js";

const fromQuery = new URLSearchParams(location.search).get("token");
if (fromQuery) sessionStorage.setItem("vmlab-trainer-token", fromQuery);
const token = fromQuery || sessionStorage.getItem("vmlab-trainer-token");
const $ = (x) => document.getElementById(x);
const armed = new Set();

function showError(msg) {
  $("error").textContent = msg || "";
  $("error").hidden = !msg;
}

async function end(id, button) {
  if (!armed.has(id)) {
    armed.add(id);
    button.textContent = "End it?";
    setTimeout(() => {
      armed.delete(id);
      button.textContent = "End";
    }, 5000);
    return;
  }
  armed.delete(id);
  button.disabled = true;
  button.textContent = "ending…";
  try {
    await api("POST", `/api/trainer/sessions/${encodeURIComponent(id)}/stop`, token);
  } catch (err) {
    showError(err.message);
  }
  await refresh();
}

let timer = null;
async function refresh() {
  clearTimeout(timer);
  try {
    const d = await api("GET", "/api/trainer/sessions", token);
    const now = Date.parse(d.now);
    const rows = d.sessions
      .slice()
      .sort((a, b) => (a.state === "stopped") - (b.state === "stopped") || b.startedAt.localeCompare(a.startedAt))
      .map((s) => {
        const button = h("button", { class: "small", "data-session": s.id }, "End");
        button.addEventListener("click", () => end(s.id, button));
        if (s.state === "stopped") button.disabled = true;
        if (armed.has(s.id)) button.textContent = "End it?";
        return h(
          "tr",
          { "data-session": s.id, class: s.state },
          h("td", {}, h("code", {}, s.id)),
          h("td", {}, s.exercise),
          h("td", {}, h("span", { class: `badge ${s.state}` }, s.state)),
          h("td", {}, since(s.startedAt, now)),
          h("td", {}, since(s.lastActivityAt, now)),
          h("td", { class: "num" }, String(s.hintsUsed)),
          h("td", { class: "num" }, String(s.checksTried)),
          h("td", { class: s.lastCheck ? (s.lastCheck.pass ? "ok" : "bad") : "" }, s.lastCheck ? s.lastCheck.summary : ""),
          h("td", {}, s.job && s.job.state === "running" ? s.job.action : s.terminals ? `${s.terminals} terminal${s.terminals === 1 ? "" : "s"}` : ""),
          h("td", {}, button),
        );
      });
    $("sessions").tBodies[0].replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: "10", class: "muted" }, "No sessions."))]));
    $("starting").hidden = d.starting.length === 0;
    $("starting-list").replaceChildren(...d.starting.map((l) => h("li", {}, `${l.exercise}, for ${since(l.startedAt, now)}`, l.last ? h("span", { class: "muted" }, ` — ${l.last}`) : null)));
    $("idle-note").textContent = `A session with no typing in its terminals and no action for ${d.idleMinutes} minutes is stopped.`;
    $("updated").textContent = `updated ${new Date(now).toLocaleTimeString()}`;
    showError("");
  } catch (err) {
    showError(err.message);
    if (err.status === 403) return;
  }
  timer = setTimeout(refresh, 5000);
}

if (!token) showError("This page needs the trainer's token: open the /trainer address `vmlab train serve` printed.");
else refresh();
