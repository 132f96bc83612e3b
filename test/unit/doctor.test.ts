import { readFileSync } from "node:fs";
import { symlink } from "node:fs/promises";
import { basename, join } from "node:path";
import { dir, type DirectoryResult } from "tmp-promise";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { doctor, formatDoctor } from "../../src/host/doctor.ts";
import { findTool, TOOLS } from "../../src/host/tools.ts";
import { isDebianLike, planSetup, setup } from "../../src/host/setup.ts";

const hasVirtFlags = /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync("/proc/cpuinfo", "utf8"));

describe("doctor", () => {
  let tmp: DirectoryResult;
  const saved = { PATH: process.env.PATH, VMLAB_QEMU: process.env.VMLAB_QEMU, VMLAB_ACCEL: process.env.VMLAB_ACCEL };
  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true });
    delete process.env.VMLAB_QEMU;
    delete process.env.VMLAB_ACCEL;
  });
  afterEach(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await tmp.cleanup();
  });

  it("reports this host ready, with versions and the accelerator", async () => {
    const report = await doctor();
    expect(report.ready).toBe(true);
    expect(report.missingPackages).toEqual([]);
    expect(report.installCommand).toBeNull();
    const qemu = report.tools.find((t) => t.name === "qemu-system-x86_64")!;
    expect(qemu).toMatchObject({ package: "qemu-system-x86" });
    expect(qemu.version).toMatch(/^QEMU emulator version/);
    expect(report.tools.find((t) => t.name === "ssh")!.version).toMatch(/OpenSSH/);
    if (!hasVirtFlags) {
      expect(report.accel.accel).toBe("tcg");
      expect(report.accel.reason).toMatch(/vmx or svm/);
    }
    const text = formatDoctor(report);
    expect(text).toMatch(/^\s+tool\s+package/);
    expect(text).toContain("accelerator: ");
    expect(text).toMatch(/\nready$/);
  });

  it("reports not ready when qemu-system-x86_64 is not on PATH, naming qemu-system-x86", async () => {
    // A PATH with every command tool except qemu-system-x86_64.
    for (const t of TOOLS) {
      if (t.file || t.name === "qemu-system-x86_64") continue;
      const p = findTool(t.name)!;
      await symlink(p, join(tmp.path, basename(p)));
    }
    process.env.PATH = tmp.path;
    const report = await doctor();
    expect(report.ready).toBe(false);
    expect(report.tools.filter((t) => !t.path).map((t) => t.name)).toEqual(["qemu-system-x86_64"]);
    expect(report.missingPackages).toEqual(["qemu-system-x86"]);
    expect(report.installCommand).toBe("apt-get update && apt-get install -y --no-install-recommends qemu-system-x86");
    const text = formatDoctor(report);
    expect(text).toMatch(/MISSING\s+qemu-system-x86_64\s+qemu-system-x86/);
    expect(text).toContain("NOT ready: missing qemu-system-x86_64");
    expect(text).toContain("install as root: apt-get update && apt-get install -y --no-install-recommends qemu-system-x86");
  });
});

describe("setup", () => {
  const debian = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n';
  const mint = 'ID=linuxmint\nID_LIKE="ubuntu debian"\n';
  const fedora = 'ID=fedora\nID_LIKE="rhel centos"\n';

  it("recognises Debian, Ubuntu and derivatives", () => {
    expect(isDebianLike(debian)).toBe(true);
    expect(isDebianLike("ID=ubuntu\nID_LIKE=debian\n")).toBe(true);
    expect(isDebianLike(mint)).toBe(true);
    expect(isDebianLike(fedora)).toBe(false);
  });

  it("runs apt-get only as root on a Debian-like host and not in a dry run", () => {
    expect(planSetup({ dryRun: false, uid: 0, osRelease: debian }).run).toBe(true);
    expect(planSetup({ dryRun: true, uid: 0, osRelease: debian })).toMatchObject({ run: false, reason: /dry run/ });
    expect(planSetup({ dryRun: false, uid: 1000, osRelease: debian })).toMatchObject({ run: false, reason: /root/ });
    expect(planSetup({ dryRun: false, uid: 0, osRelease: fedora })).toMatchObject({ run: false, reason: /not a Debian/ });
    expect(planSetup({ dryRun: false, uid: 0, osRelease: null }).run).toBe(false);
  });

  it("a dry run returns the exact command with every package", async () => {
    const r = await setup({ dryRun: true });
    expect(r.ran).toBe(false);
    expect(r.command).toMatch(/^apt-get update && apt-get install -y --no-install-recommends /);
    for (const pkg of new Set(TOOLS.map((t) => t.package))) expect(r.command.split(" ")).toContain(pkg);
  });
});
