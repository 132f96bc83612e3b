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
