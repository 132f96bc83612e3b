/**
 * The fault scenarios through the real `vmlab run`, two at a time, and a
 * fault sweep through the real `vmlab sweep`. Every assertion reads what the
 * lab recorded: each boot's path and classified outcome with its evidence,
 * where `/` lives afterwards, and the data set's checksums.
 */
import { readFile, readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { dir } from "tmp-promise";
import type { FaultRecord } from "../../src/faults/index.ts";
import type { SweepResult } from "../../src/suite/sweep.ts";
import type { ProbeResult, ScenarioReport } from "../../src/scenario/types.ts";
import { keepReport, qemuPids, runScenarios, vmlab } from "./helpers.ts";

let reports = "";
beforeAll(async () => {
  reports = (await dir({ unsafeCleanup: true })).path;
});

const run = (names: string[]) => runScenarios(reports, names);

const boots = (r: ScenarioReport) => r.boots.map((b) => `${b.machine}:${b.reason}/${b.via}/${b.outcome}${b.detail ? `(${b.detail})` : ""}`);
const intact = (d: unknown) => d as { intact: boolean; files: number };
const fault = (r: ScenarioReport, name: string): FaultRecord => {
  const f = r.faults?.find((x) => x.fault === name);
  expect(f, `${r.scenario} recorded no ${name} fault`).toBeDefined();
  return f!;
};
const LONG = 45 * 60_000;

/**
 * In the rescue system the machine's disk is sda or sdb, in the order the
 * kernel's asynchronous SCSI scan found it and the rescue system's own disk:
 * its root is partition 2, its /boot partition 1, GRUB goes on that disk.
 */
function onTargetDisk(rescue: unknown): { root: string; boot: string; grubDisks: string[] } {
  const root = (rescue as { root?: string }).root ?? "";
  const disk = /^(\/dev\/sd[ab])2$/.exec(root)?.[1];
  expect(disk, `the rescue took ${root} for the root`).toBeDefined();
  return { root, boot: `${disk}1`, grubDisks: [disk!] };
}

// All eight in one `vmlab run --jobs 2`, longest first: the queue keeps both
// slots busy (about 14 minutes under TCG on 2 cores, against 20 in pairs).
const ALL = ["dropped-ssh", "missing-initrd", "stale-fstab", "missing-initrd-grub-only", "io-errors", "busy-root", "power-cut", "pulled-disk"];
let runs: Awaited<ReturnType<typeof run>>;
beforeAll(async () => {
  runs = await run(ALL);
}, 60 * 60_000);

it("all eight fault scenarios pass from vmlab run, and no QEMU is left", async () => {
  expect(runs.exitCode, runs.output).toBe(0);
  expect(Object.keys(runs.report).sort()).toEqual([...ALL].sort());
  for (const r of Object.values(runs.report)) {
    expect(r.verdict, `${r.scenario}: ${r.judgement?.reasons.join("\n")}`).toBe("pass");
    // Every twin passed on its declared failure, and every later boot is a proven new boot.
    expect(r.judgement?.reasons[0]).toMatch(/^the predicted failure was observed: /);
    for (const b of r.boots.filter((b) => b.via !== "saved-state")) expect(b.newBoot?.proven, `${r.scenario}: ${b.reason}: ${b.newBoot?.why}`).toBe(true);
    // junit.xml fails a case only when the verdict is fail: a twin's expected step failure is no <failure>.
    expect(await readFile(join(r.runDir, "junit.xml"), "utf8")).not.toContain("<failure");
  }
  expect(await qemuPids()).toEqual([]);
});

describe("faults that the procedure must survive without a reboot", () => {
  it("busy root: remount,ro refused and the holder named; io-errors: dd fails with the guest's kernel messages; both leave the machine as it was", () => {
    const { report } = runs;

    const busy = report["busy-root"]!;
    expect(busy.verdict, (busy.judgement?.reasons ?? [busy.error?.message]).join("\n")).toBe("pass");
    const held = fault(busy, "busy-root");
    expect(held.details.file).toBe("/root/busy-root.log");
    expect(String(busy.facts.error)).toMatch(/could not be remounted read-only: it is busy/);
    expect(String(busy.facts.error)).toContain(String(held.details.pid));
    // Left as it was: the old root, no LV, the data's checksums unchanged. No reboot was needed.
    expect(busy.facts.root).toMatchObject({ device: "/dev/sda2", fstype: "ext3" });
    expect(intact(busy.facts.data)).toMatchObject({ intact: true, files: 204 });
    expect(busy.steps.map((s) => s.name)).toContain("abort: leave the machine as it was");
    expect(boots(busy)).toEqual(["vm:resume/saved-state/ssh"]);

    const io = report["io-errors"]!;
    expect(io.verdict, (io.judgement?.reasons ?? [io.error?.message]).join("\n")).toBe("pass");
    const zone = fault(io, "io-errors");
    expect(zone.details).toMatchObject({ device: "sys-root", start: 2097152, count: 131072 });
    expect(zone.details.after).toContain("2097152 131072 error");
    expect(String(io.facts.error)).toMatch(/Input\/output error/);
    // The guest's own kernel lines about the failing device are in the report.
    expect(zone.observed.some((l) => /I\/O error|critical target error|Buffer I\/O/.test(l)), zone.observed.join("\n")).toBe(true);
    // The step the scenario caught keeps its command, exit code and stderr in report.json.
    const dd = io.steps.find((st) => st.name.startsWith("dd /dev/sda2"))!;
    expect(dd.status).toBe("failed");
    expect(dd.failure?.command).toMatch(/^dd if=\/dev\/sda2 of=\/dev\/sys\/root/);
    expect(dd.failure?.exitCode).toBeGreaterThan(0);
    expect(dd.failure?.stderr).toMatch(/Input\/output error/);
    expect(io.facts.root).toMatchObject({ device: "/dev/sda2", fstype: "ext3" });
    expect(intact(io.facts.data)).toMatchObject({ intact: true, files: 204 });
  });
});

describe("faults that end in a power cycle", () => {
  it("power cut during the copy: the old root with the data intact, or the half copy stopped at its fsck; a pulled disk is no bootable device, and boots again plugged back", () => {
    const { report } = runs;

    const cut = report["power-cut"]!;
    expect(cut.verdict, (cut.judgement?.reasons ?? [cut.error?.message]).join("\n")).toBe("pass");
    const pc = fault(cut, "power-cut");
    expect(pc.how).toBe("QMP quit");
    expect(pc.step).toMatch(/^dd \/dev\/sda2 to \/dev\/sys\/root/);
    // The cut came inside the copy, once 16 MiB of it (and less than the 2 GiB root) had reached the disk.
    const at = pc.details.duringStep as { afterWrittenBytes: number; writtenBytes: number; stepEndedFirst: boolean };
    expect(at).toMatchObject({ afterWrittenBytes: 16 * 2 ** 20, stepEndedFirst: false });
    expect(at.writtenBytes).toBeGreaterThanOrEqual(16 * 2 ** 20);
    expect(at.writtenBytes).toBeLessThan(2 * 2 ** 30);
    const probe = cut.probe as ProbeResult;
    expect(probe.procedure).toBe("stopped");
    // The copy begins with the superblock: two filesystems answer to the root's UUID, and the boot takes either.
    const after = boots(cut)[1];
    if (probe.boot.outcome === "ssh") {
      // The old root, untouched, or a copy that had finished: the data set intact either way.
      expect([probe.root.device, probe.data.state]).toEqual([probe.root.which === "old" ? "/dev/sda2" : "/dev/mapper/sys-root", "intact"]);
      expect(after).toBe("vm:power-on after the fault/firmware/ssh");
    } else {
      // The half-made copy was taken for the root, and its fsck stopped the boot in the initramfs.
      expect(after).toBe("vm:power-on after the fault/firmware/initramfs-shell(fsck)");
      expect(cut.boots[1]!.evidence.join("\n")).toMatch(/The root filesystem on \/dev\/mapper\/sys-root requires a manual fsck/);
    }
    // The state after the cut is not a finished copy: the old root came up over a half copy fsck rejects, or the half copy stopped the boot.
    if (probe.boot.outcome === "ssh") expect(cut.facts.copyAfterCut).toMatchObject({ complete: false });
    expect(cut.facts.copyBytes).toBe(2 * 2 ** 30);
    expect(cut.judgement?.reasons[0]).toMatch(/^the predicted failure was observed: the cut fell inside the copy and stopped it/);
    expect(pc.details).toMatchObject({ stoppedProcedure: true, stopObservation: "QEMU exited" });
    expect(boots(cut)).toHaveLength(2);

    const pulled = report["pulled-disk"]!;
    expect(pulled.verdict, (pulled.judgement?.reasons ?? [pulled.error?.message]).join("\n")).toBe("pass");
    expect(fault(pulled, "pulled-disk").how).toBe("QMP device_del dev-sda");
    expect(pulled.probe).toMatchObject({ procedure: "stopped", boot: { outcome: "no-bootable-device" }, root: { which: "none" } });
    expect(boots(pulled)).toEqual(["vm:resume/saved-state/ssh", "vm:power-on after the fault/firmware/no-bootable-device", "vm:power-on with the disk plugged back/firmware/ssh"]);
    expect(pulled.boots[1]!.evidence.join("\n")).toMatch(/No bootable device/);
    expect(fault(pulled, "pulled-disk").details).toMatchObject({ stoppedProcedure: true, stopObservation: "disk sda is gone from the machine (QMP query-block)" });
    expect(pulled.final).toMatchObject({ root: { device: "/dev/sda2", fstype: "ext3" }, data: { intact: true }, lastBoot: { via: "firmware", outcome: "ssh", newBootProven: true } });
  });
});

describe("faults that need the rescue system", () => {
  it("missing initrd panics on the root mount, stale fstab ends in emergency mode; rescue brings both back to a firmware boot with the data intact", () => {
    const { report } = runs;

    const mi = report["missing-initrd"]!;
    expect(mi.verdict, (mi.judgement?.reasons ?? [mi.error?.message]).join("\n")).toBe("pass");
    expect(fault(mi, "missing-initrd").details.removed).toEqual([expect.stringMatching(/^\/boot\/initrd\.img-6\./)]);
    expect(boots(mi)).toEqual(["vm:resume/saved-state/ssh", "vm:reboot/firmware/kernel-panic(no-root)", "rescue:start/direct-kernel/ssh", "vm:start/firmware/ssh"]);
    expect(mi.boots[1]!.evidence.join("\n")).toMatch(/VFS: Unable to mount root fs/);
    expect(mi.boots[1]!.reached).toMatchObject({ firmware: true, grub: true, kernel: true, initramfs: false });
    expect(mi.facts.rescue).toMatchObject({ ...onTargetDisk(mi.facts.rescue), repairs: ["initramfs", "grub"], bootAfter: { outcome: "ssh" } });
    expect(mi.facts.root).toMatchObject({ device: "/dev/sda2", fstype: "ext3" });
    expect(intact(mi.facts.data)).toMatchObject({ intact: true, files: 204 });

    const sf = report["stale-fstab"]!;
    expect(sf.verdict, (sf.judgement?.reasons ?? [sf.error?.message]).join("\n")).toBe("pass");
    const stale = fault(sf, "stale-fstab");
    expect(stale.details.before).toMatch(/^LABEL=boot\s+\/boot\s/);
    const staleSpec = String(stale.details.after).split(/\s+/)[0]!;
    expect(staleSpec).toMatch(/^UUID=[0-9a-f-]{36}$/);
    expect(boots(sf)).toEqual(["vm:resume/saved-state/ssh", "vm:reboot/firmware/emergency-mode", "rescue:start/direct-kernel/ssh", "vm:start/firmware/ssh"]);
    // The one stale entry, rewritten to the UUID of the filesystem that is there.
    expect(sf.facts.fstabFixed).toEqual([expect.stringMatching(new RegExp(`^${staleSpec} -> UUID=[0-9a-f-]{36} \\(/boot\\)$`))]);
    expect(sf.boots[1]!.evidence.join("\n")).toMatch(/Timed out waiting for device|Dependency failed for boot\.mount/);
    expect(intact(sf.facts.data)).toMatchObject({ intact: true, files: 204 });
  });
});

describe("the rescue route's negative twin", () => {
  it("a rescue that reinstalls GRUB but never rebuilds the initramfs leaves a machine that panics on the root mount again", () => {
    const r = runs.report["missing-initrd-grub-only"]!;
    expect(r.verdict, (r.judgement?.reasons ?? [r.error?.message]).join("\n")).toBe("pass");
    expect(boots(r)).toEqual(["vm:resume/saved-state/ssh", "vm:reboot/firmware/kernel-panic(no-root)", "rescue:start/direct-kernel/ssh", "vm:start/firmware/kernel-panic(no-root)"]);
    // The wrong repair was really done: fstab checked, GRUB reinstalled on the machine's disk, no initramfs step.
    expect(r.facts.rescue).toMatchObject({ ...onTargetDisk(r.facts.rescue), repairs: ["fstab", "grub"], bootAfter: { outcome: "kernel-panic", detail: "no-root" } });
    expect(r.steps.map((s) => s.name)).not.toContain("rescue: rebuild the initramfs in a chroot");
    expect(r.boots[3]!.evidence.join("\n")).toMatch(/VFS: Unable to mount root fs/);
    expect(r.facts.unrepaired).toMatchObject({ outcome: "kernel-panic", detail: "no-root" });
  });
});

describe("dropped SSH", () => {
  it("after pivot_root no new SSH session opens; the serial console alone finishes the move, and the machine boots the LV", () => {
    const { report } = runs;
    const r = report["dropped-ssh"]!;
    expect(r.verdict, (r.judgement?.reasons ?? [r.error?.message]).join("\n")).toBe("pass");
    expect(fault(r, "dropped-ssh").observed).toEqual(["a new SSH session did not get through within 15 s"]);
    const names = r.steps.map((s) => s.name);
    expect(names.indexOf("fault: the network link goes down after pivot_root")).toBe(names.indexOf("mount the copy and pivot_root into it") + 1);
    // Log in, restart init and sshd, write, unmount, relabel, initramfs, GRUB, reboot: all typed on the console.
    expect(names.filter((n) => n.startsWith("console: "))).toHaveLength(8);
    expect(boots(r)).toEqual(["vm:resume/saved-state/ssh", "vm:reboot typed on the serial console/firmware/ssh"]);
    expect(r.facts.root).toMatchObject({ device: "/dev/mapper/sys-root", fstype: "ext3" });
    expect(intact(r.facts.data)).toMatchObject({ intact: true, files: 204 });
  });
});

describe("vmlab sweep", () => {
  it("root-to-lvm with a power cut before two steps (before the copy, after the relabel): one run of the procedure, a forked row each, with boot outcome, root and data", async () => {
    const out = join(reports, "sweep");
    const r = await vmlab(["sweep", "root-to-lvm", "--fault", "power-cut", "--at", "3,9", "--jobs", "2", "--report-dir", out]);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    const [d] = (await readdir(out)).filter((x) => x.startsWith("sweep-root-to-lvm-power-cut-"));
    const sweep = JSON.parse(await readFile(join(out, d!, "sweep.json"), "utf8")) as SweepResult;
    for (const row of sweep.rows) await keepReport(dirname(row.report));
    expect(sweep.rows.map((x) => [x.at, x.before, x.procedure, x.boot.outcome, x.root.which, x.root.device, x.data.state])).toEqual([
      // Before the copy: the LV holds nothing yet, the old root boots.
      [3, "dd /dev/sda2 to /dev/sys/root, fsck, resize2fs", "stopped", "ssh", "old", "/dev/sda2", "intact"],
      // After the relabel, only the LV answers to the root's UUID: it boots, initramfs and GRUB not yet redone.
      [9, "rebuild the initramfs", "stopped", "ssh", "new", "/dev/mapper/sys-root", "intact"],
    ]);
    // One run did the procedure and was checkpointed before steps 3 and 9; each row forked its step's checkpoint.
    expect(sweep.rows.map((x) => x.forked)).toEqual([true, true]);
    expect(sweep.recording).toMatchObject({ verdict: "pass" });
    const recorded = JSON.parse(await readFile(sweep.recording!.report, "utf8")) as ScenarioReport;
    expect(recorded.checkpoints?.map((c) => c.beforeStep.index)).toEqual([3, 9]);
    for (const row of sweep.rows) {
      const rep = JSON.parse(await readFile(row.report, "utf8")) as ScenarioReport;
      expect(rep.forkedFrom).toMatchObject({ scenario: "root-to-lvm", runDir: recorded.runDir, beforeStep: { index: row.at } });
    }
    // The printed table is the one written next to sweep.json.
    const table = await readFile(join(out, d!, "sweep.txt"), "utf8");
    expect(r.stdout).toContain(table.split("\n")[0]);
    expect(table).toMatch(/^3\s+dd \/dev\/sda2 to \/dev\/sys\/root, fsck, resize2fs\s+stopped\s+boots\s+old \/dev\/sda2\s+intact\s+not needed$/m);
  });
});
