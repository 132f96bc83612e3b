/**
 * The fault library's pure parts (device-mapper error zones, fault names),
 * the rescue route's decisions (which root, which fstab lines), the sweep's
 * step plan and table, and bad input to `vmlab sweep` and `run --fault`.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { errorZoneTable, faultByName, FAULTS } from "../../src/faults/index.ts";
import { writtenBytes } from "../../src/faults/inject.ts";
import { chooseTarget, parseProbes, repairFstab, type Probe } from "../../src/rescue/index.ts";
import { loadScenario } from "../../src/scenario/registry.ts";
import { defaultBoundaries, parseBoundaries, planSteps, sweepTable, type SweepResult } from "../../src/suite/sweep.ts";
import { vmlab } from "../vm/helpers.ts";

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("device-mapper error zone", () => {
  it("cuts a linear LV around the zone, keeping offsets on the PV", () => {
    expect(errorZoneTable("0 6291456 linear 8:3 2048", 2097152, 131072)).toEqual([
      "0 2097152 linear 8:3 2048",
      "2097152 131072 error",
      "2228224 4063232 linear 8:3 2230272",
    ]);
  });

  it("spans two segments, and a zone at the very start", () => {
    const t = "0 100 linear 8:3 2048\n100 100 linear 8:17 0";
    expect(errorZoneTable(t, 50, 100)).toEqual(["0 50 linear 8:3 2048", "50 50 error", "100 50 error", "150 50 linear 8:17 50"]);
    expect(errorZoneTable("0 100 linear 8:3 0", 0, 10)).toEqual(["0 10 error", "10 90 linear 8:3 10"]);
  });

  it("refuses a zone past the end and a table that is not linear", () => {
    expect(() => errorZoneTable("0 100 linear 8:3 0", 95, 10)).toThrow(/does not fit a device of 100 sectors/);
    expect(() => errorZoneTable("0 100 striped 2 128 8:3 0 8:17 0", 0, 10)).toThrow(/cannot put an error zone into this device-mapper table line: 0 100 striped/);
  });
});

describe("fault names", () => {
  it("every fault the lab documents resolves; an unknown one is a usage error naming them all", () => {
    for (const f of Object.keys(FAULTS)) expect(faultByName(f)).toBe(f);
    let err: unknown;
    try {
      faultByName("power-failure");
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ exitCode: 2, message: 'unknown fault "power-failure"' });
    expect((err as { hint: string }).hint).toContain("power-cut");
  });
});

const probe = (p: Partial<Probe> & { device: string }): Probe => ({ fstype: "ext3", uuid: "", label: "", hasFstab: false, ...p });

describe("a fault after so many bytes written", () => {
  it("sums wr_bytes over every disk in a query-blockstats reply", () => {
    const reply = [
      { device: "", qdev: "/machine/peripheral/dev-sda/virtio-backend", "node-name": "sda-fmt", stats: { rd_bytes: 1 << 20, wr_bytes: 25165824, wr_operations: 3 } },
      { device: "", qdev: "/machine/peripheral/dev-sdb/virtio-backend", "node-name": "sdb-fmt", stats: { rd_bytes: 0, wr_bytes: 4096, wr_operations: 1 } },
      { device: "", "node-name": "empty", stats: {} },
    ];
    expect(writtenBytes(reply)).toBe(25165824 + 4096);
    expect(writtenBytes([])).toBe(0);
    expect(() => writtenBytes({ error: "x" })).toThrow(/did not return a list/);
  });

  it("power-cut cuts at 16 MiB of the copy, counted in bytes, not seconds", async () => {
    const s = await loadScenario("power-cut");
    expect(s.fault?.inject).toEqual({ fault: "power-cut", at: 3, afterWrittenBytes: 16 * 2 ** 20 });
  });
});

describe("rescue: finding the target", () => {
  it("parses the probe lines, skipping other output", () => {
    const out = "noise\nFS\t/dev/sda1\text2\tb-uuid\tboot\tgrub\tUUID=r-uuid\t0\nFS\t/dev/sda2\text3\tr-uuid\troot\t\t\t1\n";
    expect(parseProbes(out)).toEqual([
      { device: "/dev/sda1", fstype: "ext2", uuid: "b-uuid", label: "boot", grubDir: "grub", grubRoot: "UUID=r-uuid", hasFstab: false },
      { device: "/dev/sda2", fstype: "ext3", uuid: "r-uuid", label: "root", grubDir: undefined, grubRoot: undefined, hasFstab: true },
    ]);
  });

  it("takes the root grub.cfg boots, even when another copy of / exists (after a root → LVM copy)", () => {
    const found = [
      probe({ device: "/dev/sda1", uuid: "b", grubDir: "grub", grubRoot: "UUID=new" }),
      probe({ device: "/dev/sda2", uuid: "old", hasFstab: true }),
      probe({ device: "/dev/mapper/sys-root", uuid: "new", hasFstab: true }),
    ];
    const c = chooseTarget(found);
    expect(c.root.device).toBe("/dev/mapper/sys-root");
    expect(c.boot?.device).toBe("/dev/sda1");
    expect(c.reason).toContain("root=UUID=new");
  });

  it("falls back to the only root when grub.cfg names nothing there; refuses to guess between two", () => {
    const one = [probe({ device: "/dev/sda1", grubDir: "grub", grubRoot: "UUID=gone" }), probe({ device: "/dev/sda2", hasFstab: true })];
    expect(chooseTarget(one).root.device).toBe("/dev/sda2");
    const two = [probe({ device: "/dev/sda2", hasFstab: true }), probe({ device: "/dev/sdb1", hasFstab: true })];
    expect(() => chooseTarget(two)).toThrow(/cannot tell which root/);
    expect(() => chooseTarget([probe({ device: "/dev/sda1" })])).toThrow(/no root filesystem/);
  });

  it("rewrites only fstab lines that name no filesystem, to the UUID now mounted there", () => {
    const fstab = ["# /etc/fstab", "UUID=r / ext3 errors=remount-ro 0 1", "UUID=stale /boot ext2 defaults 0 2", "LABEL=SWAP none swap sw 0 0", "LABEL=gone /srv ext4 defaults 0 2"];
    const fx = repairFstab(fstab, { uuids: new Set(["r", "b"]), labels: new Set(["SWAP"]) }, { "/": "r", "/boot": "b" });
    expect(fx.fixed).toEqual(["UUID=stale -> UUID=b (/boot)"]);
    expect(fx.lines[2]).toBe("UUID=b\t/boot\text2\tdefaults\t0\t2");
    // No replacement known for /srv: kept as it was, for the admin to decide.
    expect(fx.lines[4]).toBe(fstab[4]);
    expect(fx.lines.slice(0, 2)).toEqual(fstab.slice(0, 2));
  });
});

describe("fault sweep: steps and boundaries", () => {
  it("plans root-to-lvm's steps without a machine, and sweeps up to the reboot", async () => {
    const plan = await planSteps(await loadScenario("root-to-lvm"));
    expect(plan.complete).toBe(true);
    expect(plan.steps[0]).toBe("create LV sys/root 3G");
    expect(plan.steps).toContain("mount the copy and pivot_root into it");
    const reboot = plan.steps.indexOf("reboot through firmware");
    expect(reboot).toBeGreaterThan(5);
    expect(defaultBoundaries(plan.steps)).toEqual(Array.from({ length: reboot + 1 }, (_, i) => i + 1));
  });

  it("parses step lists and ranges; out of range is a usage error with the real range", () => {
    expect(parseBoundaries("1,3,5-7", 10)).toEqual([1, 3, 5, 6, 7]);
    expect(parseBoundaries("11", 10)).toEqual([11]);
    expect(() => parseBoundaries("12", 10)).toThrow(/step 12 is out of range: this scenario has steps 1-10 \(and 11: after the last\)/);
    expect(() => parseBoundaries("0", 10)).toThrow(/out of range/);
    expect(() => parseBoundaries("3-2", 10)).toThrow(/out of range/);
    expect(() => parseBoundaries("two", 10)).toThrow(/bad step list/);
    // An incomplete plan cannot bound the list from above: the run says when a step is never reached.
    expect(parseBoundaries("12", 10, { complete: false })).toEqual([12]);
  });

  it("prints one row per boundary: boot outcome, root, data and rescue", () => {
    const r: SweepResult = {
      scenario: "root-to-lvm",
      fault: "power-cut",
      wallMs: 600_000,
      dir: "/x",
      rows: [
        { fault: "power-cut", at: 1, before: "create LV", procedure: "stopped", boot: { outcome: "ssh" }, root: { which: "old", device: "/dev/sda2" }, data: { state: "intact" }, verdict: "pass", report: "" },
        {
          fault: "power-cut",
          at: 9,
          before: "rebuild the initramfs",
          procedure: "stopped",
          boot: { outcome: "kernel-panic", detail: "no-root" },
          root: { which: "none" },
          data: { state: "unknown" },
          rescue: { boot: { outcome: "ssh" }, root: { which: "new", device: "/dev/mapper/sys-root" }, data: { state: "intact" } },
          verdict: "pass",
          report: "",
        },
      ],
    };
    const t = sweepTable(r);
    expect(t[0]).toMatch(/^step\s+fault before\s+procedure\s+firmware boot\s+root\s+data\s+rescue$/);
    expect(t[2]).toMatch(/^1\s+create LV\s+stopped\s+boots\s+old \/dev\/sda2\s+intact\s+not needed$/);
    expect(t[3]).toMatch(/^9\s+rebuild the initramfs\s+stopped\s+kernel-panic \(no-root\)\s+-\s+-\s+boots, new \/dev\/mapper\/sys-root, data intact$/);
    expect(t.at(-1)).toBe("root-to-lvm, fault power-cut: 2 runs in 600 s wall time");
  });
});

describe("the UEFI RAID1 sweep over both disks, as recorded (test/fixtures/sweeps/)", () => {
  const base = join(import.meta.dirname, "../fixtures/sweeps/root-to-mdraid1-uefi-pulled-disk-sda-sdb");
  const r = JSON.parse(readFileSync(`${base}.json`, "utf8")) as SweepResult;
  it("one row per boundary and disk, each forked from the one recording run; the table names the disk", () => {
    expect(r.rows.map((x) => `${x.at}${x.disk}`)).toEqual(Array.from({ length: 14 }, (_, i) => [`${i + 1}sda`, `${i + 1}sdb`]).flat());
    expect(r.rows.every((x) => x.forked && x.verdict === "pass" && x.fault === "pulled-disk")).toBe(true);
    expect(r.recording?.verdict).toBe("pass");
    const t = sweepTable(r);
    expect(t[0]).toMatch(/^step\s+disk pulled\s+fault before\s+procedure\s+firmware boot\s+root\s+data\s+rescue$/);
    expect(t.join("\n") + "\n").toBe(readFileSync(`${base}.txt`, "utf8"));
  });
  it("maps when the machine boots from either disk: from sda alone until the resync; without sda, OVMF's shell (no ESP on sdb yet), then GRUB that cannot go on; from either after the resync", () => {
    const at = (k: number, disk: string) => r.rows.find((x) => x.at === k && x.disk === disk)!;
    for (let k = 1; k <= 12; k++) {
      expect(at(k, "sdb")).toMatchObject({ boot: { outcome: "ssh" }, root: { which: "old", device: "/dev/sda3" }, data: { state: "intact" } });
      expect(at(k, "sda").boot).toMatchObject({ outcome: "uefi-shell", detail: "fallback" });
    }
    // GRUB went onto both ESPs for the arrays, before sda's partitions joined them: sda's GRUB finds no array, sdb's no /boot it can read.
    expect(at(13, "sdb").boot).toMatchObject({ outcome: "grub-rescue", detail: "rescue" });
    expect(at(13, "sda").boot.outcome).toBe("timeout");
    for (const d of ["sda", "sdb"]) expect(at(14, d)).toMatchObject({ boot: { outcome: "ssh" }, root: { which: "new", device: "/dev/md1" }, data: { state: "intact" } });
  });
  it("with sync after update-grub, row 13 without sda boots the new root; without sdb, sda's GRUB still finds no array", () => {
    const again = JSON.parse(readFileSync(`${base}-at-13-with-sync.json`, "utf8")) as SweepResult;
    expect(again.rows.map((x) => [x.at, x.disk, x.boot.outcome, x.boot.detail, x.root.which, x.root.device, x.data.state])).toEqual([
      [13, "sda", "ssh", undefined, "new", "/dev/md1", "intact"],
      [13, "sdb", "grub-rescue", "rescue", "none", undefined, "unknown"],
    ]);
  });
});

describe("vmlab sweep and run --fault: bad input", () => {
  it("an unknown fault: exit 2, the list of faults, no report directory", async () => {
    const reports = join(tmp.path, "s1");
    const r = await vmlab(["sweep", "root-to-lvm", "--fault", "power-failure", "--report-dir", reports]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown fault "power-failure"');
    expect(r.stderr).toContain("dropped-ssh, busy-root, missing-initrd, power-cut");
    expect(existsSync(reports)).toBe(false);
  });

  it("several disks go with a pulled-disk sweep only: exit 2, nothing started", async () => {
    const reports = join(tmp.path, "s-disks");
    for (const [args, message] of [
      [["sweep", "root-to-mdraid1", "--fault", "power-cut", "--disk", "sda,sdb", "--report-dir", reports], /--disk sda,sdb: several disks go with --fault pulled-disk/],
      [["sweep", "root-to-mdraid1", "--fault", "pulled-disk", "--disk", "sda,/dev/sdb", "--report-dir", reports], /name the lab's disks, like sda or sda,sdb/],
      [["run", "root-to-mdraid1", "--fault", "pulled-disk", "--at", "3", "--disk", "sda,sdb", "--report-dir", reports], /--disk takes one disk for vmlab run, not "sda,sdb"/],
    ] as const) {
      const r = await vmlab([...args]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(existsSync(reports)).toBe(false);
  });

  it("a step out of range: exit 2 with the scenario's range and how to list its steps", async () => {
    const reports = join(tmp.path, "s2");
    for (const args of [
      ["sweep", "root-to-lvm", "--fault", "power-cut", "--at", "3,40"],
      ["run", "root-to-lvm", "--fault", "power-cut", "--at", "40"],
      ["run", "root-to-lvm", "--fault", "power-cut", "--at", "0"],
    ]) {
      const r = await vmlab([...args, "--report-dir", reports]);
      expect(r.exitCode, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(/out of range: this scenario has steps 1-14 \(and 15: after the last\)/);
      expect(r.stderr).toContain("vmlab sweep root-to-lvm --fault power-cut --plan");
    }
    expect(existsSync(reports)).toBe(false);
  });

  it("--fault without --at, and a sweep without --fault: exit 2", async () => {
    expect((await vmlab(["run", "smoke", "--fault", "power-cut"])).exitCode).toBe(2);
    const r = await vmlab(["sweep", "smoke"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("needs --fault");
  });

  it("--after with --after-written, or a bad size: exit 2 before anything starts", async () => {
    const reports = join(tmp.path, "s3");
    const both = await vmlab(["run", "root-to-lvm", "--fault", "power-cut", "--at", "3", "--after", "4", "--after-written", "16M", "--report-dir", reports]);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain("--after and --after-written both say when the fault goes in");
    const bad = await vmlab(["sweep", "root-to-lvm", "--fault", "power-cut", "--at", "3", "--after-written", "lots", "--report-dir", reports]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/bad --after-written "lots"/);
    expect(existsSync(reports)).toBe(false);
  });

  it("--plan lists the numbered steps and marks the swept ones, without starting anything", async () => {
    const r = await vmlab(["sweep", "root-to-lvm", "--fault", "power-cut", "--plan"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^\*\s+1\s+create LV sys\/root 3G$/m);
    expect(r.stdout).toMatch(/^\s+12\s+verify \/ is sys-root/m);
    expect(r.stdout).toMatch(/^\*\s+11\s+reboot through firmware$/m);
  });
});
