/**
 * Watching a boot: from the console offset where it began until it reaches
 * SSH, stops in a state it will never leave (a panic, a rescue shell, a
 * firmware that found nothing), or times out; then the record the report
 * keeps, with the proof that it is a new boot.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { VmlabError } from "../errors.ts";
import { classifyBoot, stalledAtHandover, terminalOutcome, type BootClassification } from "../boot/classify.ts";
import { sshRun, type SshTarget } from "./ssh.ts";
import type { SerialConsole } from "./serial.ts";
import type { NewBootProof } from "../verdict/judge.ts";

/** How a machine came up: through the firmware, by direct kernel boot, or resumed from a saved running state. */
export type BootVia = "firmware" | "direct-kernel" | "saved-state";

/** One boot of a machine, as the report records it. */
export interface BootRecord {
  via: BootVia;
  outcome: BootClassification["outcome"];
  detail?: string;
  evidence: string[];
  reached: BootClassification["reached"];
  /** Milliseconds from power-on (or reset) to the outcome. */
  durationMs: number;
  /** Byte range of this boot in the serial log. */
  log: { file: string; from: number; to: number };
  /** Why the boot happened: "start", "reboot", "reset", "power-on after power cut". */
  reason: string;
  /**
   * How the lab knows this is a new boot and not a login to the system that
   * was running before: the banner in this boot's slice of the console, and
   * a boot_id that differs from the one before. Absent for a resume.
   */
  newBoot?: NewBootProof;
}

export interface BootWaitOptions {
  timeoutMs?: number;
  /**
   * The console slice starts at a power-on or reset, so what it holds is one
   * boot and the boots it restarted into: a boot that restarts again and
   * again is a `reboot-loop`. Not for a reboot, whose slice starts with the
   * old system going down.
   */
  singleBoot?: boolean;
  via?: BootVia;
  reason?: string;
}

/** How long the console may stay silent after the firmware jumps to a disk before the disk is judged to hold no boot code. */
export function handoverSilenceMs(accel: "kvm" | "tcg"): number {
  return accel === "kvm" ? 10_000 : 30_000;
}

/** A getty's prompt on the serial console, at the end of a line. */
const LOGIN_PROMPT = /^\S+ login: *$/m;

/** How long SSH may take to answer once the console shows a login prompt (sshd starts alongside the gettys). */
export function loginGraceMs(accel: "kvm" | "tcg"): number {
  return accel === "kvm" ? 20_000 : 60_000;
}

/** The default wait for a boot. */
export function defaultBootTimeoutMs(accel: "kvm" | "tcg"): number {
  // Generous under TCG: two or three guests on two cores stretch a 45 s boot past four minutes.
  return accel === "kvm" ? 90_000 : 480_000;
}

export const BOOT_ID_COMMAND = "cat /proc/sys/kernel/random/boot_id";


/** What a boot watch reads: the console, SSH, whether QEMU still runs. */
export interface BootWatchTarget {
  console: SerialConsole;
  accel: "kvm" | "tcg";
  /** False for a machine without a network: SSH is never tried. */
  network: boolean;
  ssh: SshTarget;
  exited: () => boolean;
  exitInfo: () => string;
  /** The boot_id read before this boot, if any: a new boot must show another one. */
  previousBootId?: string;
  log: (message: string) => void;
}

/**
 * Wait until the boot that starts at `from` in the console log ends, and
 * classify it. Returns the classification and, when SSH answered, the new
 * boot_id.
 */
export async function watchBoot(t: BootWatchTarget, from: number, opts: BootWaitOptions = {}): Promise<{ classification: BootClassification; bootId?: string; started: number }> {
  const timeoutMs = opts.timeoutMs ?? defaultBootTimeoutMs(t.accel);
  const started = Date.now();
  let classification: BootClassification | null = null;
  let lastSsh = 0;
  let seen = -1;
  let grewAt = Date.now();
  // A slice that starts at a power-on or reset holds one boot and whatever it restarted into (a reboot loop).
  const singleBoot = opts.singleBoot ?? false;
  let bootId: string | undefined;
  let sawOld = false;
  let loginAt = 0;
  while (!classification) {
    const text = await t.console.since(from);
    classification = terminalOutcome(text, { singleBoot });
    if (classification) break;
    // A login prompt without SSH: the system is up but off the network. Give sshd its grace, then say so,
    // rather than wait out the whole boot timeout.
    if (!loginAt && LOGIN_PROMPT.test(text)) loginAt = Date.now();
    if (loginAt && t.network && Date.now() - loginAt > loginGraceMs(t.accel)) {
      classification = classifyBoot(text, { timedOut: true, singleBoot });
      break;
    }
    if (text.length !== seen) {
      seen = text.length;
      grewAt = Date.now();
    } else if (Date.now() - grewAt > handoverSilenceMs(t.accel)) {
      // GRUB's boot sector prints "GRUB loading." at once; silence after the hand-over means no boot code.
      classification = stalledAtHandover(text);
      if (classification) break;
    }
    if (t.exited()) {
      classification = classifyBoot(text, { timedOut: true, singleBoot });
      classification.evidence.push(`QEMU exited: ${t.exitInfo()}`);
      break;
    }
    if (Date.now() - started > timeoutMs) {
      classification = classifyBoot(text, { timedOut: true, singleBoot });
      break;
    }
    // Only try SSH once the kernel has started: it saves connection attempts during firmware and GRUB.
    if (t.network && Date.now() - lastSsh > 500 && /Linux version|systemd/.test(text)) {
      lastSsh = Date.now();
      const r = await sshRun(t.ssh, BOOT_ID_COMMAND, { timeoutMs: 15_000, connectTimeoutS: 5 });
      const id = r.stdout.trim();
      if (r.exitCode === 0 && t.previousBootId !== undefined && id === t.previousBootId) {
        // The system from before the reboot, still going down: an SSH login to it is never the new boot.
        if (!sawOld) t.log(`ssh answered with the boot_id from before (${id}): not the new boot yet`);
        sawOld = true;
      } else if (r.exitCode === 0) {
        bootId = id || undefined;
        classification = classifyBoot(await t.console.since(from), { sshAnswered: true });
        break;
      }
    }
    await sleep(250);
  }
  return { classification, bootId, started };
}

/**
 * Whether a boot is proven new: its slice of the console shows the firmware's
 * banner (the kernel's for a direct kernel boot), and when SSH answered, the
 * boot_id differs from the one read before it.
 */
export function newBootProof(via: BootVia, c: Pick<BootClassification, "outcome" | "reached">, bootId: string | undefined, previousBootId: string | undefined): NewBootProof {
  const banner = via === "direct-kernel" ? c.reached.kernel : c.reached.firmware;
  const what = via === "direct-kernel" ? "the kernel's banner" : "the firmware's banner";
  const proof: NewBootProof = { banner, proven: false, why: "" };
  if (bootId) proof.bootId = bootId;
  if (previousBootId) proof.previousBootId = previousBootId;
  if (!banner) proof.why = `${what} is not in this boot's slice of the console`;
  else if (c.outcome === "ssh" && !bootId) proof.why = "ssh answered, but the boot_id was not read";
  else if (c.outcome === "ssh" && previousBootId !== undefined && bootId === previousBootId) proof.why = `the boot_id ${bootId} is the one from before`;
  else {
    proof.proven = true;
    proof.why = c.outcome === "ssh" ? (previousBootId ? `${what}, and boot_id ${previousBootId} → ${bootId}` : `${what}, first boot_id ${bootId}`) : `${what} in this boot's console`;
  }
  return proof;
}

/** Throw unless a boot ended as expected; the message carries the evidence and the console tail. */
export async function expectBoot(m: { name: string; console: SerialConsole }, boot: BootRecord, expected: BootRecord["outcome"]): Promise<void> {
  if (boot.outcome === expected && boot.newBoot?.proven !== false) return;
  if (boot.outcome === expected) {
    throw new VmlabError(`boot ended as ${boot.outcome}, but it is not a proven new boot: ${boot.newBoot!.why}`, {
      where: `machine ${m.name}, boot via ${boot.via} (${boot.reason})`,
      output: await m.console.tail(25, boot.log.from),
      hint: `open the console log ${boot.log.file}`,
    });
  }
  const tail = await m.console.tail(25, boot.log.from);
  throw new VmlabError(`boot ended as ${boot.outcome}${boot.detail ? ` (${boot.detail})` : ""}, expected ${expected}`, {
    where: `machine ${m.name}, boot via ${boot.via} (${boot.reason})`,
    output: [...boot.evidence.map((l) => `evidence: ${l}`), "console tail:", tail].join("\n"),
    hint: `open the console log ${boot.log.file}`,
  });
}
