/**
 * A runbook document rehearsed on a real guest through `vmlab rehearse`: one
 * shell carries cd, variables and functions from block to block (over SSH
 * and on the serial console), a block marked to fail fails as it says, and a
 * command that fails for real stops the rehearsal, named with its line in
 * the document. (The snapshot runbooks run with the snapshot scenarios in
 * test/vm/lvm-snapshot.test.ts; the root → LVM pair is judged from its recorded
 * real run in test/unit/verdict.test.ts.)
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { dir } from "tmp-promise";
import type { ScenarioReport } from "../../src/scenario/types.ts";
import { projectRoot } from "../../src/paths.ts";
import { onlyReport, qemuPids, vmlab } from "./helpers.ts";

let reports = "";
beforeAll(async () => {
  reports = (await dir({ unsafeCleanup: true })).path;
});

const blocks = (r: ScenarioReport) => (r.facts.runbook as { blocks: { step: string; line: number; exitCode: number; via: string }[] }).blocks;

describe("runbooks on real guests", () => {
  it("one shell from block to block, on SSH and the console; a failing command is named with its line, and nothing after it runs", async () => {
    const out = join(reports, "state");
    const file = join(projectRoot, "test/fixtures/runbooks/shell-state.md");
    const r = await vmlab(["rehearse", file, "--report-dir", out]);
    const log = `${r.stdout}\n${r.stderr}`;
    expect(r.exitCode, log).toBe(1);
    const rep = await onlyReport(out, "runbook-shell-state");
    expect(rep.verdict).toBe("fail");
    const status = Object.fromEntries(rep.steps.map((s) => [s.name, s.status]));
    expect(status).toMatchObject({
      "Go somewhere and set things up": "passed",
      "Use what the block before left": "passed",
      "On the serial console": "passed",
      "A block that must fail": "passed",
      "Reboot, as the runbook says": "passed",
      "A command that fails": "failed",
    });
    expect(rep.steps.some((s) => s.name === "Never reached")).toBe(false);
    const b = blocks(rep);
    expect(b.find((x) => x.step === "On the serial console")?.via).toBe("console");
    expect(b.find((x) => x.step === "A block that must fail")?.exitCode).toBe(3);
    const failed = rep.steps.find((s) => s.name === "A command that fails")!;
    expect(failed.failure).toMatchObject({ command: "ls /srv/work/no-such-file", exitCode: 2 });
    expect(failed.failure?.stderr).toMatch(/No such file or directory/);
    // The reboot started a fresh login shell: the cd from the first block no longer holds.
    expect(failed.failure?.stdout).toBe("still in /root");
    const boot = b.find((x) => x.step === "Reboot, as the runbook says") as unknown as { boot: { outcome: string } };
    expect(boot.boot.outcome).toBe("ssh");
    expect(rep.boots.map((x) => [x.reason, x.via, x.outcome])).toEqual([
      ["resume", "saved-state", "ssh"],
      ["reboot", "firmware", "ssh"],
    ]);
    expect(rep.boots[1]!.newBoot?.proven).toBe(true);
    expect(rep.error?.message).toMatch(/shell-state\.md:59/);
    // The terminal says the same: the block, the line and the command.
    expect(log).toMatch(/A command that fails" failed at .*shell-state\.md:59: line 59: `ls \/srv\/work\/no-such-file` exited with code 2/);
    expect(await readdir(out)).toHaveLength(1);
    expect(await qemuPids()).toEqual([]);
  });
});
