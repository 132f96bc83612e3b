import { chmod, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dir, type DirectoryResult } from "tmp-promise";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostError, UsageError } from "../../src/errors.ts";
import { commandLine, findTool, installCommand, labPackages, requireTool, searchDirs, TOOLS, toolSpec } from "../../src/host/tools.ts";

describe("tool registry", () => {
  it("knows the package of each tool", () => {
    const pkg = Object.fromEntries(TOOLS.map((t) => [t.name, t.package]));
    expect(pkg).toMatchObject({
      "qemu-system-x86_64": "qemu-system-x86",
      "qemu-img": "qemu-utils",
      mmdebstrap: "mmdebstrap",
      sfdisk: "fdisk",
      "mkfs.ext2": "e2fsprogs",
      "mkfs.ext3": "e2fsprogs",
      "mkfs.ext4": "e2fsprogs",
      ssh: "openssh-client",
      "ssh-keygen": "openssh-client",
      "bios-256k.bin": "seabios",
    });
    expect(() => toolSpec("nope")).toThrow(UsageError);
  });

  it("installCommand names every package once", () => {
    const cmd = installCommand();
    expect(cmd).toMatch(/^apt-get update && apt-get install -y --no-install-recommends /);
    for (const t of TOOLS) expect(cmd.split(" ")).toContain(t.package);
    expect(labPackages()).toHaveLength(new Set(TOOLS.map((t) => t.package)).size);
    expect(installCommand(["qemu-utils"])).toBe("apt-get update && apt-get install -y --no-install-recommends qemu-utils");
  });

  it("commandLine quotes what the shell would split", () => {
    expect(commandLine("/usr/bin/qemu-img", ["info", "/tmp/a b.qcow2", "it's", ""])).toBe(`/usr/bin/qemu-img info '/tmp/a b.qcow2' 'it'\\''s' ''`);
  });
});

describe("findTool / requireTool", () => {
  let tmp: DirectoryResult;
  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true });
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it("finds every tool on this host, sbin ones even without sbin in PATH", () => {
    for (const t of TOOLS) expect(findTool(t.name), t.name).not.toBeNull();
    expect(findTool("sfdisk", { PATH: "/usr/bin:/bin" })).toMatch(/sbin\/sfdisk$/);
    expect(searchDirs({ PATH: "/a::relative:/usr/sbin" })).toEqual(["/a", "/usr/sbin", "/sbin"]);
  });

  it("reads PATH at call time", () => {
    const saved = process.env.PATH;
    try {
      process.env.PATH = tmp.path;
      expect(findTool("qemu-img")).toBeNull();
    } finally {
      process.env.PATH = saved;
    }
    expect(findTool("qemu-img")).not.toBeNull();
  });

  it("requireTool names the package and the install command", () => {
    const env = { PATH: tmp.path };
    expect(() => requireTool("qemu-system-x86_64", env)).toThrow(HostError);
    try {
      requireTool("qemu-system-x86_64", env);
    } catch (e) {
      const err = e as HostError;
      expect(err.message).toContain("qemu-system-x86");
      expect(err.hint).toBe("install it as root: apt-get update && apt-get install -y --no-install-recommends qemu-system-x86");
      expect(err.exitCode).toBe(2);
    }
  });

  it("VMLAB_QEMU overrides the qemu-system-x86_64 path", async () => {
    const fake = join(tmp.path, "my-qemu");
    await writeFile(fake, "#!/bin/sh\n");
    await chmod(fake, 0o755);
    expect(findTool("qemu-system-x86_64", { PATH: "/usr/bin", VMLAB_QEMU: fake })).toBe(fake);
    expect(findTool("qemu-system-x86_64", { PATH: "", VMLAB_QEMU: fake })).toBe(fake);
    const missing = join(tmp.path, "nope");
    expect(findTool("qemu-system-x86_64", { PATH: "/usr/bin", VMLAB_QEMU: missing })).toBeNull();
    expect(() => requireTool("qemu-system-x86_64", { PATH: "/usr/bin", VMLAB_QEMU: missing })).toThrow(/VMLAB_QEMU/);
  });

  it("ignores non-executable files", async () => {
    await writeFile(join(tmp.path, "qemu-img"), "not executable");
    await symlink("/usr/bin/ssh", join(tmp.path, "ssh"));
    expect(findTool("qemu-img", { PATH: tmp.path })).toBeNull();
    expect(findTool("ssh", { PATH: tmp.path })).toBe(join(tmp.path, "ssh"));
  });
});
