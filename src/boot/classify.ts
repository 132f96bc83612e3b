/**
 * Classify how ONE boot ended, from the text a guest printed on its serial
 * console. Firmware: SeaBIOS, or OVMF (EDK II). Boot loader: GRUB (BIOS or
 * EFI). Initramfs: Debian initramfs-tools, dracut (with or without systemd),
 * Arch mkinitcpio, Alpine mkinitfs, NixOS stage 1. Init: systemd, Void's
 * runit, or a shell the kernel or the initramfs fell back to.
 *
 * Precedence, from strongest to weakest:
 *  1. `sshAnswered` → `ssh`. If the log also shows a terminal failure (which
 *     should not happen when sshd answered), the outcome stays `ssh`, `detail`
 *     names the failure (e.g. "emergency-mode") and `evidence` holds its lines.
 *  2. With `singleBoot` (the slice is what ONE power-on or reset led to): the
 *     first terminal failure of a boot the guest then restarted from, or a
 *     `reboot-loop` (see `rebootLoop`), whichever came first.
 *  3. The FIRST terminal failure in the boot: no-bootable-device, grub-rescue,
 *     uefi-shell, kernel-panic, initramfs-shell, root-shell, emergency-mode.
 *     It is the root cause; what comes after is aftermath (an initramfs shell
 *     that exits makes the kernel panic with "Attempted to kill init!": the
 *     outcome is initramfs-shell). A failure beats a login prompt, wherever
 *     each appears.
 *  4. `login-prompt` (a getty "<host> login:" prompt).
 *  5. `timeout`: nothing conclusive; `detail` is the deepest stage the log
 *     reached ("firmware" … "userspace", or "no-output"), `evidence` the last
 *     ~15 non-empty lines.
 *
 * Only decisive lines count, never loose words: "panic=30" on the kernel
 * command line, "emergency" in some unit's name, a `nofail` mount that timed
 * out, initramfs-tools' harmless "Gave up waiting for suspend/resume device",
 * "Target filesystem doesn't have requested /sbin/init." (the fallback may
 * still find an init), the UEFI shell's banner (its startup.nsh may still boot
 * the OS), or a bare `#` line with no fallback banner before it do not make a
 * boot fail.
 *
 * If the log holds several boots, only the LAST boot is classified (unless
 * `singleBoot`): that is the state the guest is in now. `splitBoots` gives them
 * all. A boot starts at the firmware's first line: SeaBIOS' banner, OVMF's
 * debug banner "SecCoreStartupWithStack(…)" when its debug log is on the port,
 * or else the first "BdsDxe: loading Boot####" of a boot (OVMF prints nothing
 * before it on ttyS0; see `splitBoots`). Without any firmware line, boots
 * are split at the kernel's "Linux version" banner.
 *
 * `reached` reports what the log shows, literally: SeaBIOS and GRUB's early
 * messages reach the serial port only when QEMU runs without a display
 * (`-machine graphics=off` or `-nographic` turns on SeaBIOS' serial console),
 * and a `-kernel` boot has no GRUB at all. Lines a systemd prints inside an
 * initrd count as `initramfs`, not `userspace`. The one exception:
 * `sshAnswered` sets `reached.userspace`.
 */

/** Outcomes after which the boot will never reach SSH on its own. */
export type TerminalBootOutcome =
  | "no-bootable-device"
  | "grub-rescue"
  | "uefi-shell"
  | "kernel-panic"
  | "initramfs-shell"
  | "root-shell"
  | "emergency-mode"
  | "reboot-loop";

export type BootOutcome = TerminalBootOutcome | "login-prompt" | "ssh" | "timeout";

export interface BootStages {
  firmware: boolean;
  grub: boolean;
  kernel: boolean;
  initramfs: boolean;
  userspace: boolean;
}

export interface BootClassification {
  outcome: BootOutcome;
  /**
   * no-bootable-device: undefined (SeaBIOS' "No bootable device."),
   *   "uefi-no-boot-option" (OVMF's "BdsDxe: No bootable option or device was found."),
   *   "no-boot-code" (from `stalledAtHandover`).
   * grub-rescue: "rescue" | "normal-shell" (the "grub>" prompt: no usable grub.cfg) |
   *   "entry-failed" (the menu entry could not load the kernel, and GRUB waits at its menu). BIOS and EFI GRUB alike.
   * uefi-shell: "fallback" (the firmware tried boot options first and they
   *   failed: "BdsDxe: failed to load Boot0001 … Not Found") | "direct" (the
   *   shell was the first thing it started).
   * kernel-panic: "no-root" | "no-init" | "other".
   * initramfs-shell: the cause when the log names it: "no-root-device" |
   *   "mount-failed" | "fsck" | "no-init" | "no-root-arg" | "break"; else the
   *   initramfs that stopped: "dracut" | "mkinitcpio" | "alpine" | "nixos" |
   *   "systemd-initrd" (an emergency shell of a systemd running in the initrd,
   *   not dracut's), or "other" (initramfs-tools, or unknown).
   * root-shell: "init-fallback" (initramfs-tools: "Target filesystem doesn't
   *   have requested /sbin/init." and /bin/sh was the init it found) |
   *   "kernel-fallback" (the kernel tried /sbin/init, /etc/init, /bin/init and
   *   ran /bin/sh) | "init-param" (init= on the command line named a shell) | "other".
   * emergency-mode: "root-locked" | "rescue" (rescue.target) | "runit" (Void's
   *   runit stage 1: "Cannot continue due to errors above, starting emergency shell.") | undefined.
   * reboot-loop: the deepest stage the restarting boots reached:
   *   "firmware" | "grub" | "kernel" | "initramfs" | "userspace" (see `rebootLoop`).
   * timeout: deepest stage reached, or "no-output".
   * ssh: the terminal failure the log showed anyway, if any.
   */
  detail?: string;
  /**
   * The log lines that prove the outcome: escape codes stripped, trimmed, in
   * order, at most 12 (15 for timeout). `stalledAtHandover` and `reboot-loop`
   * add one last line in parentheses that says what the log does not.
   */
  evidence: string[];
  reached: BootStages;
}

export interface ClassifyOptions {
  /** The lab reached sshd on the guest. */
  sshAnswered?: boolean;
  /** The lab gave up waiting. Informational: an inconclusive log is a `timeout` either way. */
  timedOut?: boolean;
  /**
   * The log starts at ONE power-on or reset of the guest, so each further boot
   * in it is a restart the guest did on its own. Then a boot that failed and
   * restarted still counts (its failure is the outcome), and `minBoots` boots
   * in a row that restarted without any outcome are a `reboot-loop`.
   * Without it (the default), only the last boot counts.
   */
  singleBoot?: boolean;
  /** With `singleBoot`: how many boots in a row make a reboot loop (default 3). */
  minBoots?: number;
}

const MAX_EVIDENCE = 12;
const TIMEOUT_EVIDENCE = 15;
const LOOP_BOOTS = 3;

// ---------------------------------------------------------------- text clean-up

/**
 * Strip terminal control sequences and split into trimmed, non-empty lines.
 * Cursor moves and screen clears (GRUB's menu, drawn with terminfo; OVMF's
 * text console) become line breaks so text painted at different screen places
 * does not run together; a bare `\r` (systemd's status line redrawn in place,
 * GRUB's "\n\r") is a break too.
 */
export function consoleLines(log: string): string[] {
  const text = log
    // OSC … BEL / ST
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g, "")
    // CSI: cursor position (H, f) and erase display (J) → break, the rest → nothing.
    // The final byte is optional: systemd ellipsizes status lines even inside an escape sequence.
    .replace(/\x1b\[[0-?]*[ -/]*([@-~])?/g, (_m, final?: string) => (final && "HfJ".includes(final) ? "\n" : ""))
    // other escapes: ESC c (reset), ESC 7/8, ESC ( B charset selection, …
    .replace(/\x1b[ -/]*[0-~]/g, "")
    .replace(/\x1b/g, "")
    // remaining C0 controls except \t \n \r (NUL, BEL, backspace, SI/SO …)
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, "");
  return text
    .split(/[\r\n]+/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

// ---------------------------------------------------------------- markers

/**
 * The first line a firmware prints at power-on: SeaBIOS' banner; OVMF's SEC
 * phase "SecCoreStartupWithStack(0x…, 0x…)" (edk2 OvmfPkg/Sec/SecMain.c, a
 * DEBUG line: only in a debug log, e.g. QEMU's isa-debugcon at 0x402).
 */
const FIRMWARE_BANNER = /SeaBIOS \(version |SecCoreStartupWithStack ?\(/;
/**
 * OVMF on ttyS0 prints nothing before BdsDxe's boot-option lines
 * (edk2 OvmfPkg/Library/PlatformBmPrintScLib/StatusCodeHandler.c):
 * `BdsDxe: loading Boot0001 "UEFI QEMU HARDDISK QM00001 " from PciRoot(0x0)/…`,
 * then "BdsDxe: starting Boot0001 …" or "BdsDxe: failed to load Boot0001 … : Not Found"
 * (alone when the file was not even found: MdeModulePkg/Library/UefiBootManagerLib/BmBoot.c
 * reports the load only once it has read the file), then maybe "failed to start".
 */
const OVMF_BOOT_LINE = /^BdsDxe: (loading|starting|failed to load|failed to start) (Boot[0-9A-Fa-f]{4}) /;
const KERNEL_BANNER = /Linux version \d/;

const REACHED: Record<keyof BootStages, RegExp> = {
  firmware:
    /SeaBIOS \(version |Booting from (?:Hard Disk|Floppy|DVD\/CD|ROM)|No bootable device\.|SecCoreStartupWithStack|^BdsDxe: |^UEFI \w+ Shell v\d/,
  grub: /Welcome to GRUB|GRUB loading|GNU GRUB +version|^Loading Linux |^Loading initial ramdisk|Booting `|grub rescue>/,
  kernel: /Linux version \d|^EFI stub: /,
  initramfs:
    /Loading, please wait\.\.\.|Begin: Loading essential drivers|Run \/init as init process|Running in initrd\.|\(Initramfs\)!|^:: running (?:early )?hook|^Alpine Init |<<< NixOS Stage 1 >>>/,
  userspace: /systemd\[1\]:|Welcome to Debian|^\[\s*OK\s*\] /,
};

/**
 * A systemd running in the initrd (dracut, mkinitcpio's systemd hook, NixOS'
 * systemd stage 1): its status lines are initramfs, and its emergency mode is
 * an initramfs shell. systemd prints "Running in initrd." at start
 * (src/core/main.c) and its initrd's os-release names "(Initramfs)"; with
 * `quiet`, only the failed units show, so those count too.
 */
const INITRD_ENTER =
  /systemd\[1\]: Running in initrd\.|\(Initramfs\)!|Dependency failed for (?:initrd-\S+\.target|sysroot\.mount|.* - Initrd Root |\/sysroot)|Reached target (?:initrd\S*\.target|.* - Initrd )|dracut-(?:cmdline|pre-udev|pre-trigger|initqueue|pre-mount|mount|pre-pivot)(?:\.service|\[\d+\])/;
/** The initrd's systemd hands over to the real root ("Switching root." in src/core/main.c). */
const INITRD_LEAVE = /systemd\[1\]: Switching root\.|(?:Starting|Reached target) (?:initrd-switch-root\.|Switch Root)/;

/** A getty prompt: "<host> login:", possibly followed by kernel messages on the same line. */
const LOGIN_PROMPT = /^(?!Last login:)[A-Za-z0-9][A-Za-z0-9.-]* login:(?:\s|$)/;
/** The /etc/issue line getty prints before the prompt: "Debian GNU/Linux 12 vmlab ttyS0". */
const ISSUE_LINE = /GNU\/Linux .*\btty\S+$/;

/**
 * A root shell's prompt with nothing after it (or a kernel message printed
 * onto the same line): dash and busybox ash without PS1 ("# "), busybox with
 * its fancy prompt ("~ # ", "/ # "), bash with no startup file ("sh-5.2# ",
 * "bash-5.2# "). A bare `#` decides nothing on its own.
 */
const BARE_PROMPT = /^(?:[~/] )?#(?:$| \[\s*\d+\.\d+\])/;
const BASH_PROMPT = /^(?:sh|bash)-\d+(?:\.\d+)*#(?:$| \[\s*\d+\.\d+\])/;
/**
 * What comes before a shell that runs as init: initramfs-tools' fallback
 * (scripts: /usr/share/initramfs-tools/init, 0.142: "Target filesystem doesn't
 * have requested ${init}." then it tries /sbin/init /etc/init /bin/init
 * /bin/sh), the kernel's "Run /bin/sh as init process" (init/main.c), init= on
 * the command line naming a shell, and the job-control complaint of a shell
 * with no controlling tty (dash: "/bin/sh: 0: can't access tty; job control
 * turned off"; busybox ash: "/bin/sh: can't access tty; …"; bash: "bash: no
 * job control in this shell").
 */
const ROOT_SHELL_BANNER =
  /Target filesystem doesn't have requested \S+\.|Run \/(?:usr\/)?bin\/(?:ba|da)?sh as init process|can't access tty; job control turned off|no job control in this shell|Kernel command line: .*\binit=\S*\/(?:ba|da)?sh(?:\s|$)/;

interface FailureRule {
  outcome: TerminalBootOutcome;
  /** A line that proves the boot stopped. */
  decisive: RegExp;
  /** Where the decisive line is, when a line alone cannot tell (default: the first line `decisive` matches). */
  find?: (lines: string[]) => number;
  /** Lines worth showing as evidence (the decisive ones always are). */
  evidence: RegExp | ((lines: string[], at: number) => RegExp);
  detail?: (lines: string[], at: number) => string | undefined;
}

const anyOf = (...res: RegExp[]) => new RegExp(res.map((r) => r.source).join("|"));

// ---------------------------------------------------------------- initramfs families

type Family = "initramfs-tools" | "dracut" | "mkinitcpio" | "alpine" | "nixos";

/** Decisive lines of each initramfs' emergency shell, quoted from its sources. */
const INITRAMFS_DECISIVE: Record<Family, RegExp> = {
  // initramfs-tools 0.142: scripts/local, scripts/functions panic(), init.
  "initramfs-tools": anyOf(
    /ALERT! +.* does not exist\. +Dropping to a shell!/,
    /Gave up waiting for .+ device\. +Common problems:/, // the fatal variant; "…for suspend/resume device" alone is harmless
    /^\(initramfs\)/,
    /^BusyBox v\S+ .*built-in shell/,
    /^Failed to mount \S+ as \S+ file system\./,
    /requires a manual fsck$/,
    /^No root device specified\. Boot arguments must include a root= parameter\./,
    /^No init found\. Try passing init= bootarg\./,
    /^Spawning shell within the initramfs/,
  ),
  // dracut modules.d/99base/dracut-lib.sh emergency_shell/die/warn, 98dracut-systemd/dracut-emergency.sh,
  // 99base/rdsosreport.sh. Not "Warning: Could not boot." (99base/init.sh, dracut-initqueue.sh) nor
  // "Starting Dracut Emergency Shell...": the emergency hooks print their "Warning: /dev/… does not
  // exist" after those and before rdsosreport's line, and that names the cause.
  dracut: anyOf(
    /Entering emergency mode\. Exit the shell to continue\./,
    /^Generating "\/run\/initramfs\/rdsosreport\.txt"/,
    /Warning: Boot has failed\. To debug this issue add "rd\.shell rd\.debug"/,
    /dracut: FATAL: /,
    // PS1="$_name:${PWD}# ", $_name being "dracut" or the rd.break hook / fs-lib name.
    /^(?:dracut|cmdline|pre-udev|pre-trigger|initqueue|pre-mount|mount|pre-pivot|cleanup|switch_root|selinux|\(Repair filesystem\)|\(reboot \?\)):\/\S*#(?:\s|$)/,
  ),
  // mkinitcpio init and init_functions (err: "ERROR: …"; launch_interactive_shell: PS1='[rootfs \W]\$ ').
  mkinitcpio: anyOf(
    /You are now being dropped into an emergency shell\./,
    /^ERROR: Failed to mount the real root device\./,
    /^ERROR: Root device mounted successfully, but \S+ does not exist\./,
    /^Bailing out, you are on your own\. Good luck\./,
    /^ERROR: Bailing out\. Run 'fsck .*' manually/,
    /^:: (?:Pre|Post)-mount break requested, type 'exit' to resume operation/,
    /^\[rootfs [^\]]*\]#/,
  ),
  // Alpine mkinitfs initramfs-init.in: before 2025-11 "initramfs emergency recovery shell launched…",
  // "$KOPT_init not found in new root. Launching emergency recovery shell"; since then recovery_shell():
  // "Launching initramfs emergency recovery shell."
  alpine: anyOf(
    /initramfs emergency recovery shell launched/,
    /Launching initramfs emergency recovery shell\./,
    /not found in new root\. Launching emergency recovery shell/,
  ),
  // nixpkgs nixos/modules/system/boot/stage-1-init.sh fail(): waits for a key (or exits with boot.panic_on_fail).
  nixos: /An error occurred in stage 1 of the boot process/,
};

/** Lines that tell which initramfs is running. */
const FAMILY_MARK: Record<Family, RegExp> = {
  "initramfs-tools": /^Loading, please wait\.\.\.|^Begin: |ALERT! |^\(initramfs\)|^Gave up waiting for |Target filesystem doesn't have requested|^No init found\. Try passing init= bootarg|^Spawning shell within the initramfs|^No root device specified/,
  dracut: /[Dd]racut|rdsosreport|Entering emergency mode\. Exit the shell to continue\./,
  mkinitcpio: /^:: (?:running (?:early )?hook|mounting '|performing fsck|(?:Pre|Post)-mount break)|^ERROR: (?:device '|Failed to mount|Root device mounted|Bailing out)|You are now being dropped into an emergency shell\.|^\[rootfs |^Bailing out, you are on your own/,
  alpine: /^Alpine Init |emergency recovery shell|^\* Mounting (?:root|boot media): /,
  nixos: /<<< NixOS Stage 1 >>>|An error occurred in stage 1 of the boot process/,
};

const FAMILY_EVIDENCE: Record<Family | "systemd-initrd", RegExp> = {
  "initramfs-tools":
    /ALERT! |Gave up waiting for .+ device\. +Common problems:|^Failed to mount \S+ as |requires a manual fsck|fsck exited with status code|^mount: mounting .* failed|^No root device specified|^No init found|^Spawning shell within|(?:Rebooting|Halting) automatically due to panic=|^BusyBox v|^\(initramfs\)/,
  dracut:
    /Warning: |dracut: FATAL: |dracut: Refusing to continue|Starting (?:dracut-emergency\.service - )?Dracut Emergency Shell|^Generating "\/run\/initramfs\/rdsosreport\.txt"|Entering emergency mode\. Exit the shell|^\[ TIME \] Timed out waiting for device|Dependency failed for (?:initrd-|sysroot|.* - Initrd |\/sysroot)|Failed to mount (?:sysroot\.mount|\/sysroot)|Reached target (?:emergency\.target|.* - Emergency Mode\.)|:\/\S*#$/,
  mkinitcpio:
    /^ERROR: |^Waiting \d+ seconds for device|^:: mounting '.*' on real root|^mount: |You are now being dropped into an emergency shell|Bailing out|FILESYSTEM CHECK FAILED|break requested|can't access tty|^\[rootfs /,
  alpine: /^Alpine Init |^\* Mounting (?:root|boot media): failed|^mount: |not found in new root|emergency recovery shell|Type 'exit' to continue boot|Type exit to continue boot|can't access tty|^(?:[~/] )?#$/,
  nixos:
    /<<< NixOS Stage 1 >>>|Timed out waiting for device .*trying to mount anyway|^mount: |special device \S+ does not exist|stage 2 init script .* not found|has unrepaired errors|fsck on \S+ failed|An error occurred in stage 1 of the boot process|^root filesystem on `\/mnt-root'|^r\) to reboot immediately/,
  "systemd-initrd":
    /^\[ TIME \] Timed out waiting for device|^\[FAILED\] |Dependency failed for |Reached target (?:emergency\.target|.* - Emergency Mode\.)|You are in emergency mode|Give root password for maintenance|Cannot open access to console/,
};

/** The cause an initramfs names before it stops, in the order initramfs-tools' causes were always checked. */
const INITRAMFS_CAUSES: [string, RegExp][] = [
  [
    "no-root-device",
    /ALERT! |Gave up waiting for .+ device\. +Common problems:|Warning: "?\/dev\/\S+? does not exist|initqueue\/finished\/devexists-\S+\.sh: |^ERROR: device '.*' not found\. Skipping fsck\.|Timed out waiting for device \S+, trying to mount anyway\.|special device \S+ does not exist|Dependency failed for (?:initrd-root-device\.target|.* - Initrd Root Device\.)|^\[ TIME \] Timed out waiting for device/,
  ],
  [
    "fsck",
    /requires a manual fsck|Bailing out\. Run 'fsck|FILESYSTEM CHECK FAILED|has unrepaired errors, please fix them manually\.|fsck on \S+ failed\.|^\(Repair filesystem\)|Failed to start (?:systemd-fsck-root\.service|File System Check on)/,
  ],
  [
    "mount-failed",
    /Failed to mount \S+ as |^ERROR: Failed to mount '.*' on real root|Failed to mount the real root device|Mounting root: failed|Warning: Can't mount root filesystem|Failed to mount (?:sysroot\.mount|\/sysroot)/,
  ],
  ["no-init", /No init found|Root device mounted successfully, but \S+ does not exist|\S+ not found in new root|stage 2 init script \(.*\) not found/],
  ["no-root-arg", /No root device specified/],
  ["break", /Spawning shell within the initramfs|Warning: Break (?:before )?\S+|(?:Pre|Post)-mount break requested/],
];

/** The initramfs whose decisive line is at `at`, else whose marker comes last before it. */
function familyAt(lines: string[], at: number): Family | null {
  for (const f of Object.keys(INITRAMFS_DECISIVE) as Family[]) {
    if (f !== "initramfs-tools" && INITRAMFS_DECISIVE[f].test(lines[at] ?? "")) return f;
  }
  for (let i = Math.min(at, lines.length - 1); i >= 0; i--) {
    for (const f of Object.keys(FAMILY_MARK) as Family[]) if (FAMILY_MARK[f].test(lines[i])) return f;
  }
  return null;
}

function initramfsDetail(lines: string[], at: number, family: Family | "systemd-initrd" | null): string {
  const text = lines.slice(0, at + 1).join("\n");
  for (const [cause, re] of INITRAMFS_CAUSES) {
    if (new RegExp(re.source, "m").test(text)) return cause;
  }
  return family === null || family === "initramfs-tools" ? "other" : family;
}

/**
 * Whether the line at `at` was printed while a systemd ran in the initrd: an
 * initrd marker came before it (or is it), with no switch to the real root in
 * between. Only what was printed up to `at` counts, so a log still being
 * written gets the same answer later.
 */
function inInitrd(lines: string[], at: number): boolean {
  const leave = findLastIndex(lines, (l) => INITRD_LEAVE.test(l), at);
  return lines.slice(leave + 1, at + 1).some((l) => INITRD_ENTER.test(l));
}

// ---------------------------------------------------------------- rules

const RULES: FailureRule[] = [
  {
    outcome: "no-bootable-device",
    // SeaBIOS; OVMF's PlatformBootManagerUnableToBoot() (OvmfPkg/Library/PlatformBootManagerLib/BdsPlatform.c).
    decisive: /No bootable device\.|BdsDxe: No bootable option (?:or device )?was found\./,
    evidence:
      /^Boot failed: |No bootable device\.|^BdsDxe: failed to (?:load|start) Boot|^BdsDxe: No bootable option|Press any key to enter the Boot Manager Menu|^Failed to (?:open|load image) |start_image\(\) returned |^>>Start (?:PXE|HTTP Boot) over IPv[46]|PXE-E\d\d: /,
    detail: (lines, at) => (/BdsDxe: /.test(lines[at]) ? "uefi-no-boot-option" : undefined),
  },
  {
    outcome: "grub-rescue",
    // "grub>" is GRUB's normal-mode shell: reached when grub.cfg is missing or unusable.
    // "Failed to boot both default and fallback entries." (grub-core/normal/menu.c): the menu entry could not
    // load the kernel (its /boot not found: "error: no such device: UUID"), and after "Press any key to
    // continue..." GRUB shows its menu again, with no timeout: it waits for someone at the console.
    decisive: /^grub rescue>|^grub>(?:\s|$)|^Failed to boot both default and fallback entries\./,
    evidence: /^error: |Entering rescue mode|^grub rescue>|^grub>(?:\s|$)|^Failed to boot both default and fallback entries\./,
    detail: (lines, at) => (lines[at].startsWith("grub rescue>") ? "rescue" : lines[at].startsWith("Failed to boot") ? "entry-failed" : "normal-shell"),
  },
  {
    outcome: "uefi-shell",
    // The prompt, not the banner: a startup.nsh may still boot the OS. ShellPkg/Application/Shell/Shell.uni:
    // STR_SHELL_SHELL "%EShell> %N", STR_SHELL_CURDIR "%E%s\> %N" (e.g. "FS0:\> "). Alone on its line:
    // Shell.c echoes each startup.nsh line as the prompt followed by the command.
    decisive: /^(?:Shell|FS\d+:\\[^>]*)>$/,
    evidence:
      /^UEFI \w+ Shell v\d|^UEFI v\d+\.\d+ \(|Press ESC in \d+ seconds? to skip startup\.nsh|^BdsDxe: failed to (?:load|start) Boot|^BdsDxe: (?:loading|starting) Boot\S* "[^"]*[Ss]hell"|^Failed to (?:open|load image) |start_image\(\) returned |^(?:Shell|FS\d+:\\[^>]*)>/,
    detail: (lines, at) => (lines.slice(0, at).some((l) => /^BdsDxe: failed to (?:load|start) Boot/.test(l)) ? "fallback" : "direct"),
  },
  {
    outcome: "kernel-panic",
    decisive: /Kernel panic - not syncing: /,
    evidence:
      /VFS: |No filesystem could mount root|Please append a correct "root="|Failed to execute \S+|Cannot open root device|\/dev\/root: Can't open blockdev|Starting init: |BUG: |Oops: /,
    detail: (lines, at) => {
      const l = lines[at];
      if (/VFS: Unable to mount root fs/.test(l)) return "no-root";
      // "No init found." is the wording before Linux 3.x's "No working init found.".
      if (/No working init found|No init found\.|Attempted to kill init|Requested init \S+ failed/.test(l)) return "no-init";
      return "other";
    },
  },
  {
    outcome: "initramfs-shell",
    decisive: anyOf(...Object.values(INITRAMFS_DECISIVE)),
    evidence: (lines, at) => FAMILY_EVIDENCE[familyAt(lines, at) ?? "initramfs-tools"],
    detail: (lines, at) => initramfsDetail(lines, at, familyAt(lines, at)),
  },
  {
    outcome: "root-shell",
    decisive: BASH_PROMPT,
    // bash's "sh-5.2#" is a root shell with no login on its own; a bare "#" only after a fallback banner.
    find: (lines) => {
      let banner = false;
      for (let i = 0; i < lines.length; i++) {
        if (ROOT_SHELL_BANNER.test(lines[i])) banner = true;
        if (BASH_PROMPT.test(lines[i]) || (banner && BARE_PROMPT.test(lines[i]))) return i;
      }
      return -1;
    },
    evidence:
      /Target filesystem doesn't have requested|^run-init: |Run \/(?!init )\S+ as init process|Starting init: |Failed to execute |can't access tty|no job control in this shell|cannot set terminal process group|Kernel command line: .*\binit=/,
    detail: (lines, at) => {
      const before = lines.slice(0, at + 1);
      if (before.some((l) => /Target filesystem doesn't have requested/.test(l))) return "init-fallback";
      const runs = before.filter((l) => /Run \/\S+ as init process/.test(l) && !/Run \/init as init process/.test(l));
      if (runs.length > 1 && /Run \/sbin\/init as init process/.test(runs[0])) return "kernel-fallback";
      if (runs.length === 1 || before.some((l) => /Kernel command line: .*\binit=\S*\/(?:ba|da)?sh(?:\s|$)/.test(l))) return "init-param";
      return "other";
    },
  },
  {
    outcome: "emergency-mode",
    // local-fs.target has OnFailure=emergency.target: once it failed, emergency mode follows.
    // A device timeout or a failed mount alone is not enough (a `nofail` mount does not stop the boot).
    decisive: anyOf(
      /You are in (?:emergency|rescue) mode/,
      /Give root password for maintenance/,
      /Cannot open access to console, the root account is locked/,
      /Entering emergency mode(?!\. Exit the shell to continue)/, // that one is dracut's
      // unit names may be ellipsized to the console width ("loca…s.target"); descriptions are not
      /Reached target (?:emergency\.target|rescue\.target|.* - (?:Emergency|Rescue) Mode\.)/,
      /Started (?:emergency\.service|rescue\.service|.* - (?:Emergency|Rescue) Shell\.)/,
      /Dependency failed for (?:local-fs\.target|Local File Systems)/,
      // Void Linux runit stage 1 (void-runit, functions: emergency_shell()).
      /Cannot continue due to errors above, starting emergency shell\./,
    ),
    evidence:
      /^\[FAILED\]|^\[ TIME \]|^\[DEPEND\]|Timed out waiting for device|Dependency failed for|Failed to mount |You are in (?:emergency|rescue) mode|Give root password|Cannot open access to console|Entering emergency mode|Reached target .*(?:emergency|rescue|Emergency|Rescue)|Started .*(?:Emergency|Rescue) Shell|^ERROR: |Cannot continue due to errors above/,
    detail: (lines) => {
      const text = lines.join("\n");
      if (/the root account is locked/.test(text)) return "root-locked";
      if (/You are in rescue mode|Rescue Mode\.|Rescue Shell\./.test(text)) return "rescue";
      if (/Cannot continue due to errors above, starting emergency shell\./.test(text)) return "runit";
      return undefined;
    },
  },
];

const TERMINAL = new Set<BootOutcome>([...RULES.map((r) => r.outcome), "reboot-loop"]);

// ---------------------------------------------------------------- helpers

/**
 * Split a console log into boots. A boot starts at a firmware's first line
 * (SeaBIOS' banner; OVMF's "SecCoreStartupWithStack(" in a debug log), or, for
 * OVMF on ttyS0, at a BdsDxe line that begins an attempt at a boot option
 * ("loading Boot####", or "failed to load Boot####" with no "loading" before
 * it) and cannot belong to the boot before it: it follows a kernel banner, or
 * this boot already tried that option (within one boot OVMF tries each option
 * once, in BootOrder: "failed to load Boot0001 …", then "loading Boot0002 …").
 * Without any firmware line, boots start at the kernel banner.
 */
export function splitBoots(log: string): string[][] {
  return splitLines(consoleLines(log));
}

function splitLines(lines: string[]): string[][] {
  const firmware = lines.some((l) => FIRMWARE_BANNER.test(l) || OVMF_BOOT_LINE.test(l));
  const boots: string[][] = [];
  let current: string[] = [];
  let started = false; // the current boot has its first line
  let kernel = false; // … and a kernel banner
  let tried = new Map<string, string>(); // … and tried these OVMF boot options: the last BdsDxe event of each
  for (const line of lines) {
    let starts = false;
    let marker = false;
    const bds = firmware ? OVMF_BOOT_LINE.exec(line) : null;
    if (!firmware) {
      marker = KERNEL_BANNER.test(line);
      starts = marker && started;
    } else if (FIRMWARE_BANNER.test(line)) {
      marker = true;
      starts = started;
    } else if (bds) {
      const [, event, option] = bds;
      const key = option.toLowerCase();
      const attempt = event === "loading" || (event === "failed to load" && tried.get(key) !== "loading");
      marker = attempt;
      starts = attempt && (kernel || tried.has(key));
    }
    if (starts) {
      boots.push(current);
      current = [];
      kernel = false;
      tried = new Map();
    }
    if (marker) started = true;
    if (firmware && KERNEL_BANNER.test(line)) kernel = true;
    if (bds) tried.set(bds[2].toLowerCase(), bds[1]);
    current.push(line);
  }
  boots.push(current);
  return boots;
}

function reachedStages(lines: string[]): BootStages {
  const r = { firmware: false, grub: false, kernel: false, initramfs: false, userspace: false };
  // A systemd in the initrd is not userspace yet: the lines up to its switch to
  // the real root, when they hold an initrd marker (its first lines come before
  // "Running in initrd.").
  let segment = 0;
  let initrd = false;
  for (let i = 0; i < lines.length; i++) {
    if (i === segment) {
      let end = lines.findIndex((l, j) => j >= i && INITRD_LEAVE.test(l));
      if (end < 0) end = lines.length - 1;
      initrd = lines.slice(i, end + 1).some((l) => INITRD_ENTER.test(l));
      segment = end + 1;
    }
    const line = lines[i];
    for (const stage of Object.keys(REACHED) as (keyof BootStages)[]) {
      if (r[stage] || !REACHED[stage].test(line)) continue;
      if (stage === "userspace" && initrd) r.initramfs = true;
      else r[stage] = true;
    }
    if (!r.userspace && LOGIN_PROMPT.test(line)) r.userspace = true;
  }
  return r;
}

/** Drop repeats, then keep the first and last few lines if there are too many. */
function cap(lines: string[], max = MAX_EVIDENCE): string[] {
  const seen = new Set<string>();
  const unique = lines.filter((l) => (seen.has(l) ? false : (seen.add(l), true)));
  if (unique.length <= max) return unique;
  const head = Math.ceil(max / 2);
  return [...unique.slice(0, head), ...unique.slice(unique.length - (max - head))];
}

interface Failure {
  outcome: TerminalBootOutcome;
  detail?: string;
  evidence: string[];
}

/** The first terminal failure in the boot, if any. */
function firstFailure(lines: string[]): Failure | null {
  let best: { rule: FailureRule; at: number } | null = null;
  for (const rule of RULES) {
    const at = rule.find ? rule.find(lines) : lines.findIndex((l) => rule.decisive.test(l));
    if (at >= 0 && (best === null || at < best.at)) best = { rule, at };
  }
  if (!best) return null;
  const { rule, at } = best;
  if (rule.outcome === "emergency-mode" && inInitrd(lines, at)) {
    // systemd's emergency mode inside the initrd (dracut, mkinitcpio's systemd hook): an initramfs shell.
    const family = lines.slice(0, at + 1).some((l) => FAMILY_MARK.dracut.test(l)) ? "dracut" : "systemd-initrd";
    const evidence = lines.filter((l, i) => i === at || FAMILY_EVIDENCE[family].test(l));
    return { outcome: "initramfs-shell", detail: initramfsDetail(lines, at, family), evidence: cap(evidence) };
  }
  let from = 0;
  let to = lines.length;
  if (rule.outcome === "grub-rescue") {
    // GRUB's own errors since it started, not errors printed by an earlier stage.
    from = Math.max(0, findLastIndex(lines, (l) => /GRUB loading|Welcome to GRUB/.test(l), at));
  } else if (rule.outcome === "kernel-panic") {
    // The cause is printed just before the panic; after it come the call trace and "---[ end Kernel panic".
    from = Math.max(0, at - 40);
    to = at + 1;
  }
  const evidenceRe = typeof rule.evidence === "function" ? rule.evidence(lines, at) : rule.evidence;
  let evidence = lines.slice(from, to).filter((l, i) => from + i === at || evidenceRe.test(l));
  if (rule.outcome === "uefi-shell") {
    // The startup.nsh countdown is redrawn each second: keep its last state.
    const countdown = evidence.filter((l) => /^Press ESC in \d+ seconds?/.test(l));
    evidence = evidence.filter((l) => !/^Press ESC in \d+ seconds?/.test(l) || l === countdown.at(-1));
  }
  return { outcome: rule.outcome, detail: rule.detail?.(lines, at), evidence: cap(evidence) };
}

function findLastIndex(lines: string[], pred: (l: string) => boolean, before: number): number {
  for (let i = Math.min(before, lines.length - 1); i >= 0; i--) if (pred(lines[i])) return i;
  return -1;
}

const STAGE_ORDER: (keyof BootStages)[] = ["userspace", "initramfs", "kernel", "grub", "firmware"];

function deepestStage(reached: BootStages): string {
  return STAGE_ORDER.find((s) => reached[s]) ?? "no-output";
}

function lastLines(lines: string[], n: number): string[] {
  const out: string[] = [];
  for (const l of lines) if (out[out.length - 1] !== l) out.push(l); // collapse repeated lines
  return out.slice(-n);
}

/**
 * The boots of a `singleBoot` slice, in time order, up to the first decisive
 * thing among the boots the guest restarted from: a terminal failure of such
 * a boot (the cause; the restarts are aftermath), or `minBoots` boots in a
 * row that each restarted with no outcome (no failure, no login prompt).
 */
function restartedFrom(boots: string[][], minBoots: number): BootClassification | null {
  let run: string[][] = [];
  for (let i = 0; i < boots.length - 1; i++) {
    const b = boots[i];
    const failure = firstFailure(b);
    if (failure) return { ...failure, reached: reachedStages(b) };
    if (loginEvidence(b)) {
      run = [];
      continue;
    }
    run.push(b);
    if (run.length >= Math.max(1, minBoots - 1)) return loopClassification([...run, boots[i + 1]]);
  }
  return null;
}

/** `boots`: the boots that restarted with no outcome, then the one that started after them. */
function loopClassification(boots: string[][]): BootClassification {
  const restarted = boots.slice(0, -1);
  const reached = { firmware: false, grub: false, kernel: false, initramfs: false, userspace: false };
  const evidence: string[] = [];
  for (const b of restarted) {
    const r = reachedStages(b);
    for (const s of Object.keys(r) as (keyof BootStages)[]) reached[s] ||= r[s];
    const first = b.find((l) => FIRMWARE_BANNER.test(l) || OVMF_BOOT_LINE.test(l) || KERNEL_BANNER.test(l)) ?? b[0];
    if (first) evidence.push(first);
    evidence.push(...lastLines(b, 2).filter((l) => l !== first));
  }
  const next = boots.at(-1)?.[0];
  if (next) evidence.push(next);
  const capped = cap(evidence, MAX_EVIDENCE - 1);
  capped.push(`(the guest restarted ${restarted.length} times in a row without reaching an outcome)`);
  return { outcome: "reboot-loop", detail: deepestStage(reached), evidence: capped, reached };
}

// ---------------------------------------------------------------- API

export function classifyBoot(log: string, opts: ClassifyOptions = {}): BootClassification {
  const boots = splitBoots(log);
  const lines = boots[boots.length - 1];
  const reached = reachedStages(lines);
  const failure = firstFailure(lines);

  if (opts.sshAnswered) {
    reached.userspace = true;
    if (failure) return { outcome: "ssh", detail: failure.outcome, evidence: failure.evidence, reached };
    const login = loginEvidence(lines);
    return { outcome: "ssh", evidence: login ?? [], reached };
  }
  if (opts.singleBoot) {
    const earlier = restartedFrom(boots, opts.minBoots ?? LOOP_BOOTS);
    if (earlier) return earlier;
  }
  if (failure) return { ...failure, reached };

  const login = loginEvidence(lines);
  if (login) return { outcome: "login-prompt", evidence: login, reached };

  return {
    outcome: "timeout",
    detail: deepestStage(reached),
    evidence: lastLines(lines, TIMEOUT_EVIDENCE),
    reached,
  };
}

/**
 * A reboot loop: `minBoots` boots in a row (default 3: the third firmware or
 * kernel banner) where each boot before the last restarted without reaching
 * an outcome (no terminal failure, no login prompt): a triple fault, a kernel
 * that resets before it prints, a watchdog, an initramfs that reboots. For a
 * log that starts at one power-on, so call it with the log since the lab
 * powered the guest on or reset it, not with a log that holds restarts the
 * lab asked for. A boot that failed before restarting is not a loop (the
 * failure is the outcome: `classifyBoot(log, { singleBoot: true })` returns it).
 * `detail` is the deepest stage the restarting boots reached; `evidence` the
 * first line and last lines of each, then a line in parentheses with the count.
 * `classifyBoot` and `terminalOutcome` do the same with `{ singleBoot: true }`.
 */
export function rebootLoop(log: string, minBoots = LOOP_BOOTS): BootClassification | null {
  const c = restartedFrom(splitBoots(log), minBoots);
  return c?.outcome === "reboot-loop" ? c : null;
}

/** The last login prompt and the issue line before it, or null. */
function loginEvidence(lines: string[]): string[] | null {
  const at = findLastIndex(lines, (l) => LOGIN_PROMPT.test(l), lines.length - 1);
  if (at < 0) return null;
  const issue = findLastIndex(lines, (l) => ISSUE_LINE.test(l), at);
  return issue >= 0 && at - issue <= 3 ? [lines[issue], lines[at]] : [lines[at]];
}

/**
 * Prompts are printed without a newline; any other unterminated last line may
 * still be growing. A prompt here only lets the line be read: whether it
 * decides anything is the rules' business (a bare `#` needs a fallback banner
 * before it in the same boot).
 */
const PROMPT_TAIL = new RegExp(
  "(?:" +
    [
      /grub rescue>|grub>|\(initramfs\)|login:|\(or press Control-D to continue\):/, // GRUB, initramfs-tools, getty, sulogin
      /(?:^|\s)(?:Shell|FS\d+:\\\S*)>/, // UEFI shell
      /\[rootfs [^\]]*\]#/, // mkinitcpio
      /(?:^|\s)\S+:\/\S*#/, // dracut: "dracut:/#", "pre-mount:/#"
      /(?:^|\s)(?:sh|bash)-\d+(?:\.\d+)*#/, // bash without startup files
      /^(?:[~/] )?#/, // dash, busybox ash: a bare "#", "~ #", "/ #" (the whole tail)
    ]
      .map((r) => r.source)
      .join("|") +
    ")\\s*$",
);

/**
 * For a log that is still being written: the classification as soon as it
 * shows a boot that will never reach SSH (see `TerminalBootOutcome`), else null.
 * With `{ singleBoot: true }` (the log starts at one power-on or reset), also
 * a failure of a boot the guest then restarted from, and a `reboot-loop`.
 *
 * Timing, for callers choosing how long to wait: initramfs-tools prints its
 * "Gave up waiting for root file system device" / "ALERT!" lines only after
 * its rootdelay (max(30 s, rootdelay=) of "Begin: Running /scripts/local-block"),
 * and systemd fails local-fs.target ("Dependency failed for local-fs.target",
 * decisive here) only after the device timeout (default 90 s of "A start job is
 * running for /dev/disk/by-uuid/…"). An unterminated last line is ignored
 * unless it is a prompt (`PROMPT_TAIL`: GRUB, `(initramfs)`, `dracut:/#`,
 * `Shell>`, `[rootfs /]#`, `sh-5.2#`, `#`, `~ #`, getty, sulogin), so a
 * half-written "Kernel panic" line does not get a wrong `detail`, and a shell
 * prompt is decided the moment it is printed.
 */
export function terminalOutcome(log: string, opts: Pick<ClassifyOptions, "singleBoot" | "minBoots"> = {}): BootClassification | null {
  let complete = log;
  const lastBreak = Math.max(log.lastIndexOf("\n"), log.lastIndexOf("\r"));
  const tail = log.slice(lastBreak + 1);
  if (tail.length > 0 && !PROMPT_TAIL.test(consoleLines(tail).join(" "))) complete = log.slice(0, lastBreak + 1);
  const c = classifyBoot(complete, { singleBoot: opts.singleBoot, minBoots: opts.minBoots });
  return TERMINAL.has(c.outcome) ? c : null;
}

/**
 * A firmware that handed over to a disk and then printed nothing more: the
 * disk has a 0x55AA signature but no working boot code (a partition table
 * written onto a blank disk, a zeroed first 446 bytes). The CPU is left
 * running whatever the sector held, so the log never says so itself; the
 * caller decides how long a silence is conclusive and asks this whether the
 * log stopped at that hand-over. (SeaBIOS only: OVMF reports an EFI image it
 * could not load or start itself, "BdsDxe: failed to load Boot0001 …".)
 */
export function stalledAtHandover(log: string): BootClassification | null {
  const lines = splitBoots(log).at(-1) ?? [];
  const last = lines.at(-1);
  if (!last || !/^Booting from Hard Disk/.test(last)) return null;
  const reached = reachedStages(lines);
  if (reached.grub || reached.kernel) return null;
  return {
    outcome: "no-bootable-device",
    detail: "no-boot-code",
    evidence: [...lastLines(lines, 3), "(no output after the firmware jumped to the disk's boot sector: it holds no working boot code)"],
    reached,
  };
}

/** Whether an outcome means the boot stopped for good. */
export function isTerminal(outcome: BootOutcome): outcome is TerminalBootOutcome {
  return TERMINAL.has(outcome);
}
