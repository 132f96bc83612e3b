// The exercise list: start a session, follow its start, then open its page.
import { api, h, mySessions, rememberSession, since } from "/static/common.js";

const list = document.getElementById("exercises");
const errorBox = document.getElementById("error");

function showError(msg) {
  errorBox.textContent = msg;
  errorBox.hidden = !msg;
}

function sessionUrl(id, token) {
  return `/session/${encodeURIComponent(id)}#token=${encodeURIComponent(token)}`;
}

async function showMine() {
  const mine = mySessions();
  const ul = document.getElementById("mine-list");
  ul.replaceChildren();
  for (const s of mine) {
    try {
      const v = await api("GET", `/api/sessions/${encodeURIComponent(s.id)}`, s.token);
      if (v.session.state === "stopped") continue;
      ul.append(h("li", {}, h("a", { href: sessionUrl(s.id, s.token) }, v.exercise ? v.exercise.title : s.exercise), ` — ${v.session.state}, started ${since(v.session.startedAt)} ago`));
    } catch {
      // ended, or from another server
    }
  }
  document.getElementById("mine").hidden = ul.children.length === 0;
}

async function start(ex, button) {
  showError("");
  for (const b of document.querySelectorAll("button.start")) b.disabled = true;
  try {
    const { launch, token } = await api("POST", "/api/sessions", undefined, { exercise: ex.name });
    document.getElementById("launch").hidden = false;
    document.getElementById("launch-title").textContent = `Starting ${ex.title}…`;
    const log = document.getElementById("launch-log");
    for (;;) {
      await new Promise((r) => setTimeout(r, 1500));
      const l = await api("GET", `/api/launches/${encodeURIComponent(launch)}`, token);
      log.textContent = l.lines.join("\n");
      log.scrollTop = log.scrollHeight;
      if (l.state === "done") {
        rememberSession({ id: l.session.id, token: l.session.token, exercise: ex.name });
        location.href = sessionUrl(l.session.id, l.session.token);
        return;
      }
      if (l.state === "failed") throw new Error(`the session did not start: ${l.error.message}${l.error.hint ? ` (${l.error.hint})` : ""}`);
    }
  } catch (err) {
    showError(err.message);
    for (const b of document.querySelectorAll("button.start")) b.disabled = false;
    button.focus();
  }
}

async function main() {
  try {
    const { exercises } = await api("GET", "/api/exercises");
    list.replaceChildren();
    if (exercises.length === 0) list.append(h("li", { class: "muted" }, "No exercises were found."));
    for (const ex of exercises) {
      const button = h("button", { class: "start", "data-exercise": ex.name }, "Start");
      button.addEventListener("click", () => start(ex, button));
      list.append(
        h("li", { class: "exercise", id: `ex-${ex.name}` },
          h("div", { class: "ex-head" }, h("h3", {}, ex.title), h("span", { class: `level ${ex.level}` }, ex.level), h("span", { class: "muted" }, `about ${ex.minutes} min`)),
          h("div", { class: "tags" }, ex.tags.map((t) => h("span", { class: "tag" }, t)), ex.needsRescue ? h("span", { class: "tag rescue" }, "rescue system") : null),
          h("div", { class: "ex-foot" }, h("code", {}, ex.name), button)),
      );
    }
  } catch (err) {
    list.replaceChildren();
    showError(err.message);
  }
  await showMine();
}

main();
