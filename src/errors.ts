/**
 * Errors meant for people. Every error the lab raises says what failed, where,
 * what the guest (or tool) printed, and what to try next.
 */
export interface ErrorDetails {
  /** Where it happened: scenario, step, command, file. */
  where?: string;
  /** What the guest or the tool printed that explains the failure. */
  output?: string;
  /** What to try next. */
  hint?: string;
  cause?: unknown;
}

export class VmlabError extends Error {
  readonly where?: string;
  readonly output?: string;
  readonly hint?: string;
  /** Process exit code the command line should use for this error. */
  readonly exitCode: number = 1;

  constructor(message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.where = details.where;
    this.output = details.output;
    this.hint = details.hint;
  }

  /** A multi-line text for the terminal. */
  describe(): string {
    const lines = [this.message];
    if (this.where) lines.push(`  where: ${this.where}`);
    if (this.output && this.output.trim()) {
      lines.push("  output:");
      for (const l of this.output.trimEnd().split("\n").slice(-30)) lines.push(`    ${l}`);
    }
    if (this.hint) lines.push(`  try: ${this.hint}`);
    return lines.join("\n");
  }
}

/** Bad input from the user: unknown names, bad sizes, bad flags. Exit code 2, nothing changed. */
export class UsageError extends VmlabError {
  override readonly exitCode = 2;
}

/** The host is not ready: a missing tool, a missing image. Exit code 2. */
export class HostError extends VmlabError {
  override readonly exitCode = 2;
}

const FS_WHY: Record<string, string> = {
  EROFS: "the file system is read-only",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOSPC: "no space left on the device",
  EDQUOT: "the disk quota is exceeded",
};

/**
 * A host file-system failure (a read-only or full cache, a report directory
 * that cannot be written) as an error for people: what could not be
 * written, where, and what to do. Undefined for anything else.
 */
export function hostFsError(err: unknown, cache: string): HostError | undefined {
  const e = err as NodeJS.ErrnoException;
  if (!e || typeof e !== "object" || typeof e.code !== "string" || !e.path) return undefined;
  const writing = /^(mkdir|open|write|rename|copyfile|symlink|link|unlink|rmdir|rm)$/.test(e.syscall ?? "");
  let why = FS_WHY[e.code];
  // mkdir under a read-only mount can also say that a parent is missing.
  if (!why && e.code === "ENOENT" && e.syscall === "mkdir") why = "it cannot be created there";
  if (!why || !writing) return undefined;
  const inCache = e.path === cache || e.path.startsWith(`${cache}/`);
  const hint =
    e.code === "ENOSPC" || e.code === "EDQUOT"
      ? `free space on the file system that holds ${e.path} (\`df -h\`), or point ${inCache ? "VMLAB_CACHE" : "--report-dir"} at a larger one; nothing half-written is kept`
      : inCache
        ? `the cache directory ${cache} must be writable: set VMLAB_CACHE (or XDG_CACHE_HOME) to a writable directory`
        : "choose a directory you can write (--report-dir, or VMLAB_REPORTS)";
  return new HostError(`cannot write ${e.path}: ${why}`, { where: `${e.syscall} ${e.path}`, output: e.message, hint, cause: err });
}
