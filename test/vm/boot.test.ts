/**
 * The VM runtime and the boot classifier on real boots: a good cold boot of
 * the base image through SeaBIOS and GRUB, a reboot without /sbin/init, and a
 * blank disk under SeaBIOS. (A blank disk under OVMF is judged on its recorded
 * console log, test/fixtures/console/uefi-shell-blank-disk-ovmf.log; each UEFI
 * machine's own NVRAM is proven in test/vm/uefi.test.ts.)
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { classifyBoot } from "../../src/boot/classify.ts";
import { createImage, createOverlay } from "../../src/disk/qemu-img.ts";
import { chooseAccel } from "../../src/host/kvm.ts";
import { ensureImage, type BuiltImage } from "../../src/image/build.ts";
import { labKey } from "../../src/image/keys.ts";
import { rootInfo } from "../../src/procedures/pivot.ts";
import { loadRecipe } from "../../src/scenario/registry.ts";
import { Machine } from "../../src/vm/machine.ts";
import { SshCommandError } from "../../src/vm/ssh.ts";
import { DEFAULT_PROFILE, ensureWarmState } from "../../src/vm/warm.ts";
import { qemuPids } from "./helpers.ts";

let tmp: DirectoryResult;
let image: BuiltImage;
let key = "";
const machines: Machine[] = [];

async function machine(name: string, disk: string, format: "qcow2" | "raw" = "qcow2", incomingState?: string): Promise<Machine> {
  const m = new Machine({ name, runDir: tmp.path, disks: [{ path: disk, format, id: "sda" }], accel: await chooseAccel(), sshKey: key, incomingState });
  machines.push(m);
  return m;
}

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  image = await ensureImage(await loadRecipe("debian12-bios"));
  key = (await labKey()).privateKey;
});
afterEach(async () => {
  for (const m of machines.splice(0)) await m.kill();
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("booting real guests", () => {
  it("cold-boots the base image through SeaBIOS and GRUB to SSH, with / on sda2", async () => {
    const overlay = join(tmp.path, "good.qcow2");
    await createOverlay(overlay, image.disk, { backingFormat: "qcow2" });
    const m = await machine("good", overlay);
    const boot = await m.boot();
    expect(boot.via).toBe("firmware");
    expect(boot.outcome).toBe("ssh");
    expect(boot.reached).toMatchObject({ firmware: true, grub: true, kernel: true, initramfs: true, userspace: true });
    expect(await rootInfo(m)).toMatchObject({ device: "/dev/sda2", fstype: "ext3" });
    expect((await m.succeed("lsblk -dno NAME | sort")).split("\n").filter(Boolean)).toEqual(["sda"]);
    expect((await m.succeed("vgs --noheadings -o vg_name")).trim()).toBe("sys");

    // run/succeed/fail semantics: an error shows the command, exit code and output.
    const r = await m.run("echo out; echo err >&2; exit 3");
    expect(r).toMatchObject({ exitCode: 3, stdout: "out\n", stderr: "err\n" });
    const err = await m.succeed("ls /nonexistent").catch((e) => e);
    expect(err).toBeInstanceOf(SshCommandError);
    expect((err as SshCommandError).describe()).toMatch(/\$ ls \/nonexistent[\s\S]*exit code: 2[\s\S]*No such file/);
    expect((await m.fail("false")).exitCode).toBe(1);

    // QMP works, and the console log holds the whole boot.
    expect(await m.qmpExecute("query-status")).toMatchObject({ running: true, status: "running" });
    const log = await readFile(m.serialLog, "utf8");
    expect(classifyBoot(log, { sshAnswered: true }).outcome).toBe("ssh");

    // The serial console is a way in without SSH: log in as root with the lab password and leave a mark.
    const from = await m.logOffset();
    await m.type("\n");
    await waitFor(async () => /login:/.test(await m.consoleSince(from)));
    await m.type("root\n");
    await waitFor(async () => /Password:/.test(await m.consoleSince(from)));
    await m.type("vmlab\n");
    await waitFor(async () => /root@vmlab/.test(await m.consoleSince(from)));
    await m.type("touch /tmp/typed-on-console\n");
    await waitFor(async () => (await m.run("test -e /tmp/typed-on-console")).exitCode === 0);

    // Without /sbin/init the initramfs falls back to /bin/sh as PID 1: a root shell without a login. The lab
    // classifies it from the console as soon as the prompt shows, instead of waiting for a timeout.
    await m.succeed("rm /sbin/init");
    const broken = await m.reboot();
    console.log(`no /sbin/init: ${broken.outcome} (${broken.detail}) after ${(broken.durationMs / 1000).toFixed(1)} s\n${broken.evidence.join("\n")}`);
    expect([broken.via, broken.reason, broken.outcome, broken.detail]).toEqual(["firmware", "reboot", "root-shell", "init-fallback"]);
    expect(broken.evidence.join("\n")).toMatch(/Target filesystem doesn't have requested \/sbin\/init/);
    expect(broken.newBoot).toMatchObject({ banner: true, proven: true });

    // A power cut ends QEMU at once.
    const pid = m.pid!;
    await m.powerCut();
    expect(m.running).toBe(false);
    expect(await qemuPids()).not.toContain(pid);
  });

  it("a blank disk is classified as no bootable device", async () => {
    const blank = join(tmp.path, "blank.raw");
    await createImage(blank, { format: "raw", size: "64M" });
    const m = await machine("blank", blank, "raw");
    const boot = await m.boot({ timeoutMs: 60_000 });
    expect(boot.outcome).toBe("no-bootable-device");
    expect(boot.evidence.join("\n")).toMatch(/No bootable device/);
    expect(boot.reached.grub).toBe(false);
  });

  it("leaves no QEMU running", async () => {
    for (const m of machines.splice(0)) await m.kill();
    expect(await qemuPids()).toEqual([]);
  });
});

async function waitFor(cond: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 500));
  }
}
