/**
 * Training mode: break-fix exercises on real guests (exercises/<name>/).
 *
 * An exercise is a folder a trainer writes without TypeScript: the story
 * (exercise.md with front matter), how the machine is broken (break.sh or a
 * fault by name), hints (hints.md), the check (front matter `check:`), and the
 * reference solution (solve.sh, on the guest or in the rescue system).
 *
 * A training session is a kept machine forked from the exercise's broken
 * checkpoint, with an unguessable token; the terminal commands (`vmlab train
 * ...`) and the browser (`vmlab train serve`) both drive sessions through
 * src/training/session.ts.
 */

export interface ExerciseCheck {
  /** Reboot through the firmware before judging (default true). */
  reboot: boolean;
  /** The boot outcome a fixed machine reaches (default "ssh"). */
  outcome: string;
  /** Where `/` must be afterwards, a device path (optional). */
  root?: string;
  /** The data set seeded before the break must be intact (default true). */
  data: boolean;
  /** Commands that must succeed on the fixed machine, each with what it proves in words. */
  commands: { run: string; says: string }[];
}

export interface Exercise {
  name: string;
  dir: string;
  title: string;
  level: "beginner" | "intermediate" | "advanced";
  minutes: number;
  /** An image recipe's name, or `layout:PATH` for a layout.json in the exercise's folder. */
  image: string;
  tags: string[];
  /** Extra blank disks, sizes like "1G". */
  disks: string[];
  /** The story the trainee reads (Markdown, without the front matter). */
  story: string;
  /**
   * How the machine is broken: a script run on the guest over SSH, a fault
   * from the library, or both (the script first, then the fault).
   */
  break: { script?: string; file?: string; fault?: string; options?: Record<string, string> };
  /** After the break, reboot the machine so the trainee starts at the failure (default true). */
  rebootAfterBreak: boolean;
  /** What the broken machine shows at that reboot: its classified boot outcome (checked when the exercise is built and in CI). */
  broken: { outcome: string; evidence?: string };
  hints: string[];
  check: ExerciseCheck;
  /** The reference solution: a script, on the machine itself over SSH or in the rescue system with the machine's disks. */
  solve: { script: string; file: string; where: "guest" | "rescue" | "console" };
  /** Whether the trainee needs the rescue system (the solution runs there). */
  needsRescue: boolean;
}

export interface BootSummary {
  outcome: string;
  detail?: string;
  via: string;
  evidence: string[];
  durationMs: number;
}

export interface CheckAttempt {
  at: string;
  pass: boolean;
  /** The boot the check made, classified, with its evidence lines. */
  boot?: BootSummary;
  root?: { device: string; fstype: string };
  data?: { intact: boolean; summary: string };
  commands: { run: string; says: string; ok: boolean; output: string }[];
  /** Why it is not yet fixed, in words a trainee understands; empty on a pass. */
  reasons: string[];
  /** One line: "passed" or "not yet: ...". */
  summary: string;
  /** Set when the attempt was judged from a boot recorded earlier instead of a new one (`vmlab train prove`). */
  judgedFrom?: string;
}

export type SessionState = "starting" | "running" | "rescue" | "passed" | "gave-up" | "stopped";

export interface TrainingSession {
  id: string;
  /** Opens this session's terminals and actions, and nothing else. Never printed in listings for other sessions. */
  token: string;
  exercise: string;
  state: SessionState;
  startedAt: string;
  lastActivityAt: string;
  /** The kept machine (src/vm/kept.ts) the session runs on, and its rescue system while in rescue. */
  machine: string;
  rescue?: string;
  hintsUsed: number;
  checks: CheckAttempt[];
  resets: number;
  /** The session's own directory: console logs, check reports, the data set's manifest. */
  dir: string;
}

/** Where a session's terminals connect: the serial console socket and SSH of the machine now in front (the rescue system while in rescue). */
export interface SessionTerminals {
  serialSocket: string;
  ssh: { host: string; port: number; user: string; keyPath: string };
  machine: string;
}
