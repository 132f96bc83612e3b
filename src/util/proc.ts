import { execa, type Options } from "execa";
import { VmlabError } from "../errors.ts";

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * Quote one argument for a POSIX shell. The lab's one quoting of its own,
 * kept for what a POSIX shell, not bash, reads: the command lines vmlab
 * shows (to copy into any shell: `commandLine`, `vmlab inspect`'s mount
 * commands), the `exec:` URIs QEMU hands to /bin/sh, and the script of
 * `sh -c` in `Machine.copyTo`; /bin/sh is dash on Debian. Guest commands
 * go to root's login shell, bash, and are built with `sh` (src/vm/guest-sh.ts)
 * on zx's `quote`. zx has no POSIX quoting: its `quote` writes bash's
 * $'...', which dash reads as a `$` and a string, and `quotePowerShell`
 * doubles quotes the PowerShell way.
 */
export function shellQuote(arg: string): string {
  return arg !== "" && /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function commandLine(file: string, args: readonly string[]): string {
  return [file, ...args].map(shellQuote).join(" ");
}

/**
 * Run a host command; a non-zero exit becomes a VmlabError that shows the
 * command line, the exit code and what the command printed.
 */
export async function run(
  file: string,
  args: readonly string[],
  opts: Options & { hint?: string } = {},
): Promise<RunResult> {
  const { hint, ...execaOpts } = opts;
  const stdin = execaOpts.input !== undefined ? undefined : (execaOpts.stdin ?? "ignore");
  const r = await execa(file, args, { reject: false, ...execaOpts, stdin } as Options);
  const out = { stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? ""), exitCode: r.exitCode ?? -1 };
  if (r.failed || out.exitCode !== 0) {
    const why = r.exitCode === undefined ? (r.signal ? `killed by ${r.signal}` : r.shortMessage) : `exit code ${r.exitCode}`;
    throw new VmlabError(`${file} failed (${why})`, {
      where: commandLine(file, args),
      output: [out.stderr, out.stdout].filter(Boolean).join("\n"),
      hint,
    });
  }
  return out;
}
