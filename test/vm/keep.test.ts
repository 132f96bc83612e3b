/**
 * Keeping a machine after its run and stepping into it, on real guests,
 * through the real `vmlab` command line: the kept QEMU outlives `vmlab run`,
 * `ssh` passes exit codes through, `console` reaches the login prompt and
 * detaches with Ctrl-], `stop` leaves no QEMU; and a kept QEMU killed from
 * outside is reported dead and cleaned, never shown alive; and a run
 * stopped at a step boundary keeps its machine there.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { projectRoot } from "../../src/paths.ts";
import { keptDir, liveness, stopKept, type KeptVm } from "../../src/vm/kept.ts";
import { vmlab } from "./helpers.ts";

let reports: DirectoryResult;
/** Every machine this file kept, stopped at the end whatever happened. */
const kept: KeptVm[] = [];

beforeAll(async () => {
  reports = await dir({ unsafeCleanup: true, prefix: "vmlab-keep-" });
});

afterAll(async () => {
  for (const e of kept) await stopKept(e, 5000).catch(() => undefined);
  await reports.cleanup();
});

/** Whether a QEMU process of this machine still exists (not a zombie, and with its own socket on its command line). */
function qemuOf(e: KeptVm): boolean {
  return liveness(e).alive;
}

async function keepSmoke(): Promise<KeptVm> {
  const r = await vmlab(["run", "--keep=always", "smoke", "--report-dir", reports.path]);
  const id = /^ {2}kept: (\S+) /m.exec(r.stdout)?.[1];
  if (id) kept.push(JSON.parse(readFileSync(join(keptDir(), `${id}.json`), "utf8")) as KeptVm);
  expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
  expect(id, r.stdout).toBeDefined();
  expect(r.stdout).toContain(`vmlab ssh ${id}`);
  expect(r.stdout).toContain(`vmlab console ${id}`);
  expect(r.stdout).toContain(`vmlab stop ${id}`);
  return kept.at(-1)!;
}

describe("vmlab run --keep on a real guest", () => {
  it("keeps the machine past the run; ssh, console and stop reach it; stop leaves no QEMU", async () => {
    const e = await keepSmoke();
    // `vmlab run` has exited; its QEMU goes on, with its disk.
    expect(qemuOf(e)).toBe(true);
    expect(e.overlays.length).toBeGreaterThan(0);
    for (const o of e.overlays) expect(existsSync(o)).toBe(true);

    const ps = await vmlab(["ps", "--json"]);
    expect(ps.exitCode, ps.stderr).toBe(0);
    expect(JSON.parse(ps.stdout)).toContainEqual(expect.objectContaining({ id: e.id, scenario: "smoke", alive: true, pid: e.pid, sshPort: e.sshPort }));
    expect((await vmlab(["ps"])).stdout).toMatch(new RegExp(`^${e.id}\\s+smoke\\s+pass\\s+running`, "m"));

    const seven = await vmlab(["ssh", e.id, "exit 7"]);
    expect(seven.exitCode, seven.stderr).toBe(7);
    const host = await vmlab(["ssh", e.id, "cat", "/etc/hostname"]);
    expect(host.exitCode, host.stderr).toBe(0);
    expect(host.stdout.trim()).toBe("vmlab");
    // The data set the scenario seeded is on the kept machine's disk.
    expect((await vmlab(["ssh", e.id, "test -d /srv/vmlab-data"])).exitCode).toBe(0);
    // smoke's last step checked the data set and nothing was done since: the runner took that check as it was.
    const smokeReport = JSON.parse(readFileSync(join(e.reportDir, "report.json"), "utf8")) as { final?: { data?: unknown } };
    expect(smokeReport.final?.data).toMatchObject({ intact: true, reused: true });

    // The serial console, with input from a pipe: Enter brings the login prompt, Ctrl-] detaches.
    const con = execa("node", [join(projectRoot, "lab/vmlab.mjs"), "console", e.id], { reject: false, stdin: "pipe", env: { ...process.env, CI: "true" } });
    let seen = "";
    con.stdout!.on("data", (d: Buffer) => (seen += d.toString()));
    // Two minutes: beside other guests under TCG, getty can take long to answer.
    const deadline = Date.now() + 120_000;
    while (!/login:/.test(seen) && Date.now() < deadline) {
      con.stdin!.write("\n");
      await new Promise((r) => setTimeout(r, 1000));
    }
    con.stdin!.write("\x1d");
    const c = await con;
    expect(seen).toMatch(/vmlab login:/);
    expect(c.exitCode, c.stderr).toBe(0);
    expect(c.stderr).toContain("Ctrl-] detaches");
    // Detaching did not stop the machine.
    expect(qemuOf(e)).toBe(true);
    expect((await vmlab(["ssh", e.id, "true"])).exitCode).toBe(0);

    const stop = await vmlab(["stop", e.id]);
    expect(stop.exitCode, stop.stderr).toBe(0);
    expect(stop.stdout).toContain(`${e.id}: stopped`);
    expect(qemuOf(e)).toBe(false);
    const pgrep = await execa("pgrep", ["-f", e.qmpSocket], { reject: false });
    expect(pgrep.stdout.trim()).toBe("");
    for (const o of e.overlays) expect(existsSync(o)).toBe(false);
    expect(existsSync(join(keptDir(), `${e.id}.json`))).toBe(false);
    expect(existsSync(join(e.reportDir, "report.json"))).toBe(true);
    expect(JSON.parse((await vmlab(["ps", "--json"])).stdout)).not.toContainEqual(expect.objectContaining({ id: e.id }));
    // Once stopped, the id is gone.
    expect((await vmlab(["ssh", e.id, "true"])).exitCode).toBe(2);
  });

  it("run --stop-before 4 leaves root-to-lvm's machine at that boundary; killed from outside, it shows as dead and is cleaned", async () => {
    const r = await vmlab(["run", "root-to-lvm", "--stop-before", "4", "--report-dir", reports.path]);
    const id = /^ {2}kept: (\S+) /m.exec(r.stdout)?.[1];
    if (id) kept.push(JSON.parse(readFileSync(join(keptDir(), `${id}.json`), "utf8")) as KeptVm);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain("stopped before step 4: mount the copy and pivot_root into it");
    const e = kept.at(-1)!;
    expect(e.scenario).toBe("root-to-lvm");
    const report = JSON.parse(readFileSync(join(e.reportDir, "report.json"), "utf8")) as { stoppedBefore: unknown; steps: { name: string }[]; verdict: string };
    expect(report.stoppedBefore).toEqual({ index: 4, step: "mount the copy and pivot_root into it" });
    expect(report.steps.map((x) => x.name)).not.toContain("mount the copy and pivot_root into it");
    // What steps 1-3 left: the LV holds the copy, / is still sda2 and read-only, as the runbook has it before the pivot.
    const root = await vmlab(["ssh", e.id, "findmnt -no SOURCE,OPTIONS /"]);
    expect(root.stdout).toMatch(/^\/dev\/sda2\s+ro,/);
    const lv = await vmlab(["ssh", e.id, "blkid -s LABEL -o value /dev/sys/root"]);
    expect(lv.exitCode, lv.stderr).toBe(0);
    expect(lv.stdout.trim()).toBe("root");

    // Its QEMU killed from outside: `ps` shows it dead once and cleans it, never alive.
    expect(qemuOf(e)).toBe(true);
    process.kill(e.pid, "SIGKILL");
    for (let i = 0; i < 50 && qemuOf(e); i++) await new Promise((r) => setTimeout(r, 100));
    const ps = await vmlab(["ps", "--json"]);
    expect(ps.exitCode, ps.stderr).toBe(0);
    expect(JSON.parse(ps.stdout)).toContainEqual(expect.objectContaining({ id: e.id, alive: false, cleaned: true }));
    for (const o of e.overlays) expect(existsSync(o)).toBe(false);
    expect(existsSync(join(keptDir(), `${e.id}.json`))).toBe(false);
    expect(JSON.parse((await vmlab(["ps", "--json"])).stdout)).not.toContainEqual(expect.objectContaining({ id: e.id }));
    // The report and the console log stay.
    expect(existsSync(join(e.reportDir, "report.json"))).toBe(true);
    expect(existsSync(e.serialLog)).toBe(true);
  });
});
