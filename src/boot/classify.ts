/**
 * Classify how ONE boot ended, from the text a guest printed on its serial
 * console (SeaBIOS → GRUB → Linux → initramfs-tools → systemd, Debian 12).
 *
 * Precedence, from strongest to weakest:
 *  1. `sshAnswered` → `ssh`. If the log also shows a terminal failure (which
 *     should not happen when sshd answered), the outcome stays `ssh`, `detail`
 *     names the failure (e.g. "emergency-mode") and `evidence` holds its lines.
 *  2. The FIRST terminal failure in the boot: no-bootable-device, grub-rescue,
 *     kernel-panic, initramfs-shell, emergency-mode. It is the root cause; what
 *     comes after is aftermath (an initramfs shell that exits makes the kernel
 *     panic with "Attempted to kill init!": the outcome is initramfs-shell).
 *     A failure beats a login prompt, wherever each appears.
 *  3. `login-prompt` (a getty "<host> login:" prompt).
 *  4. `timeout`: nothing conclusive; `detail` is the deepest stage the log
 *     reached ("firmware" … "userspace", or "no-output"), `evidence` the last
 *     ~15 non-empty lines.
 *
 * Only decisive lines count, never loose words: "panic=30" on the kernel
 * command line, "emergency" in some unit's name, a `nofail` mount that timed
 * out, or initramfs-tools' harmless "Gave up waiting for suspend/resume device"
 * do not make a boot fail.
 *
 * If the log holds several boots (the firmware banner, or without it the
 * "Linux version" line, printed again after a reboot), only the LAST boot is
 * classified: that is the state the guest is in now. `splitBoots` gives them all.
 *
 * `reached` reports what the log shows, literally: SeaBIOS and GRUB's early
 * messages reach the serial port only when QEMU runs without a display
 * (`-machine graphics=off` or `-nographic` turns on SeaBIOS' serial console),
 * and a `-kernel` boot has no GRUB at all. The one exception: `sshAnswered`
 * sets `reached.userspace`.
 */

export type BootOutcome =
  | "no-bootable-device"
  | "grub-rescue"
  | "kernel-panic"
  | "initramfs-shell"
  | "emergency-mode"
  | "login-prompt"
  | "ssh"
  | "timeout";

/** Outcomes after which the boot will never reach SSH on its own. */
export type TerminalBootOutcome = Extract<
  BootOutcome,
  "no-bootable-device" | "grub-rescue" | "kernel-panic" | "initramfs-shell" | "emergency-mode"
>;

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
   * kernel-panic: "no-root" | "no-init" | "other".
   * grub-rescue: "rescue" | "normal-shell" (the "grub>" prompt: no usable grub.cfg).
   * initramfs-shell: "no-root-device" | "mount-failed" | "fsck" | "no-init" | "no-root-arg" | "break" | "other".
   * emergency-mode: "root-locked" | "rescue" (rescue.target) | undefined.
   * timeout: deepest stage reached, or "no-output".
   * ssh: the terminal failure the log showed anyway, if any.
   */
  detail?: string;
  /** The log lines that prove the outcome: escape codes stripped, trimmed, in order, at most 12 (15 for timeout). */
  evidence: string[];
  reached: BootStages;
}

export interface ClassifyOptions {
  /** The lab reached sshd on the guest. */
  sshAnswered?: boolean;
  /** The lab gave up waiting. Informational: an inconclusive log is a `timeout` either way. */
  timedOut?: boolean;
}

const MAX_EVIDENCE = 12;
const TIMEOUT_EVIDENCE = 15;

// ---------------------------------------------------------------- text clean-up

/**
 * Strip terminal control sequences and split into trimmed, non-empty lines.
 * Cursor moves and screen clears (GRUB's menu, drawn with terminfo) become line
 * breaks so text painted at different screen places does not run together; a
 * bare `\r` (systemd's status line redrawn in place, GRUB's "\n\r") is a break too.
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

const FIRMWARE_BANNER = /SeaBIOS \(version /;
const KERNEL_BANNER = /Linux version \d/;

const REACHED: Record<keyof BootStages, RegExp> = {
  firmware: /SeaBIOS \(version |Booting from (?:Hard Disk|Floppy|DVD\/CD|ROM)|No bootable device\./,
  grub: /Welcome to GRUB|GRUB loading|GNU GRUB +version|^Loading Linux |^Loading initial ramdisk|Booting `|grub rescue>/,
  kernel: KERNEL_BANNER,
  initramfs: /Loading, please wait\.\.\.|Begin: Loading essential drivers|Run \/init as init process/,
  userspace: /systemd\[1\]:|Welcome to Debian|^\[\s*OK\s*\] /,
};

/** A getty prompt: "<host> login:", possibly followed by kernel messages on the same line. */
const LOGIN_PROMPT = /^(?!Last login:)[A-Za-z0-9][A-Za-z0-9.-]* login:(?:\s|$)/;
/** The /etc/issue line getty prints before the prompt: "Debian GNU/Linux 12 vmlab ttyS0". */
const ISSUE_LINE = /GNU\/Linux .*\btty\S+$/;

interface FailureRule {
  outcome: TerminalBootOutcome;
  /** A line that proves the boot stopped. */
  decisive: RegExp;
  /** Lines worth showing as evidence (the decisive ones always are). */
  evidence: RegExp;
  detail?: (lines: string[], at: number) => string | undefined;
}

const RULES: FailureRule[] = [
  {
    outcome: "no-bootable-device",
    decisive: /No bootable device\./,
    evidence: /^Boot failed: |No bootable device\./,
  },
  {
    outcome: "grub-rescue",
    // "grub>" is GRUB's normal-mode shell: reached when grub.cfg is missing or unusable.
    decisive: /^grub rescue>|^grub>(?:\s|$)/,
    evidence: /^error: |Entering rescue mode|^grub rescue>|^grub>(?:\s|$)/,
    detail: (lines, at) => (lines[at].startsWith("grub rescue>") ? "rescue" : "normal-shell"),
  },
  {
    outcome: "kernel-panic",
    decisive: /Kernel panic - not syncing: /,
    evidence:
      /VFS: |No filesystem could mount root|Please append a correct "root="|Failed to execute \S+|Cannot open root device|\/dev\/root: Can't open blockdev|BUG: |Oops: /,
    detail: (lines, at) => {
      const l = lines[at];
      if (/VFS: Unable to mount root fs/.test(l)) return "no-root";
      if (/No working init found|Attempted to kill init|Requested init \S+ failed/.test(l)) return "no-init";
      return "other";
    },
  },
  {
    outcome: "initramfs-shell",
    decisive: new RegExp(
      [
        /ALERT! +.* does not exist\. +Dropping to a shell!/,
        /Gave up waiting for .+ device\. +Common problems:/, // the fatal variant; "…for suspend/resume device" alone is harmless
        /^\(initramfs\)/,
        /^BusyBox v\S+ .*built-in shell/,
        /^Failed to mount \S+ as \S+ file system\./,
        /requires a manual fsck$/,
        /^No root device specified\. Boot arguments must include a root= parameter\./,
        /^No init found\. Try passing init= bootarg\./,
        /^Spawning shell within the initramfs/,
      ]
        .map((r) => r.source)
        .join("|"),
    ),
    evidence:
      /ALERT! |Gave up waiting for .+ device\. +Common problems:|^Failed to mount \S+ as |requires a manual fsck|fsck exited with status code|^mount: mounting .* failed|^No root device specified|^No init found|^Spawning shell within|(?:Rebooting|Halting) automatically due to panic=|^BusyBox v|^\(initramfs\)/,
    detail: (lines, at) => {
      const text = lines.slice(0, at + 1).join("\n");
      if (/ALERT! |Gave up waiting for .+ device\./.test(text)) return "no-root-device";
      if (/requires a manual fsck/.test(text)) return "fsck";
      if (/Failed to mount \S+ as /.test(text)) return "mount-failed";
      if (/No init found/.test(text)) return "no-init";
      if (/No root device specified/.test(text)) return "no-root-arg";
      if (/Spawning shell within the initramfs/.test(text)) return "break";
      return "other";
    },
  },
  {
    outcome: "emergency-mode",
    // local-fs.target has OnFailure=emergency.target: once it failed, emergency mode follows.
    // A device timeout or a failed mount alone is not enough (a `nofail` mount does not stop the boot).
    decisive: new RegExp(
      [
        /You are in (?:emergency|rescue) mode/,
        /Give root password for maintenance/,
        /Cannot open access to console, the root account is locked/,
        /Entering emergency mode/,
        // unit names may be ellipsized to the console width ("loca…s.target"); descriptions are not
        /Reached target (?:emergency\.target|rescue\.target|.* - (?:Emergency|Rescue) Mode\.)/,
        /Started (?:emergency\.service|rescue\.service|.* - (?:Emergency|Rescue) Shell\.)/,
        /Dependency failed for (?:local-fs\.target|Local File Systems)/,
      ]
        .map((r) => r.source)
        .join("|"),
    ),
    evidence:
      /^\[FAILED\]|^\[ TIME \]|^\[DEPEND\]|Timed out waiting for device|Dependency failed for|Failed to mount |You are in (?:emergency|rescue) mode|Give root password|Cannot open access to console|Entering emergency mode|Reached target .*(?:emergency|rescue|Emergency|Rescue)|Started .*(?:Emergency|Rescue) Shell/,
    detail: (lines) => {
      const text = lines.join("\n");
      if (/the root account is locked/.test(text)) return "root-locked";
      if (/You are in rescue mode|Rescue Mode\.|Rescue Shell\./.test(text)) return "rescue";
      return undefined;
    },
  },
];

const TERMINAL = new Set<BootOutcome>(RULES.map((r) => r.outcome));

// ---------------------------------------------------------------- helpers

/** Split a console log into boots, at each firmware banner (or kernel banner when firmware is silent). */
export function splitBoots(log: string): string[][] {
  const lines = consoleLines(log);
  const marker = lines.some((l) => FIRMWARE_BANNER.test(l)) ? FIRMWARE_BANNER : KERNEL_BANNER;
  const boots: string[][] = [];
  let current: string[] = [];
  for (const line of lines) {
    if (marker.test(line) && current.some((l) => marker.test(l))) {
      boots.push(current);
      current = [];
    }
    current.push(line);
  }
  boots.push(current);
  return boots;
}

function reachedStages(lines: string[]): BootStages {
  const r = { firmware: false, grub: false, kernel: false, initramfs: false, userspace: false };
  for (const line of lines) {
    for (const stage of Object.keys(REACHED) as (keyof BootStages)[]) {
      if (!r[stage] && REACHED[stage].test(line)) r[stage] = true;
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
    const at = lines.findIndex((l) => rule.decisive.test(l));
    if (at >= 0 && (best === null || at < best.at)) best = { rule, at };
  }
  if (!best) return null;
  const { rule, at } = best;
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
  const evidence = lines.slice(from, to).filter((l, i) => from + i === at || rule.evidence.test(l));
  return { outcome: rule.outcome, detail: rule.detail?.(lines, at), evidence: cap(evidence) };
}

function findLastIndex(lines: string[], pred: (l: string) => boolean, before: number): number {
  for (let i = Math.min(before, lines.length - 1); i >= 0; i--) if (pred(lines[i])) return i;
  return -1;
}

function deepestStage(reached: BootStages): string {
  const order: (keyof BootStages)[] = ["userspace", "initramfs", "kernel", "grub", "firmware"];
  return order.find((s) => reached[s]) ?? "no-output";
}

function lastLines(lines: string[], n: number): string[] {
  const out: string[] = [];
  for (const l of lines) if (out[out.length - 1] !== l) out.push(l); // collapse repeated lines
  return out.slice(-n);
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

/** The last login prompt and the issue line before it, or null. */
function loginEvidence(lines: string[]): string[] | null {
  const at = findLastIndex(lines, (l) => LOGIN_PROMPT.test(l), lines.length - 1);
  if (at < 0) return null;
  const issue = findLastIndex(lines, (l) => ISSUE_LINE.test(l), at);
  return issue >= 0 && at - issue <= 3 ? [lines[issue], lines[at]] : [lines[at]];
}

/** Prompts are printed without a newline; any other unterminated last line may still be growing. */
const PROMPT_TAIL = /(?:grub rescue>|grub>|\(initramfs\)|login:|\(or press Control-D to continue\):)\s*$/;

/**
 * For a log that is still being written: the classification as soon as it
 * shows a boot that will never reach SSH (no-bootable-device, grub-rescue,
 * kernel-panic, initramfs-shell, emergency-mode), else null.
 *
 * Timing, for callers choosing how long to wait: initramfs-tools prints its
 * "Gave up waiting for root file system device" / "ALERT!" lines only after
 * its rootdelay (max(30 s, rootdelay=) of "Begin: Running /scripts/local-block"),
 * and systemd fails local-fs.target ("Dependency failed for local-fs.target",
 * decisive here) only after the device timeout (default 90 s of "A start job is
 * running for /dev/disk/by-uuid/…"). An unterminated last line is ignored
 * unless it is a prompt, so a half-written "Kernel panic" line does not get a
 * wrong `detail`.
 */
export function terminalOutcome(log: string): BootClassification | null {
  let complete = log;
  const lastBreak = Math.max(log.lastIndexOf("\n"), log.lastIndexOf("\r"));
  const tail = log.slice(lastBreak + 1);
  if (tail.length > 0 && !PROMPT_TAIL.test(consoleLines(tail).join(" "))) complete = log.slice(0, lastBreak + 1);
  const c = classifyBoot(complete);
  return TERMINAL.has(c.outcome) ? c : null;
}

/**
 * A firmware that handed over to a disk and then printed nothing more: the
 * disk has a 0x55AA signature but no working boot code (a partition table
 * written onto a blank disk, a zeroed first 446 bytes). The CPU is left
 * running whatever the sector held, so the log never says so itself; the
 * caller decides how long a silence is conclusive and asks this whether the
 * log stopped at that hand-over.
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
