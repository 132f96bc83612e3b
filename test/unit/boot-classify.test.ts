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
 *  - uefi-shell-blank-disk-ovmf: OVMF 2022.11 (Debian's ovmf 2022.11-6+deb12u2,
 *    OVMF_CODE_4M.fd with a fresh copy of OVMF_VARS_4M.fd) on a blank 1 GiB qcow2
 *    disk on virtio-scsi, the network card an e1000 as the lab gives UEFI
 *    machines: the disk's boot option fails, and OVMF falls back to its shell.
 *  - debian12-uefi (GPT, ESP, GRUB at \EFI\debian\grubx64.efi), recorded by
 *    `vmlab run uefi-nvram-lost uefi-nvram-lost-no-fallback`: a reboot through
 *    its NVRAM entry (`login-prompt-debian12-uefi-boot-entry`: BdsDxe starts
 *    Boot0003 "debian", GRUB, the kernel, login); a power-on with an empty NVRAM
 *    and GRUB at \EFI\BOOT\BOOTX64.EFI (`...-removable-path`: BdsDxe starts the
 *    disk's own option); the same without that file (`uefi-shell-debian12-nvram-lost`:
 *    the disk's option fails, Not Found, and OVMF starts its shell).
 *  - grub-rescue-entry-failed-uefi-raid1-before-resync: a row of `vmlab sweep
 *    root-to-mdraid1-uefi --fault pulled-disk --disk sda,sdb`, forked before
 *    sda's partitions joined the mirrors, sda pulled: OVMF starts sdb's entry,
 *    GRUB reads its menu but the entry cannot find /boot's filesystem, and after
 *    "Failed to boot both default and fallback entries." GRUB draws its menu
 *    again and waits (the log begins at the fork: no banner).
 *  - no-bootable-device-ovmf-secure-boot-blank-disk: Debian's OVMF with Secure
 *    Boot on (OVMF_CODE_4M.ms.fd, a copy of OVMF_VARS_4M.ms.fd; q35 with SMM,
 *    -global cfi.pflash01.secure=on) on a blank 1 GiB disk: Debian disables the
 *    shell under Secure Boot, so after the disk's option fails the shell's fails
 *    too ("Security Violation") and BdsDxe finds no bootable option. Recorded
 *    once with a QEMU command line of its own; the lab's machines are pc (i440fx)
 *    without SMM and boot OVMF without Secure Boot.
 *
 * To add a recorded log: save it in test/fixtures/console/ and add one row to FIXTURES.
 *
 * `*.fragment.log` files and the inline fragments further down are NOT recorded
 * boots: no VM could be started to record dracut, mkinitcpio, Alpine, NixOS or
 * OVMF guests. They are short console excerpts put together from the tools'
 * own wording, each quoting the source it comes from (file in the project's
 * repository, read at the commit noted), with the variable parts (UUIDs,
 * versions, timestamps) made up. Prompts are left without a trailing newline,
 * as a console shows them. Replace them by recordings when a lab run has them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  classifyBoot,
  consoleLines,
  isTerminal,
  rebootLoop,
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
  ["uefi-shell-blank-disk-ovmf.log", "uefi-shell", "fallback", ["firmware"]],
  ["uefi-shell-debian12-nvram-lost.log", "uefi-shell", "fallback", ["firmware"]],
  ["no-bootable-device-ovmf-secure-boot-blank-disk.log", "no-bootable-device", "uefi-no-boot-option", ["firmware"]],
  ["login-prompt-debian12-uefi-boot-entry.log", "login-prompt", undefined, ["firmware", "grub", "kernel", "initramfs", "userspace"]],
  ["login-prompt-debian12-uefi-removable-path.log", "login-prompt", undefined, ["firmware", "grub", "kernel", "initramfs", "userspace"]],
  ["grub-rescue-entry-failed-uefi-raid1-before-resync.log", "grub-rescue", "entry-failed", ["firmware", "grub"]],
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
  "grub-rescue-entry-failed-uefi-raid1-before-resync.log": [
    "error: no such device: a1028cd1-6a50-4221-94d6-773a28fa0010.",
    "error: unknown filesystem.",
    "error: you need to load the kernel first.",
    "Failed to boot both default and fallback entries.",
  ],
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
  "no-bootable-device-ovmf-secure-boot-blank-disk.log": [
    'BdsDxe: failed to load Boot0001 "UEFI QEMU QEMU HARDDISK " from PciRoot(0x0)/Pci(0x1,0x0)/Scsi(0x0,0x0): Not Found',
    'BdsDxe: failed to start Boot0002 "EFI Internal Shell"',
    "BdsDxe: No bootable option or device was found.",
  ],
  "uefi-shell-debian12-nvram-lost.log": [
    'BdsDxe: failed to load Boot0001 "UEFI QEMU QEMU HARDDISK " from PciRoot(0x0)/Pci(0x2,0x0)/Scsi(0x0,0x0): Not Found',
    'BdsDxe: starting Boot0002 "EFI Internal Shell"',
    "Shell>",
  ],
  "login-prompt-debian12-uefi-boot-entry.log": ["Debian GNU/Linux 12 vmlab ttyS0", "vmlab login:"],
  "login-prompt-debian12-uefi-removable-path.log": ["Debian GNU/Linux 12 vmlab ttyS0", "vmlab login:"],
  "uefi-shell-blank-disk-ovmf.log": [
    'BdsDxe: failed to load Boot0001 "UEFI QEMU QEMU HARDDISK " from PciRoot(0x0)/Pci(0x2,0x0)/Scsi(0x0,0x0): Not Found',
    'BdsDxe: starting Boot0002 "EFI Internal Shell"',
    "UEFI Interactive Shell v2.2",
    "Shell>",
  ],
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

  it("other initramfs' and firmware's everyday lines do not count: Alpine's ' * Mounting root: ok.', OVMF's boot-option lines", () => {
    const alpine = "Alpine Init 3.18.4-r0\r\n * Loading boot drivers: ok.\r\n * Mounting root: ok.\r\n\r\nWelcome to Alpine Linux 3.18\r\nKernel 6.1.55-0-virt on an x86_64 (/dev/ttyS0)\r\n\r\nvmlab login: ";
    expect(classifyBoot(alpine).outcome).toBe("login-prompt");
    expect(terminalOutcome(alpine)).toBeNull();
    const ovmf = 'BdsDxe: loading Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)\r\nBdsDxe: starting Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)\r\n';
    expect(terminalOutcome(ovmf)).toBeNull();
    expect(classifyBoot(ovmf)).toMatchObject({ outcome: "timeout", detail: "firmware" });
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

// ---------------------------------------------------------------- other initramfs, firmware, shells

/**
 * Fragment files (see the header: composed from the tools' wording, not recorded).
 *  - initramfs-shell-no-root-device-dracut-initqueue: dracut (github.com/dracutdevs/dracut at 5d2bda46,
 *    2024-03-21) without a root device, its initqueue giving up: modules.d/98dracut-systemd/dracut-initqueue.sh
 *    ("dracut-initqueue: timeout, still waiting for following initqueue hooks:", "…starting timeout
 *    scripts", emergency_shell "Could not boot."), 99base/dracut-dev-lib.sh wait_for_dev (the
 *    "devexists-…" hook and `warn "\"%s\" does not exist"`), 99base/dracut-lib.sh warn ("Warning: …"),
 *    dracut-emergency.service ("Dracut Emergency Shell"), 99base/rdsosreport.sh ('Generating
 *    "/run/initramfs/rdsosreport.txt"'), 98dracut-systemd/dracut-emergency.sh ("Entering emergency mode.
 *    Exit the shell to continue." …, PS1="$_name:${PWD}# "); systemd's "Running in initrd."
 *    (src/core/main.c).
 *  - initramfs-shell-no-root-device-dracut-systemd: the same failure when systemd in the initrd times out
 *    on the root device and reaches emergency.target (systemd 252+ status wording, as in the recorded
 *    emergency-mode fixtures; initrd units initrd-root-device.target, sysroot.mount, initrd-root-fs.target),
 *    "Warning: /dev/… does not exist" unquoted as RHEL 7/8 consoles show it, and dracut-emergency.sh's
 *    `exec sulogin -e` with a locked root (util-linux sulogin: "Press Enter for maintenance").
 *  - initramfs-shell-no-root-device-mkinitcpio: github.com/archlinux/mkinitcpio at fc8137c5
 *    (2026-04-29): init_functions poll_device ("Waiting 10 seconds for device … ..."), fsck_device
 *    (err "device '$1' not found. Skipping fsck."), default_mount_handler (":: mounting '$root' on real
 *    root", err "Failed to mount '$root' on real root", "You are now being dropped into an emergency
 *    shell."), launch_interactive_shell (PS1='[rootfs \W]\$ ', a busybox sh: "sh: can't access tty;
 *    job control turned off"); util-linux mount ("mount: /new_root: can't find UUID=…").
 *  - initramfs-shell-no-root-device-nixos: nixpkgs nixos/modules/system/boot/stage-1-init.sh
 *    ("<<< NixOS Stage 1 >>>", "waiting for device $device to appear...", "Timed out waiting for device
 *    $device, trying to mount anyway.", fail(): "An error occurred in stage 1 of the boot process, which
 *    must mount the root filesystem on `$targetRoot' and then start stage 2.  Press one of the following
 *    keys:"); busybox mount ("mount: mounting … failed: No such file or directory").
 *  - root-shell-init-fallback: Debian initramfs-tools 0.142+deb12u3 (initramfs-tools-core, file
 *    /usr/share/initramfs-tools/init: validate_init() = `run-init -n`, "Target filesystem doesn't have
 *    requested ${init}.", then /sbin/init /etc/init /bin/init /bin/sh), run-init's complaint
 *    ("run-init: /sbin/init: No such file or directory", as Ubuntu consoles show it), dash as PID 1 with no
 *    controlling tty ("/bin/sh: 0: can't access tty; job control turned off", prompt "# ").
 *  - uefi-shell-fallback: OVMF, github.com/tianocore/edk2 at c5aa7e7d: OvmfPkg/Library/PlatformBmPrintScLib/
 *    StatusCodeHandler.c (`%a: %a %s "%s" from %s` → "BdsDxe: loading Boot0003 "EFI Internal Shell" from …",
 *    `%a: failed to %a %s "%s" from %s: %r` → "…: Not Found"), NetworkPkg/UefiPxeBcDxe (">>Start PXE over
 *    IPv4", "PXE-E16: No valid offer received."), ShellPkg/Application/Shell/Shell.uni ("UEFI %s Shell
 *    v%d.%d" with "Interactive", "UEFI v%d.%02d (%s, 0x%08x)", "Press ESC in %d seconds to skip startup.nsh
 *    or any other key to continue.", "Shell> ").
 */
const FRAGMENTS: [file: string, outcome: BootOutcome, detail: string, reached: Stage[], evidence: string[]][] = [
  [
    "initramfs-shell-no-root-device-dracut-initqueue.fragment.log",
    "initramfs-shell",
    "no-root-device",
    ["initramfs"],
    ["Warning: Could not boot.", 'Warning: "/dev/disk/by-uuid/4c1f7e2a-9b3d-4e55-8a61-2f0c9d7b1e34" does not exist', 'Generating "/run/initramfs/rdsosreport.txt"', "Entering emergency mode. Exit the shell to continue.", "dracut:/#"],
  ],
  [
    "initramfs-shell-no-root-device-dracut-systemd.fragment.log",
    "initramfs-shell",
    "no-root-device",
    ["initramfs"],
    ["[ TIME ] Timed out waiting for device", "Dependency failed for initrd-root-device.target", "Reached target emergency.target - Emergency Mode.", "Dracut Emergency Shell", "does not exist"],
  ],
  [
    "initramfs-shell-no-root-device-mkinitcpio.fragment.log",
    "initramfs-shell",
    "no-root-device",
    ["initramfs"],
    ["Waiting 10 seconds for device", "ERROR: device 'UUID=4c1f7e2a-9b3d-4e55-8a61-2f0c9d7b1e34' not found. Skipping fsck.", "ERROR: Failed to mount", "You are now being dropped into an emergency shell.", "[rootfs ]#"],
  ],
  [
    "initramfs-shell-no-root-device-nixos.fragment.log",
    "initramfs-shell",
    "no-root-device",
    ["initramfs"],
    ["<<< NixOS Stage 1 >>>", "Timed out waiting for device /dev/disk/by-label/nixos, trying to mount anyway.", "An error occurred in stage 1 of the boot process", "r) to reboot immediately"],
  ],
  [
    "root-shell-init-fallback.fragment.log",
    "root-shell",
    "init-fallback",
    ["initramfs"],
    ["Target filesystem doesn't have requested /sbin/init.", "run-init: /bin/init: No such file or directory", "/bin/sh: 0: can't access tty; job control turned off", "#"],
  ],
  [
    "uefi-shell-fallback.fragment.log",
    "uefi-shell",
    "fallback",
    ["firmware"],
    ['BdsDxe: failed to load Boot0001 "UEFI QEMU HARDDISK QM00001 "', 'BdsDxe: starting Boot0003 "EFI Internal Shell"', "UEFI Interactive Shell v2.2", "Press ESC in 1 seconds to skip startup.nsh", "Shell>"],
  ],
];

/** Every early answer, replaying the log one character at a time, must be the final one. */
function expectStableEarlyAnswers(log: string, outcome: BootOutcome, detail: string | undefined, opts: { singleBoot?: boolean } = {}): number {
  let first = -1;
  for (let end = 0; end <= log.length; end++) {
    const early = terminalOutcome(log.slice(0, end), opts);
    if (!early) continue;
    if (first < 0) first = end;
    expect([early.outcome, early.detail], `answer at ${end}: ${JSON.stringify(log.slice(Math.max(0, end - 60), end))}`).toEqual([outcome, detail]);
  }
  return first;
}

describe("other initramfs families, OVMF and shells: fragments from the tools' own wording", () => {
  it.each(FRAGMENTS)("%s → %s (%s)", (file, outcome, detail, reached, wanted) => {
    const log = read(file);
    const c = classifyBoot(log);
    expect(c.outcome).toBe(outcome);
    expect(c.detail).toBe(detail);
    expect((Object.keys(c.reached) as Stage[]).filter((s) => c.reached[s])).toEqual(reached);
    const lines = consoleLines(log);
    expect(c.evidence.length).toBeLessThanOrEqual(12);
    for (const l of c.evidence) expect(lines).toContain(l);
    expectInOrder(c.evidence, wanted);
    expect(isTerminal(c.outcome)).toBe(true);
    expect(terminalOutcome(log)).toMatchObject({ outcome, detail });
    expect(expectStableEarlyAnswers(log, outcome, detail)).toBeGreaterThan(0);
  });

  it("dracut: decided once its emergency hooks named the missing device, not at 'Could not boot.'", () => {
    const log = read("initramfs-shell-no-root-device-dracut-initqueue.fragment.log");
    expect(terminalOutcome(log.slice(0, log.indexOf("Generating")))).toBeNull();
    expect(terminalOutcome(log.slice(0, log.indexOf("Entering emergency mode")))).toMatchObject({ outcome: "initramfs-shell", detail: "no-root-device" });
  });

  it("systemd's emergency.target inside a dracut initrd is an initramfs shell, not emergency mode", () => {
    const log = read("initramfs-shell-no-root-device-dracut-systemd.fragment.log");
    const at = log.indexOf("[  OK  ] Reached target emergency.target");
    const cut = log.slice(0, log.indexOf("\n", at) + 1);
    expect(terminalOutcome(cut)).toMatchObject({ outcome: "initramfs-shell", detail: "no-root-device" });
    // Its first systemd lines come before "Running in initrd.": still initramfs, not userspace.
    expect(classifyBoot(log).reached.userspace).toBe(false);
  });

  it("the prompt decides root-shell and uefi-shell the moment it is printed, without a newline", () => {
    for (const [file, outcome] of [
      ["root-shell-init-fallback.fragment.log", "root-shell"],
      ["uefi-shell-fallback.fragment.log", "uefi-shell"],
    ] as const) {
      const log = read(file);
      expect(log).not.toMatch(/\n$/);
      const beforePrompt = log.slice(0, log.lastIndexOf("\n") + 1);
      expect(terminalOutcome(beforePrompt), file).toBeNull();
      expect(terminalOutcome(log.trimEnd())?.outcome, file).toBe(outcome);
    }
  });

  describe("dracut (modules.d/99base/dracut-lib.sh, 98dracut-systemd/*.sh at dracutdevs/dracut 5d2bda46)", () => {
    it("rd.break: emergency_shell -n pre-mount \"Break before pre-mount\" → break, decided at rdsosreport, prompt pre-mount:/#", () => {
      // Without systemd: warn() prints "dracut Warning: $*", _emergency_shell runs /sbin/rdsosreport and says "Dropping to debug shell.".
      const log = [
        "dracut Warning: Break before pre-mount",
        "",
        'Generating "/run/initramfs/rdsosreport.txt"',
        'You might want to save "/run/initramfs/rdsosreport.txt" to a USB stick or /boot',
        "after mounting them and attach it to a bug report.",
        "",
        "Dropping to debug shell.",
        "",
        "pre-mount:/# ",
      ].join("\n");
      expect(classifyBoot(log)).toMatchObject({ outcome: "initramfs-shell", detail: "break" });
      expect(classifyBoot(log).evidence).toContain("pre-mount:/#");
      expectStableEarlyAnswers(log, "initramfs-shell", "break");
    });

    it("the dracut:/# prompt alone is decisive; rd.shell=0 ('Boot has failed') and die() ('dracut: FATAL:') too", () => {
      expect(terminalOutcome("dracut:/# ")).toMatchObject({ outcome: "initramfs-shell", detail: "dracut" });
      const noShell = 'Warning: Boot has failed. To debug this issue add "rd.shell rd.debug" to the kernel command line.\n';
      expect(classifyBoot(noShell)).toMatchObject({ outcome: "initramfs-shell", detail: "dracut" });
      // die(): echo "<24>dracut: FATAL: $*" > /dev/kmsg; …"Refusing to continue"; then halt.
      const fatal = "[    2.501000] dracut: FATAL: FIPS integrity test failed\n[    2.501100] dracut: Refusing to continue\n";
      expect(classifyBoot(fatal)).toMatchObject({ outcome: "initramfs-shell", detail: "dracut", evidence: ["[    2.501000] dracut: FATAL: FIPS integrity test failed", "[    2.501100] dracut: Refusing to continue"] });
    });

    it("a dracut boot with warnings that switches root and reaches login is a login prompt", () => {
      const log = [
        "[    1.102040] systemd[1]: Running in initrd.",
        "[    1.500000] dracut-pre-udev[201]: Warning: Kernel command line option 'rdblacklist' is deprecated, use 'rd.driver.blacklist' instead.",
        "[  OK  ] Reached target initrd-switch-root.target - Switch Root.",
        "         Starting initrd-switch-root.service - Switch Root...",
        "[    3.000000] systemd[1]: Switching root.",
        "[  OK  ] Started emergency-notify.service - Tell the pager about emergency shells.",
        "",
        "vmlab login: ",
      ].join("\n");
      expect(classifyBoot(log)).toMatchObject({ outcome: "login-prompt", reached: { initramfs: true, userspace: true } });
      expect(terminalOutcome(log)).toBeNull();
    });

    it("after the switch to the real root, emergency.target is systemd's emergency mode again", () => {
      const log = [
        "[    1.102040] systemd[1]: Running in initrd.",
        "[    3.000000] systemd[1]: Switching root.",
        "[DEPEND] Dependency failed for local-fs.target - Local File Systems.",
        "[  OK  ] Reached target emergency.target - Emergency Mode.",
        'You are in emergency mode. After logging in, type "journalctl -xb" to view',
      ].join("\n");
      expect(classifyBoot(log).outcome).toBe("emergency-mode");
    });
  });

  it("a systemd initrd that is not dracut's (mkinitcpio's systemd hook): initramfs-shell, the cause or systemd-initrd", () => {
    // systemd's own emergency.service in the initrd (sulogin-shell.c print_mode(), util-linux sulogin).
    const mount = [
      "[    1.102040] systemd[1]: Running in initrd.",
      "[FAILED] Failed to mount sysroot.mount - /sysroot.",
      "[DEPEND] Dependency failed for initrd-root-fs.target - Initrd Root File System.",
      "[  OK  ] Reached target emergency.target - Emergency Mode.",
      'You are in emergency mode. After logging in, type "journalctl -xb" to view',
      "Cannot open access to console, the root account is locked.",
    ].join("\r\n");
    expect(classifyBoot(mount)).toMatchObject({ outcome: "initramfs-shell", detail: "mount-failed" });
    const other = [
      "[    1.102040] systemd[1]: Running in initrd.",
      "[FAILED] Failed to start initrd-switch-root.service - Switch Root.",
      "[  OK  ] Reached target emergency.target - Emergency Mode.",
    ].join("\r\n");
    expect(classifyBoot(other)).toMatchObject({ outcome: "initramfs-shell", detail: "systemd-initrd" });
  });

  describe("mkinitcpio (init, init_functions at archlinux/mkinitcpio fc8137c5)", () => {
    it("init falls into launch_interactive_shell --exec: 'Root device mounted successfully, but /sbin/init does not exist.' → no-init", () => {
      const log = [
        ":: mounting '/dev/vda2' on real root",
        "ERROR: Root device mounted successfully, but /sbin/init does not exist.",
        "Bailing out, you are on your own. Good luck.",
        "",
        "sh: can't access tty; job control turned off",
        "[rootfs /]# ",
      ].join("\n");
      expect(classifyBoot(log)).toMatchObject({ outcome: "initramfs-shell", detail: "no-init" });
      expectStableEarlyAnswers(log, "initramfs-shell", "no-init");
    });

    it("'ERROR: Failed to mount the real root device.' → mount-failed; the [rootfs ]# prompt alone → mkinitcpio", () => {
      const log = "ERROR: Failed to mount the real root device.\nBailing out, you are on your own. Good luck.\n\n[rootfs ]# ";
      expect(classifyBoot(log)).toMatchObject({ outcome: "initramfs-shell", detail: "mount-failed" });
      expect(terminalOutcome("[rootfs ]# ")).toMatchObject({ outcome: "initramfs-shell", detail: "mkinitcpio" });
    });

    it("break=premount → break", () => {
      const log = ":: Pre-mount break requested, type 'exit' to resume operation\nsh: can't access tty; job control turned off\n[rootfs ]# ";
      expect(classifyBoot(log)).toMatchObject({ outcome: "initramfs-shell", detail: "break" });
    });
  });

  describe("Alpine mkinitfs (initramfs-init.in at alpinelinux/mkinitfs cc4954bc, and before 4b86d284)", () => {
    it("before 2025-11: eend's \"failed.\" then 'initramfs emergency recovery shell launched' → mount-failed", () => {
      // ebegin: echo -n " * $last_emsg: "; eend: echo "failed. $*"; then the recovery shell (busybox sh, prompt "~ #").
      const log = "Alpine Init 3.18.4-r0\n * Mounting root: failed. \ninitramfs emergency recovery shell launched. Type 'exit' to continue boot\nsh: can't access tty; job control turned off\n~ # ";
      expect(classifyBoot(log)).toMatchObject({ outcome: "initramfs-shell", detail: "mount-failed" });
      expect(classifyBoot(log).evidence).toEqual([
        "Alpine Init 3.18.4-r0",
        "* Mounting root: failed.",
        "initramfs emergency recovery shell launched. Type 'exit' to continue boot",
        "sh: can't access tty; job control turned off",
        "~ #",
      ]);
    });

    it("since 2025-11: recovery_shell() 'Launching initramfs emergency recovery shell.' → no-init or alpine", () => {
      const noInit = "/sbin/init not found in new root\nLaunching initramfs emergency recovery shell.\nType exit to continue boot.\n~ # ";
      expect(classifyBoot(noInit)).toMatchObject({ outcome: "initramfs-shell", detail: "no-init" });
      const oldNoInit = "/sbin/init not found in new root. Launching emergency recovery shell\nType exit to continue boot.\n";
      expect(classifyBoot(oldNoInit)).toMatchObject({ outcome: "initramfs-shell", detail: "no-init" });
      const media = "Alpine Init 3.20.0-r0\n * Mounting boot media: failed. \nLaunching initramfs emergency recovery shell.\n\n/ # ";
      expect(classifyBoot(media)).toMatchObject({ outcome: "initramfs-shell", detail: "alpine" });
    });
  });

  describe("NixOS stage 1 (nixos/modules/system/boot/stage-1-init.sh)", () => {
    it("stage 2's init missing → no-init; an fsck failure → fsck", () => {
      const noInit = "<<< NixOS Stage 1 >>>\nstage 2 init script (/mnt-root//init) not found\n\nAn error occurred in stage 1 of the boot process, which must mount the\nroot filesystem on `/mnt-root' and then start stage 2.  Press one\nof the following keys:\n";
      expect(classifyBoot(noInit)).toMatchObject({ outcome: "initramfs-shell", detail: "no-init" });
      const fsck = "<<< NixOS Stage 1 >>>\nchecking /dev/vda1...\n/dev/vda1 has unrepaired errors, please fix them manually.\n\nAn error occurred in stage 1 of the boot process, which must mount the\n";
      expect(classifyBoot(fsck)).toMatchObject({ outcome: "initramfs-shell", detail: "fsck" });
    });
  });

  describe("root-shell: a root shell with no login", () => {
    it("the kernel tried /sbin/init, /etc/init, /bin/init and ran /bin/sh (bash): kernel-fallback, decided at sh-5.2#", () => {
      // init/main.c run_init_process(): pr_info("Run %s as init process\n"); bash with no controlling tty.
      const log = [
        "[    1.901000] Run /sbin/init as init process",
        "[    1.902000] Run /etc/init as init process",
        "[    1.903000] Run /bin/init as init process",
        "[    1.904000] Run /bin/sh as init process",
        "sh: cannot set terminal process group (-1): Inappropriate ioctl for device",
        "sh: no job control in this shell",
        "sh-5.2# ",
      ].join("\r\n");
      const c = classifyBoot(log);
      expect(c).toMatchObject({ outcome: "root-shell", detail: "kernel-fallback" });
      expectInOrder(c.evidence, ["Run /sbin/init as init process", "Run /bin/sh as init process", "sh: no job control in this shell", "sh-5.2#"]);
      expect(terminalOutcome(log.slice(0, log.lastIndexOf("\n") + 1))).toBeNull();
      expect(terminalOutcome(log)).toMatchObject({ outcome: "root-shell", detail: "kernel-fallback" });
    });

    it("init=/bin/sh on the command line (initramfs-tools execs it from the target): init-param", () => {
      const log = [
        "[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)",
        "[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-56-amd64 root=UUID=4c1f7e2a-9b3d-4e55-8a61-2f0c9d7b1e34 ro console=ttyS0,115200 init=/bin/sh",
        "[    0.010000] Kernel command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-56-amd64 root=UUID=4c1f7e2a-9b3d-4e55-8a61-2f0c9d7b1e34 ro console=ttyS0,115200 init=/bin/sh",
        "[    1.500000] Run /init as init process",
        "Loading, please wait...",
        "Begin: Running /scripts/init-bottom ... done.",
        "# ",
      ].join("\r\n");
      expect(classifyBoot(log)).toMatchObject({ outcome: "root-shell", detail: "init-param" });
    });

    it("a bare # decides nothing without a fallback banner before it in the same boot", () => {
      const log = "[    0.000000] Linux version 6.1.0-56-amd64\r\nBegin: Running /scripts/init-bottom ... done.\r\n#\r\n# ";
      expect(classifyBoot(log).outcome).toBe("timeout");
      expect(terminalOutcome(log)).toBeNull();
      expect(terminalOutcome("# ")).toBeNull();
      expect(terminalOutcome("~ # ")).toBeNull();
      // A banner from an earlier boot does not count.
      const earlier = "[    0.000000] Linux version 6.1.0\r\nTarget filesystem doesn't have requested /sbin/init.\r\n[    0.000000] Linux version 6.1.0\r\n# ";
      expect(terminalOutcome(earlier)).toBeNull();
      // With the banner, the same bare prompt is decisive, printed or not yet followed by a newline.
      expect(terminalOutcome("Target filesystem doesn't have requested /sbin/init.\r\n# ")).toMatchObject({ outcome: "root-shell", detail: "init-fallback" });
      expect(terminalOutcome("/bin/sh: can't access tty; job control turned off\r\n~ # ")).toMatchObject({ outcome: "root-shell", detail: "other" });
    });

    it("'Target filesystem doesn't have requested' alone is no failure: the fallback may find /sbin/init", () => {
      // init=/sbin/nonesuch: initramfs-tools says so, falls back to /sbin/init, systemd boots.
      const log = [
        "Begin: Running /scripts/init-bottom ... done.",
        "Target filesystem doesn't have requested /sbin/nonesuch.",
        "[    3.500000] systemd[1]: systemd 252.39-1~deb12u2 running in system mode",
        "Welcome to Debian GNU/Linux 12 (bookworm)!",
        "",
        "Debian GNU/Linux 12 vmlab ttyS0",
        "",
        "vmlab login: ",
      ].join("\r\n");
      expect(classifyBoot(log).outcome).toBe("login-prompt");
      expect(terminalOutcome(log)).toBeNull();
    });

    it("no /bin/sh in the target either: initramfs-tools panics 'No init found. Try passing init= bootarg.' → initramfs-shell, no-init", () => {
      const log = "Target filesystem doesn't have requested /sbin/init.\nNo init found. Try passing init= bootarg.\n\n\nBusyBox v1.35.0 (Debian 1:1.35.0-4+b3) built-in shell (ash)\nEnter 'help' for a list of built-in commands.\n\n(initramfs) ";
      expect(classifyBoot(log)).toMatchObject({ outcome: "initramfs-shell", detail: "no-init" });
    });

    it("bash's sh-5.2# is a root shell without login even with no banner", () => {
      expect(terminalOutcome("sh-5.2# ")).toMatchObject({ outcome: "root-shell", detail: "other" });
      expect(terminalOutcome("bash-5.2# ")?.outcome).toBe("root-shell");
    });
  });

  describe("kernel and runit wording", () => {
    it("pre-3.x kernels: 'No init found.  Try passing init= option to kernel.' → kernel-panic, no-init", () => {
      const c = classifyBoot("Kernel panic - not syncing: No init found.  Try passing init= option to kernel.\n");
      expect(c).toMatchObject({ outcome: "kernel-panic", detail: "no-init" });
    });

    it("Void's runit stage 1 (void-runit: functions emergency_shell()) → emergency-mode, runit", () => {
      const log = "=> Mounting rootfs read-write...\nmount: /: cannot remount /dev/vda2 read-write, is write-protected.\n\nCannot continue due to errors above, starting emergency shell.\nWhen ready type exit to continue booting.\n";
      expect(classifyBoot(log)).toMatchObject({ outcome: "emergency-mode", detail: "runit" });
    });
  });

  describe("OVMF (edk2 OvmfPkg, ShellPkg at tianocore/edk2 c5aa7e7d)", () => {
    it("PlatformBootManagerUnableToBoot(): 'BdsDxe: No bootable option or device was found.' → no-bootable-device, uefi-no-boot-option", () => {
      const log = [
        'BdsDxe: failed to load Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0): Not Found',
        "BdsDxe: No bootable option or device was found.",
        "BdsDxe: Press any key to enter the Boot Manager Menu.",
        "",
      ].join("\r\n");
      const c = classifyBoot(log);
      expect(c).toMatchObject({ outcome: "no-bootable-device", detail: "uefi-no-boot-option", reached: { firmware: true } });
      expect(c.evidence).toEqual([
        'BdsDxe: failed to load Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0): Not Found',
        "BdsDxe: No bootable option or device was found.",
        "BdsDxe: Press any key to enter the Boot Manager Menu.",
      ]);
      // PcdBootRestrictToFirmware builds say it shorter.
      expect(classifyBoot("BdsDxe: No bootable option was found.\r\n").detail).toBe("uefi-no-boot-option");
    });

    it("a boot option that fails before another one boots is no failure", () => {
      const log = [
        'BdsDxe: failed to load Boot0001 "UEFI QEMU DVD-ROM QM00003 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Secondary,Master,0x0): Not Found',
        'BdsDxe: loading Boot0002 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)',
        'BdsDxe: starting Boot0002 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)',
        "Welcome to GRUB!",
        "EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path",
        "[    0.000000] Linux version 6.1.0-56-amd64",
        "Debian GNU/Linux 12 vmlab ttyS0",
        "vmlab login: ",
      ].join("\r\n");
      expect(splitBoots(log)).toHaveLength(1);
      expect(classifyBoot(log)).toMatchObject({ outcome: "login-prompt", reached: { firmware: true, grub: true, kernel: true, userspace: true } });
    });

    it("the UEFI shell's banner is not decisive: a startup.nsh may boot the OS, echoing its lines after the prompt", () => {
      const log = [
        'BdsDxe: loading Boot0003 "EFI Internal Shell" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1)',
        "UEFI Interactive Shell v2.2",
        "EDK II",
        "UEFI v2.70 (EDK II, 0x00010000)",
        "Press ESC in 1 seconds to skip startup.nsh or any other key to continue.",
        "Shell> fs0:",
        "FS0:\\> \\EFI\\debian\\grubx64.efi",
        "Welcome to GRUB!",
      ].join("\r\n");
      expect(classifyBoot(log).outcome).toBe("timeout");
      expect(terminalOutcome(log)).toBeNull();
      // The prompt alone on its line, once the script is done, is the shell waiting.
      expect(terminalOutcome(log.replace("Welcome to GRUB!", "FS0:\\> "))).toMatchObject({ outcome: "uefi-shell", detail: "direct" });
    });

    it("GRUB EFI's rescue prompt is grub-rescue, decided without a newline", () => {
      const log = [
        'BdsDxe: loading Boot0001 "debian" from HD(1,GPT,0b9e8d2c-2f0b-4e1a-9f62-4e0c3f0a1b2c,0x800,0x100000)/\\EFI\\debian\\shimx64.efi',
        'BdsDxe: starting Boot0001 "debian" from HD(1,GPT,0b9e8d2c-2f0b-4e1a-9f62-4e0c3f0a1b2c,0x800,0x100000)/\\EFI\\debian\\shimx64.efi',
        "Welcome to GRUB!",
        "",
        "error: disk `lvmid/Rk1lQd-0000-0000-0000-0000-0000-000000/Zx9000-0000-0000-0000-0000-0000-000000' not found.",
        "Entering rescue mode...",
        "grub rescue> ",
      ].join("\r\n");
      expect(terminalOutcome(log)).toMatchObject({ outcome: "grub-rescue", detail: "rescue" });
      expect(classifyBoot(log).evidence).toEqual([
        "error: disk `lvmid/Rk1lQd-0000-0000-0000-0000-0000-000000/Zx9000-0000-0000-0000-0000-0000-000000' not found.",
        "Entering rescue mode...",
        "grub rescue>",
      ]);
    });

    it("splitBoots: an OVMF boot starts at the BdsDxe line after a kernel ran, or at a boot option this boot already loaded", () => {
      const boot = (n: number) =>
        [
          'BdsDxe: loading Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)',
          'BdsDxe: starting Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)',
          "Welcome to GRUB!",
          `[    0.000000] Linux version 6.1.0-56-amd64 (boot ${n})`,
        ].join("\r\n");
      const twoKernels = `${boot(1)}\r\n[    5.0] reboot: Restarting system\r\n${boot(2)}\r\nvmlab login: `;
      const boots = splitBoots(twoKernels);
      expect(boots).toHaveLength(2);
      expect(boots[1][0]).toMatch(/^BdsDxe: loading Boot0001/);
      expect(boots[1]).toContain("[    0.000000] Linux version 6.1.0-56-amd64 (boot 2)");
      expect(classifyBoot(twoKernels).outcome).toBe("login-prompt");
      // A reset before any kernel: the same Boot#### loaded again.
      const shellThenReset = `${read("uefi-shell-fallback.fragment.log")}\r\n${boot(3)}\r\n`;
      expect(splitBoots(shellThenReset)).toHaveLength(2);
      expect(classifyBoot(shellThenReset).outcome).toBe("timeout");
      // The fall-through in one boot (Boot0001, Boot0002, Boot0003) is one boot.
      expect(splitBoots(read("uefi-shell-fallback.fragment.log"))).toHaveLength(1);
      // OVMF's debug log banner (OvmfPkg/Sec/SecMain.c) starts a boot too.
      expect(splitBoots("SecCoreStartupWithStack(0xFFFCC000, 0x820000)\nBdsDxe: loading Boot0001 \"x\" from y\nSecCoreStartupWithStack(0xFFFCC000, 0x820000)\n")).toHaveLength(2);
    });
  });
});

describe("reboot-loop: a guest that restarts by itself, over and over", () => {
  const seabios = "SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n\r\niPXE (https://ipxe.org) 00:03.0 CA00 PCI2.10 PnP PMM+7EFCAE00+7EF0AE00 CA00\r\n\r\nBooting from Hard Disk...\r\n";
  const kernelReset = "SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\nBooting from Hard Disk...\r\nGRUB loading.\r\nWelcome to GRUB!\r\n[    0.000000] Linux version 6.1.0-56-amd64\r\n[    0.412000] smpboot: CPU0: Intel Core Processor (Broadwell)\r\n";

  it("three firmware banners with no outcome between them, for a slice that should hold one boot", () => {
    const log = seabios.repeat(3);
    expect(splitBoots(log)).toHaveLength(3);
    const c = classifyBoot(log, { singleBoot: true });
    expect(c).toMatchObject({ outcome: "reboot-loop", detail: "firmware", reached: { firmware: true, grub: false } });
    expect(isTerminal(c.outcome)).toBe(true);
    expect(c.evidence).toContain("SeaBIOS (version 1.16.2-debian-1.16.2-1)");
    expect(c.evidence).toContain("Booting from Hard Disk...");
    expect(c.evidence.at(-1)).toBe("(the guest restarted 2 times in a row without reaching an outcome)");
    expect(rebootLoop(log)).toEqual(c);
    expect(terminalOutcome(log, { singleBoot: true })?.outcome).toBe("reboot-loop");
    // Decided at the third banner, not before; and not at all unless asked.
    expect(terminalOutcome(seabios.repeat(2), { singleBoot: true })).toBeNull();
    expect(rebootLoop(seabios.repeat(2))).toBeNull();
    expect(rebootLoop(seabios.repeat(2), 2)?.outcome).toBe("reboot-loop");
    expect(classifyBoot(log).outcome).toBe("timeout");
    expect(terminalOutcome(log)).toBeNull();
    expectStableEarlyAnswers(log + seabios, "reboot-loop", "firmware", { singleBoot: true });
  });

  it("the detail is the deepest stage the restarting boots reached; kernel banners split boots without firmware", () => {
    expect(classifyBoot(kernelReset.repeat(3), { singleBoot: true })).toMatchObject({ outcome: "reboot-loop", detail: "kernel" });
    const direct = "[    0.000000] Linux version 6.1.0-56-amd64\r\n[    0.300000] x86/fpu: x87 FPU will use FXSAVE\r\n".repeat(4);
    expect(rebootLoop(direct)).toMatchObject({ outcome: "reboot-loop", detail: "kernel" });
  });

  it("an OVMF loop: the same boot option loaded again and again", () => {
    const ovmf = 'BdsDxe: loading Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)\r\nBdsDxe: starting Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/Pci(0x1,0x1)/Ata(Primary,Master,0x0)\r\n';
    expect(splitBoots(ovmf.repeat(3))).toHaveLength(3);
    expect(rebootLoop(ovmf.repeat(3))).toMatchObject({ outcome: "reboot-loop", detail: "firmware" });
  });

  it("a boot that failed before restarting is that failure, not a loop; a boot that reached login breaks the run", () => {
    // initramfs-tools with panic=10: "ALERT! …", "Rebooting automatically due to panic= boot argument".
    const panicking = "SeaBIOS (version 1.16.2)\r\nLoading, please wait...\r\nALERT!  UUID=1234 does not exist.  Dropping to a shell!\r\nRebooting automatically due to panic= boot argument\r\n";
    const c = classifyBoot(panicking.repeat(3), { singleBoot: true });
    expect(c).toMatchObject({ outcome: "initramfs-shell", detail: "no-root-device" });
    expect(rebootLoop(panicking.repeat(3))).toBeNull();
    const login = "SeaBIOS (version 1.16.2)\r\nDebian GNU/Linux 12 vmlab ttyS0\r\nvmlab login: \r\n";
    expect(rebootLoop(seabios + login + seabios + seabios)).toBeNull();
    expect(rebootLoop(seabios + login + seabios + seabios + seabios)?.outcome).toBe("reboot-loop");
  });

  it("sshAnswered still wins", () => {
    expect(classifyBoot(seabios.repeat(3), { singleBoot: true, sshAnswered: true }).outcome).toBe("ssh");
  });
});
