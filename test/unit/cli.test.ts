/**
 * Bad input to the real `vmlab` command line: a clear message, exit code 2,
 * and nothing changed (no report directory, no disk file, no QEMU).
 */
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { findTool } from "../../src/host/tools.ts";
import { projectRoot } from "../../src/paths.ts";
import { vmlab } from "../vm/helpers.ts";
import { chooseAccel } from "../../src/host/kvm.ts";
import { expectationProblems, type Expectation } from "../../src/verdict/expect.ts";

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("vmlab command line: bad input", () => {
  it("unknown scenario name: exit 2, says so, writes no report", async () => {
    const reports = join(tmp.path, "r1");
    const r = await vmlab(["run", "root-to-lvn", "--report-dir", reports]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown scenario "root-to-lvn"');
    expect(r.stderr).toContain("vmlab list");
    expect(existsSync(reports)).toBe(false);
  });

  it("bad runbooks: exit 2 naming the file and line, nothing started, no report", async () => {
    const reports = join(tmp.path, "rb");
    const cases: [string, string, RegExp][] = [
      ["notes.txt", "just prose\n", /neither a Markdown runbook nor a shell script/],
      ["empty.md", "# Title\n\nOnly prose, and a ```yaml``` block:\n\n```yaml\na: 1\n```\n", /has no runnable block/],
      ["directive.md", "# T\n\n<!-- vmlab: consloe -->\n```sh\ntrue\n```\n", /directive\.md:3: unknown directive "consloe"/],
      ["key.md", "---\nimage: debian12-bios\nreboot: yes\n---\n```sh\ntrue\n```\n", /key\.md:2 \(front matter\): unknown key "reboot"/],
      ["image.md", "---\nimage: debian11-bios\n---\n```sh\ntrue\n```\n", /unknown image "debian11-bios"/],
      ["size.md", "---\ndisks: [8G, 8GB]\n---\n```sh\ntrue\n```\n", /bad disk size in `disks` "8GB"/],
      ["size.sh", "#!/bin/sh\n# vmlab: disks: [eight]\n# step: a\ntrue\n", /bad disk size in `disks` "eight"/],
    ];
    for (const [name, text, message] of cases) {
      const f = join(tmp.path, name);
      writeFileSync(f, text);
      const r = await vmlab(["rehearse", f, "--report-dir", reports]);
      expect(r.exitCode, `${name}: ${r.stderr}`).toBe(2);
      expect(r.stderr, name).toMatch(message);
      expect(existsSync(reports), name).toBe(false);
    }
    const missing = await vmlab(["rehearse", "no-such-runbook"]);
    expect([missing.exitCode, missing.stderr]).toEqual([2, expect.stringMatching(/no runbook "no-such-runbook" in .*runbooks.*root-to-lvm/s)]);
  });

  it("a scenario file that throws: exit 2 with the file and the error", async () => {
    const reports = join(tmp.path, "r2");
    const file = join(projectRoot, "test/fixtures/scenarios/throws.ts");
    const r = await vmlab(["run", file, "--report-dir", reports]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`scenario file ${file} failed to load`);
    expect(r.stderr).toContain("deliberate error while loading the scenario");
    expect(existsSync(reports)).toBe(false);
  });

  it("a bad size string: exit 2, names the input, creates no file", async () => {
    for (const size of ["8Gb", "-1G", ""]) {
      const path = join(tmp.path, `bad-${size || "empty"}.qcow2`);
      // "--" so that "-1G" reaches the size parser instead of being read as a flag.
      const r = await vmlab(["disk", "create", "--", path, size]);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toContain(`"${size}"`);
      expect(existsSync(path)).toBe(false);
    }
    const ok = join(tmp.path, "good.qcow2");
    const r = await vmlab(["disk", "create", ok, "200M"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("200M");
  });

  it("qemu-system-x86_64 missing from PATH: run and doctor exit 2 and name the Debian package", async () => {
    // A PATH with every tool the lab uses except qemu-system-x86_64.
    const bin = join(tmp.path, "bin");
    mkdirSync(bin);
    for (const t of ["node", "qemu-img", "mmdebstrap", "sfdisk", "mke2fs", "mkfs.ext2", "mkfs.ext3", "mkfs.ext4", "e2fsck", "ssh", "ssh-keygen", "pgrep"]) {
      const p = findTool(t);
      if (p) symlinkSync(p, join(bin, t));
    }
    const reports = join(tmp.path, "r3");
    const env = { PATH: bin, VMLAB_QEMU: "" };
    const run = await vmlab(["run", "root-to-lvm", "--report-dir", reports], env);
    expect(run.exitCode, run.stderr).toBe(2);
    expect(run.stderr).toContain("qemu-system-x86_64");
    expect(run.stderr).toContain("qemu-system-x86");
    expect(existsSync(reports)).toBe(false);
    const doc = await vmlab(["doctor"], env);
    expect(doc.exitCode).toBe(2);
    expect(doc.stdout).toContain("qemu-system-x86");
  });

  it("an unknown command or flag: exit 2", async () => {
    expect((await vmlab(["frobnicate"])).exitCode).toBe(2);
    expect((await vmlab(["run", "--no-such-flag", "root-to-lvm"])).exitCode).toBe(2);
  });

  it("a fault option without --fault is exit 2, never ignored, and nothing is written", async () => {
    const reports = join(tmp.path, "r4");
    for (const extra of [["--after-written", "lots"], ["--after-written", "16M"], ["--after", "3"], ["--rescue"], ["--at", "2"]]) {
      const r = await vmlab(["run", "smoke", ...extra, "--report-dir", reports]);
      expect(r.exitCode, `${extra.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`${extra[0]} needs --fault NAME --at K`);
      expect(existsSync(reports)).toBe(false);
    }
  });

  it("--stop-before takes one scenario and a step number, not a fault or --keep=on-failure: exit 2, nothing written", async () => {
    const reports = join(tmp.path, "r5");
    const cases: [string[], RegExp][] = [
      [["smoke", "--stop-before", "x"], /bad --stop-before "x"/],
      [["smoke", "--stop-before", "0"], /bad --stop-before "0"/],
      [["smoke", "smoke", "--stop-before", "2"], /needs exactly one scenario/],
      [["root-to-lvm", "--stop-before", "2", "--fault", "power-cut", "--at", "3"], /do not go together/],
      [["smoke", "--stop-before", "2", "--keep=on-failure"], /contradicts/],
    ];
    for (const [args, msg] of cases) {
      const r = await vmlab(["run", ...args, "--report-dir", reports]);
      expect(r.exitCode, `${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(existsSync(reports)).toBe(false);
    }
  });

  it("a twin without a declared failure, or one that would pass on a timeout: exit 2 at load time", async () => {
    const reports = join(tmp.path, "r5");
    const none = await vmlab(["run", join(projectRoot, "test/fixtures/scenarios/twin-without-expect.ts"), "--report-dir", reports]);
    expect(none.exitCode, none.stderr).toBe(2);
    expect(none.stderr).toContain("a twin must declare `expect.failure`");
    const vague = await vmlab(["run", join(projectRoot, "test/fixtures/scenarios/twin-expects-timeout.ts"), "--report-dir", reports]);
    expect(vague.exitCode, vague.stderr).toBe(2);
    expect(vague.stderr).toContain('a boot ending as "timeout" is not a specific failure');
    expect(existsSync(reports)).toBe(false);
  });

  it("VMLAB_ACCEL=kvm on a host where KVM does not work: exit 2, and no report directory", async (ctx) => {
    const { accel } = await chooseAccel({});
    // Where KVM works, forcing it is no error: the case does not apply and says so.
    if (accel === "kvm") ctx.skip();
    const reports = join(tmp.path, "r6");
    const r = await vmlab(["run", "smoke", "--report-dir", reports], { VMLAB_ACCEL: "kvm" });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain("VMLAB_ACCEL=kvm, but KVM does not work on this host");
    expect(existsSync(reports)).toBe(false);
  });

  it("list --json: every scenario declares its expectation; every twin a specific failure, never a timeout or a bare not-ssh", async () => {
    const r = await vmlab(["list", "--json"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as { name: string; kind: string; expect?: Expectation }[];
    expect(list.length).toBeGreaterThanOrEqual(24);
    for (const s of list) {
      expect(s.expect, s.name).toBeDefined();
      expect(expectationProblems(s.kind as "rehearsal" | "twin", s.expect), s.name).toEqual([]);
      if (s.kind !== "twin") {
        expect(s.expect!.final, s.name).toBeDefined();
        continue;
      }
      expect(s.expect!.failure?.length, s.name).toBeGreaterThan(0);
      for (const a of s.expect!.failure!) {
        expect(a.boot?.outcome, s.name).not.toBe("timeout");
        // A boot to ssh is a failure only with a root or a fact that says what is wrong.
        if (a.boot?.outcome === "ssh") expect(Boolean(a.root || a.facts?.length), `${s.name}: ${a.says}`).toBe(true);
        if (a.boot && a.boot.outcome !== "ssh") expect(a.boot.evidence, `${s.name}: ${a.says}`).toBeTruthy();
      }
    }
  });

  it("list shows the flagship scenario and its twin", async () => {
    const r = await vmlab(["list"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^root-to-lvm\s/m);
    expect(r.stdout).toMatch(/^root-to-lvm-no-relabel\s/m);
    expect(readdirSync(join(projectRoot, "scenarios")).length).toBeGreaterThanOrEqual(2);
  });
});
