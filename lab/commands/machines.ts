/** Kept machines: `vmlab ps`, `ssh`, `console` and `stop`. */
import { spawn } from "node:child_process";
import { UsageError } from "../../src/errors.ts";
import { requireTool } from "../../src/host/tools.ts";
import { labKey } from "../../src/image/keys.ts";
import { attachConsole, DETACH_KEY } from "../../src/vm/console.ts";
import { cleanKept, findKept, keptSshArgs, listKept, requireAlive, stopKept, type KeptStatus } from "../../src/vm/kept.ts";
import { out, table } from "../output.ts";
import { cleanOrphans } from "./scenarios.ts";

function age(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return "?";
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${(s / 3600).toFixed(1)}h`;
}

export async function cmdPs(o: { json?: boolean }): Promise<number> {
  // Runs whose vmlab process died are ended and cleaned here too: the first command after a crash notices it.
  await cleanOrphans();
  const all = await listKept();
  // A dead machine is shown once, as dead, and cleaned right away: it never shows as alive.
  // A machine parked for its rescue system is off on purpose: shown, never cleaned.
  const shown = all.map((e) => ({ ...e, ageS: Math.round((Date.now() - Date.parse(e.keptAt)) / 1000), cleaned: !e.alive && !e.parked }));
  for (const e of all) if (!e.alive && !e.parked) await cleanKept(e);
  if (o.json) {
    out(JSON.stringify(shown, null, 2));
    return 0;
  }
  if (shown.length === 0) {
    out("no kept machines; `vmlab run --keep NAME` keeps one");
    return 0;
  }
  const rows = [["ID", "SCENARIO", "VERDICT", "STATE", "AGE", "SSH", "PID", "REPORT"]];
  for (const e of shown) {
    rows.push([e.id, e.scenario, e.verdict, e.alive ? "running" : e.parked ? `off, in rescue ${e.parked.rescue}` : "dead, cleaned", age(e.keptAt), e.sshPort ? `127.0.0.1:${e.sshPort}` : "-", String(e.pid), e.reportDir]);
  }
  table(rows);
  for (const e of shown) if (!e.alive && !e.parked) process.stderr.write(`${e.id}: ${e.why}; its disks and entry were removed\n`);
  return 0;
}

export async function cmdSsh(id: string, command: string[]): Promise<number> {
  if (command[0] === "--") command = command.slice(1);
  requireTool("ssh");
  const e = await requireAlive(id);
  if (!e.sshKey) e.sshKey = (await labKey()).privateKey;
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const child = spawn("ssh", keptSshArgs(e, command, tty), { stdio: "inherit" });
  // Ctrl-C belongs to the session: ssh gets it, and this process waits for ssh's exit code.
  const ignore = () => undefined;
  process.on("SIGINT", ignore);
  const code = await new Promise<number>((resolve) => {
    child.on("error", () => resolve(255));
    child.on("exit", (c, sig) => resolve(c ?? 128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 9)));
  });
  process.off("SIGINT", ignore);
  return code;
}

export async function cmdConsole(id: string): Promise<number> {
  const e = await requireAlive(id);
  const tty = Boolean(process.stdin.isTTY);
  process.stderr.write(`vmlab: serial console of ${e.id} (user root, password vmlab)${tty ? "; press Enter for a prompt" : ""}; ${DETACH_KEY} detaches, the machine keeps running\n`);
  const how = await attachConsole(e.serialSocket, { input: process.stdin, output: process.stdout });
  process.stdin.destroy();
  if (how === "console-closed") {
    process.stderr.write(`\nvmlab: the console of ${e.id} closed: the machine stopped (\`vmlab ps\` shows it)\n`);
    return 1;
  }
  if (tty) process.stderr.write(`\nvmlab: detached from ${e.id}; it keeps running (\`vmlab stop ${e.id}\` ends it)\n`);
  return 0;
}

export async function cmdStop(ids: string[], o: { all?: boolean }): Promise<number> {
  if (o.all && ids.length) throw new UsageError("vmlab stop takes ids or --all, not both");
  if (!o.all && ids.length === 0) throw new UsageError("vmlab stop needs the id of a kept machine, or --all", { hint: "`vmlab ps` lists them" });
  // Resolve every id first: a typo stops nothing.
  const targets: KeptStatus[] = o.all ? await listKept() : [];
  if (!o.all) for (const id of new Set(ids)) targets.push(await findKept(id));
  if (o.all && targets.length === 0) out("no kept machines");
  for (const e of targets) {
    const how = await stopKept(e);
    out(how === "was-dead" ? `${e.id}: was no longer running (${e.why}); cleaned` : `${e.id}: stopped${how === "killed" ? " (QEMU did not quit in time and was killed)" : ""}; its disks were removed, the report stays in ${e.reportDir}`);
  }
  return 0;
}
