/**
 * Boot classification, driven by serial console logs in test/fixtures/console/.
 *
 * All fixtures are unedited serial output of real boots under QEMU 7.2 / TCG with
 * `-machine pc,graphics=off -nodefaults` (so SeaBIOS and GRUB's console output
 * reach ttyS0), SeaBIOS 1.16.2, GRUB 2.06-13+deb12u2 (core.img in the MBR gap),
 * Debian's linux 6.1.0-56-amd64 (6.1.192-2), except where noted:
 *  - no-bootable-device-*: a blank 1 MiB raw disk. `.debugcon.log` is SeaBIOS'
 *    debug port (isa-debugcon at 0x402) of the same boot.
 *  - stalled-no-boot-code: a 64 MiB raw disk with only an sfdisk partition table
 *    (0x55AA, zeroed boot code): SeaBIOS jumps to it and nothing more is printed.
 *  - timeout-empty-without-graphics-off: the blank disk without graphics=off:
 *    SeaBIOS prints nothing on the serial port then.
 *  - grub-rescue-*: GRUB core with prefix (hd0,msdos1)/boot/grub; partition 1
 *    with no filesystem / no partition table at all.
 *  - kernel-panic-no-initrd: grub.cfg without an initrd line (root=UUID= needs one).
 *  - kernel-panic-broken-init: an initrd whose /init is not executable.
 *  - initramfs-shell-missing-disk-driver: Debian initramfs-tools 0.142 scripts and
 *    busybox-static in a hand-assembled initrd without the disk driver
 *    (no udev: no "Starting systemd-udevd" line).
 *    timeout-initramfs-waiting-for-root: the same log cut before initramfs-tools gave up.
 *  - login-prompt-*, emergency-mode-*, initramfs-shell-root-uuid-gone: a Debian 12
 *    debootstrap (systemd 252, initrd from update-initramfs), disk on virtio-scsi as
 *    the lab attaches it, GRUB_TERMINAL="serial console", cmdline
 *    "console=ttyS0,115200 net.ifnames=0". Variants: a root-locked guest whose fstab
 *    mounts / again as xfs; a guest with a root password and an fstab entry for a
 *    missing UUID (systemd's 90 s device timeout); a guest with a `nofail` missing
 *    mount (5 s timeout), resume= pointing at a missing swap and panic=30, that
 *    still reaches login; grub.cfg's root=UUID= naming a filesystem that is gone.
 *
 * To add a recorded log: save it in test/fixtures/console/ and add one row to FIXTURES.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  classifyBoot,
  consoleLines,
  isTerminal,
  splitBoots,
  terminalOutcome,
  stalledAtHandover,
  type BootOutcome,
  type BootStages,
} from "../../src/boot/classify.ts";

const DIR = join(import.meta.dirname, "..", "fixtures", "console");
const read = (file: string) => readFileSync(join(DIR, file), "utf8");

type Stage = keyof BootStages;
/** file, expected outcome, expected detail (undefined: none), stages the log shows. */
const FIXTURES: [file: string, outcome: BootOutcome, detail: string | undefined, reached: Stage[]][] = [
  ["no-bootable-device-blank-disk.log", "no-bootable-device", undefined, ["firmware"]],
  ["no-bootable-device-blank-disk.debugcon.log", "no-bootable-device", undefined, ["firmware"]],
  ["timeout-empty-without-graphics-off.log", "timeout", "no-output", []],
  ["stalled-no-boot-code.log", "timeout", "firmware", ["firmware"]],
  ["grub-rescue-unknown-filesystem.log", "grub-rescue", "rescue", ["firmware", "grub"]],
  ["grub-rescue-no-such-partition.log", "grub-rescue", "rescue", ["firmware", "grub"]],
  ["kernel-panic-no-initrd.log", "kernel-panic", "no-root", ["firmware", "grub", "kernel"]],
  ["kernel-panic-broken-init.log", "kernel-panic", "no-init", ["firmware", "grub", "kernel", "initramfs"]],
  ["initramfs-shell-missing-disk-driver.log", "initramfs-shell", "no-root-device", ["firmware", "grub", "kernel", "initramfs"]],
  ["initramfs-shell-root-uuid-gone.log", "initramfs-shell", "no-root-device", ["firmware", "grub", "kernel", "initramfs"]],
  ["timeout-initramfs-waiting-for-root.log", "timeout", "initramfs", ["firmware", "grub", "kernel", "initramfs"]],
  ["emergency-mode-root-locked-bad-fstype.log", "emergency-mode", "root-locked", ["firmware", "grub", "kernel", "initramfs", "userspace"]],
  ["emergency-mode-missing-fstab-uuid.log", "emergency-mode", undefined, ["firmware", "grub", "kernel", "initramfs", "userspace"]],
  ["login-prompt-debian12.log", "login-prompt", undefined, ["firmware", "grub", "kernel", "initramfs", "userspace"]],
  ["login-prompt-nofail-resume-panic-param.log", "login-prompt", undefined, ["firmware", "grub", "kernel", "initramfs", "userspace"]],
];

/** Evidence each fixture must show (substrings of evidence lines, in order). */
const EVIDENCE: Record<string, string[]> = {
  "no-bootable-device-blank-disk.log": [
    "Boot failed: not a bootable disk",
    "Boot failed: could not read the boot disk",
    "No bootable device.",
  ],
  "grub-rescue-unknown-filesystem.log": ["error: unknown filesystem.", "grub rescue>"],
  "grub-rescue-no-such-partition.log": ["error: no such partition.", "grub rescue>"],
  "kernel-panic-no-initrd.log": [
    "No filesystem could mount root, tried:",
    "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
  ],
  "kernel-panic-broken-init.log": ["Failed to execute /init (error -8)", "Kernel panic - not syncing: No working init found."],
  "initramfs-shell-missing-disk-driver.log": [
    "Gave up waiting for root file system device.  Common problems:",
    "ALERT!  UUID=4c1f7e2a-9b3d-4e55-8a61-2f0c9d7b1e34 does not exist.  Dropping to a shell!",
    "BusyBox v1.35.0",
    "(initramfs)",
  ],
  "emergency-mode-root-locked-bad-fstype.log": [
    "[FAILED] Failed to mount mnt-bad.mount - /mnt/bad.",
    "[DEPEND] Dependency failed for loca…s.target - Local File Systems.",
    "You are in emergency mode.",
    "Cannot open access to console, the root account is locked.",
  ],
  "emergency-mode-missing-fstab-uuid.log": [
    "[ TIME ] Timed out waiting for device",
    "Dependency failed for",
    "You are in emergency mode.",
    "Give root password for maintenance",
  ],
  "login-prompt-debian12.log": ["Debian GNU/Linux 12 vmlab ttyS0", "vmlab login:"],
};

function expectInOrder(evidence: string[], wanted: string[]): void {
  let i = 0;
  for (const w of wanted) {
    const at = evidence.findIndex((l, j) => j >= i && l.includes(w));
    expect(at, `evidence should contain "${w}" in order:\n${evidence.join("\n")}`).toBeGreaterThanOrEqual(0);
    i = at + 1;
  }
}

describe("classifyBoot on recorded console logs", () => {
  it.each(FIXTURES)("%s → %s", (file, outcome, detail, reached) => {
    const log = read(file);
    const c = classifyBoot(log, { timedOut: !isTerminal(outcome) });
    expect(c.outcome).toBe(outcome);
    expect(c.detail).toBe(detail);
    const shown = (Object.keys(c.reached) as Stage[]).filter((s) => c.reached[s]);
    expect(shown).toEqual(reached);

    const lines = consoleLines(log);
    expect(c.evidence.length).toBeLessThanOrEqual(outcome === "timeout" ? 15 : 12);
    if (lines.length > 0) expect(c.evidence.length).toBeGreaterThan(0);
    for (const l of c.evidence) {
      expect(l).toBe(l.trim());
      expect(l).not.toMatch(/[\x00-\x1f]/);
      expect(lines).toContain(l);
    }
    if (EVIDENCE[file]) expectInOrder(c.evidence, EVIDENCE[file]);
  });

  it.each(FIXTURES)("%s: terminalOutcome fires only for failures, and never early with another answer", (file, outcome, detail) => {
    const log = read(file);
    const final = terminalOutcome(log);
    if (isTerminal(outcome)) {
      expect(final?.outcome).toBe(outcome);
      expect(final?.detail).toBe(detail);
    } else {
      expect(final).toBeNull();
    }
    // Replay the log as it grows, in uneven slices: any early answer must be the final one.
    for (let end = 0; end < log.length; end += 997) {
      const early = terminalOutcome(log.slice(0, end));
      if (early) {
        expect(early.outcome).toBe(outcome);
        // Emergency mode is decided when local-fs.target fails, before sulogin says the root account is locked.
        if (!(outcome === "emergency-mode" && early.detail === undefined)) expect(early.detail).toBe(detail);
      }
    }
  });

  it("timeout evidence is the last lines, repeats collapsed", () => {
    const c = classifyBoot(read("timeout-initramfs-waiting-for-root.log"), { timedOut: true });
    expect(c.evidence.at(-1)).toBe("Begin: Running /scripts/local-block ... done.");
    expect(c.evidence.filter((l) => l === c.evidence.at(-1))).toHaveLength(1);
    expect(c.evidence.length).toBeLessThanOrEqual(15);
  });

  it("decides an initramfs timeout as soon as initramfs-tools gives up, before the shell prompt", () => {
    const log = read("initramfs-shell-missing-disk-driver.log");
    const cut = log.slice(0, log.indexOf("ALERT!"));
    expect(terminalOutcome(cut)?.outcome).toBe("initramfs-shell");
  });

  it("decides emergency mode once local-fs.target failed, before the emergency prompt", () => {
    const log = read("emergency-mode-missing-fstab-uuid.log");
    const cut = log.slice(0, log.indexOf("You are in emergency mode"));
    const early = terminalOutcome(cut);
    expect(early?.outcome).toBe("emergency-mode");
    expectInOrder(early!.evidence, ["Timed out waiting for device", "Dependency failed for"]);
    // The 90 s of waiting for the device alone decide nothing. (On an 80-column console
    // systemd 252 shows "Job dev-disk-by\x2duuid-…tart running (1min 29s / 1min 30s)".)
    const waiting = log.slice(0, log.indexOf("Timed out waiting for device"));
    expect(waiting).toMatch(/Job dev-disk-by.*running \(1min 29s \/ 1min 30s\)/);
    expect(terminalOutcome(waiting)).toBeNull();
  });
});

describe("negative cases: words that do not make a failure", () => {
  it("a boot with panic= on the command line, a nofail mount that timed out and a missing resume device reaches login", () => {
    const log = read("login-prompt-nofail-resume-panic-param.log");
    const lines = consoleLines(log);
    // The fixture really has the traps in it.
    expect(lines.some((l) => /Kernel command line: .*panic=30/.test(l))).toBe(true);
    expect(lines.some((l) => /Gave up waiting for suspend\/resume device/.test(l))).toBe(true);
    expect(lines.some((l) => /Timed out waiting for device/.test(l))).toBe(true);
    expect(lines.some((l) => /Dependency failed for .*\/srv\/data/.test(l))).toBe(true);
    expect(classifyBoot(log).outcome).toBe("login-prompt");
  });

  it("'emergency' in a unit's name, failed non-critical units and GRUB errors do not count", () => {
    const log = [
      "error: file `/boot/grub/i386-pc/efi_gop.mod' not found.",
      "[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz root=UUID=x ro console=ttyS0 panic=10 oops=panic",
      "[  OK  ] Started emergency-notify.service - Tell the pager about emergency shells.",
      "[FAILED] Failed to start foo.service - Foo.",
      "[ TIME ] Timed out waiting for device dev-sdb1.device - /dev/sdb1.",
      "[DEPEND] Dependency failed for mnt-backup.mount - /mnt/backup.",
      "Gave up waiting for suspend/resume device",
      "",
      "Debian GNU/Linux 12 vmlab ttyS0",
      "",
      "vmlab login: ",
    ].join("\r\n");
    const c = classifyBoot(log);
    expect(c.outcome).toBe("login-prompt");
    expect(c.evidence).toEqual(["Debian GNU/Linux 12 vmlab ttyS0", "vmlab login:"]);
    expect(terminalOutcome(log)).toBeNull();
  });

  it("'Last login:' is not a getty prompt", () => {
    expect(classifyBoot("Last login: Tue Nov 21 05:58:01 2023 on ttyS0\r\n").outcome).toBe("timeout");
  });
});

describe("precedence", () => {
  const emergency = () => read("emergency-mode-root-locked-bad-fstype.log");

  it("ssh wins when sshd answered; a failure the log shows anyway is named in detail", () => {
    const ok = classifyBoot(read("login-prompt-debian12.log"), { sshAnswered: true });
    expect(ok).toMatchObject({ outcome: "ssh", evidence: ["Debian GNU/Linux 12 vmlab ttyS0", "vmlab login:"] });
    expect(ok.detail).toBeUndefined();
    const odd = classifyBoot(emergency(), { sshAnswered: true });
    expect(odd.outcome).toBe("ssh");
    expect(odd.detail).toBe("emergency-mode");
    expectInOrder(odd.evidence, ["You are in emergency mode."]);
    expect(classifyBoot("", { sshAnswered: true }).reached.userspace).toBe(true);
  });

  it("a failure beats a login prompt printed after it", () => {
    const log = emergency() + "\r\n\r\nDebian GNU/Linux 12 vmlab ttyS0\r\n\r\nvmlab login: ";
    expect(classifyBoot(log).outcome).toBe("emergency-mode");
  });

  it("the first failure is the cause: an initramfs shell that exits makes the kernel panic", () => {
    const log = [
      "Loading, please wait...",
      "ALERT!  UUID=1234 does not exist.  Dropping to a shell!",
      "(initramfs) exit",
      "[   40.100000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
    ].join("\n");
    expect(classifyBoot(log)).toMatchObject({ outcome: "initramfs-shell", detail: "no-root-device" });
  });

  it("only the last boot of a log counts", () => {
    const log = read("kernel-panic-no-initrd.log") + "\r\n" + read("login-prompt-debian12.log");
    expect(splitBoots(log)).toHaveLength(2);
    expect(classifyBoot(log).outcome).toBe("login-prompt");
    // Without firmware banners, the kernel banner separates boots.
    const direct = "[    0.000000] Linux version 6.1.0\nKernel panic - not syncing: VFS: Unable to mount root fs\n[    0.000000] Linux version 6.1.0\nvmlab login: ";
    expect(classifyBoot(direct).outcome).toBe("login-prompt");
  });
});

describe("details and partial lines", () => {
  it("kernel panic details", () => {
    const panic = (why: string) => classifyBoot(`[    1.0] Kernel panic - not syncing: ${why}\n`).detail;
    expect(panic("VFS: Unable to mount root fs on unknown-block(8,1)")).toBe("no-root");
    expect(panic("No working init found.  Try passing init= option to kernel.")).toBe("no-init");
    expect(panic("Attempted to kill init! exitcode=0x00000100")).toBe("no-init");
    expect(panic("Fatal exception")).toBe("other");
  });

  it("waits for the rest of a half-written panic line, but not for a prompt", () => {
    expect(terminalOutcome("[    1.795604] Kernel panic - not syncing: VFS: Unable to mo")).toBeNull();
    expect(terminalOutcome("[    1.795604] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n")?.detail).toBe("no-root");
    expect(terminalOutcome("GRUB loading.\r\nerror: unknown filesystem.\r\ngrub rescue> ")?.outcome).toBe("grub-rescue");
  });

  it("GRUB's normal-mode shell counts as grub-rescue, detail normal-shell", () => {
    const c = classifyBoot("\x1b[H\x1b[J                             GNU GRUB  version 2.06\r\n\r\n grub> ");
    expect(c).toMatchObject({ outcome: "grub-rescue", detail: "normal-shell" });
  });

  it("rescue.target counts as emergency mode, detail rescue", () => {
    const c = classifyBoot(
      "[  OK  ] Reached target rescue.target - Rescue Mode.\r\nYou are in rescue mode. After logging in, type \"journalctl -xb\" to view\r\n",
    );
    expect(c).toMatchObject({ outcome: "emergency-mode", detail: "rescue" });
  });

  it("strips escape codes and splits GRUB's cursor-addressed screen into lines", () => {
    const lines = consoleLines(read("kernel-panic-no-initrd.log"));
    expect(lines).toContain("Booting `Debian GNU/Linux'");
    expect(lines).toContain("GNU GRUB  version 2.06-13+deb12u2");
    expect(lines.every((l) => !/\x1b/.test(l))).toBe(true);
  });
});

describe("stalledAtHandover: silence after the firmware jumped to a disk", () => {
  it("a disk with a partition table but no boot code is no-bootable-device, detail no-boot-code", () => {
    const c = stalledAtHandover(read("stalled-no-boot-code.log"));
    expect(c).toMatchObject({ outcome: "no-bootable-device", detail: "no-boot-code", reached: { firmware: true, grub: false } });
    expect(c!.evidence[0]).toMatch(/SeaBIOS/);
    expect(c!.evidence).toContain("Booting from Hard Disk..");
  });

  it("not once GRUB's boot sector has spoken, nor for a boot that went further", () => {
    expect(stalledAtHandover("SeaBIOS (version 1.16.2)\r\nBooting from Hard Disk...\r\nGRUB loading.\r\n")).toBeNull();
    expect(stalledAtHandover(read("login-prompt-debian12.log"))).toBeNull();
    expect(stalledAtHandover(read("kernel-panic-no-initrd.log"))).toBeNull();
    expect(stalledAtHandover("")).toBeNull();
  });
});
