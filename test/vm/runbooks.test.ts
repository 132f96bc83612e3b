/**
 * Runbook documents rehearsed on real guests through `vmlab rehearse`: the
 * root → LVM runbook and the LVM snapshot runbook pass, each twin runbook
 * forks from its good path at the block it leaves out and fails for the
 * reason it predicts, and one shell carries cd, variables and functions from
 * block to block (over SSH and on the serial console) until a command fails,
 * which the report names with its line in the document.
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
  it("root → LVM and the LVM snapshot runbooks pass; their twins fork and fail for the predicted reason", async () => {
    const out = join(reports, "pairs");
    const r = await vmlab(["rehearse", "--jobs", "2", "root-to-lvm", "root-to-lvm-no-relabel", "lvm-snapshot-rollback", "lvm-snapshot-too-small", "--report-dir", out]);
    const log = `${r.stdout}\n${r.stderr}`;
    expect(r.exitCode, log).toBe(0);

    const lvm = await onlyReport(out, "runbook-root-to-lvm");
    expect(lvm.verdict).toBe("pass");
    // Every block ran over SSH with exit 0, at its line in the Markdown file.
    expect(blocks(lvm).map((b) => [b.step, b.exitCode])).toEqual(lvm.steps.filter((s) => !/^(start|seed|reboot|verify|warm|image)/.test(s.name)).map((s) => [s.name, 0]));
    expect(blocks(lvm).find((b) => b.step === "Mount the copy and pivot into it")?.line).toBe(89);
    // The lab's own end: a new boot through SeaBIOS, GRUB and the initramfs, / on the LV, the data set as seeded.
    const reboot = lvm.boots.at(-1)!;
    expect([reboot.reason, reboot.via, reboot.outcome, reboot.newBoot?.proven]).toEqual(["reboot", "firmware", "ssh", true]);
    expect(lvm.final).toMatchObject({ root: { device: "/dev/mapper/sys-root", fstype: "ext3" }, data: { intact: true } });
    const data = lvm.facts.data as { intact: boolean; files: number; missing: string[]; changed: string[] };
    expect(data).toMatchObject({ intact: true, missing: [], changed: [] });
    expect(data.files).toBeGreaterThan(100);

    const twin = await onlyReport(out, "runbook-root-to-lvm-no-relabel");
    expect(twin.verdict).toBe("pass");
    expect(twin.kind).toBe("twin");
    expect(twin.forkedFrom).toMatchObject({ scenario: "runbook-root-to-lvm", beforeStep: { name: "Give the old root a new label and UUID" } });
    // What the lab saw after the twin's reboot: the old root still answers to the root's UUID (or the old root booted).
    const id = twin.facts.rootIdentity as { sameUuid: string[] } | undefined;
    const seen = id && id.sameUuid.length >= 2 ? "duplicate-uuid" : (twin.final?.root?.device ?? twin.boots.at(-1)!.outcome);
    expect(["duplicate-uuid", "/dev/sda2", "initramfs-shell", "emergency-mode"]).toContain(seen);
    if (seen === "duplicate-uuid") expect(id!.sameUuid).toContain("/dev/sda2");
    expect(twin.judgement?.reasons.join("\n")).toMatch(/UUID|old root|initramfs|emergency/);

    const snap = await onlyReport(out, "runbook-lvm-snapshot-rollback");
    expect(snap.verdict).toBe("pass");
    expect(snap.final).toMatchObject({ root: { device: "/dev/sda2" }, data: { intact: true } });
    const rollback = snap.steps.find((s) => s.name === "The upgrade went wrong: roll it back")!;
    expect(rollback.status).toBe("passed");

    const small = await onlyReport(out, "runbook-lvm-snapshot-too-small");
    expect(small.verdict).toBe("pass");
    expect(small.forkedFrom?.beforeStep.name).toBe("Take the snapshot");
    const refused = small.steps.find((s) => s.name === "The upgrade went wrong: roll it back")!;
    expect(refused.status).toBe("failed");
    expect(`${refused.error}\n${refused.failure?.stderr}`).toMatch(/[Ii]nvalid|Unable to merge/);
    expect(refused.failure?.command).toMatch(/^lvconvert --merge/);
    expect(await qemuPids()).toEqual([]);
  });

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
      "A command that fails": "failed",
    });
    expect(rep.steps.some((s) => s.name === "Never reached")).toBe(false);
    const b = blocks(rep);
    expect(b.find((x) => x.step === "On the serial console")?.via).toBe("console");
    expect(b.find((x) => x.step === "A block that must fail")?.exitCode).toBe(3);
    const failed = rep.steps.find((s) => s.name === "A command that fails")!;
    expect(failed.failure).toMatchObject({ command: "ls /srv/work/no-such-file", exitCode: 2 });
    expect(failed.failure?.stderr).toMatch(/No such file or directory/);
    expect(failed.failure?.stdout).toBe("still in /srv/work");
    expect(rep.error?.message).toMatch(/shell-state\.md:48/);
    // The terminal says the same: the block, the line and the command.
    expect(log).toMatch(/A command that fails" failed at .*shell-state\.md:48: line 48: `ls \/srv\/work\/no-such-file` exited with code 2/);
    expect(await readdir(out)).toHaveLength(1);
    expect(await qemuPids()).toEqual([]);
  });
});
