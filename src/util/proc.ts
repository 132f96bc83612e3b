import { execa, type Options } from "execa";
import { VmlabError } from "../errors.ts";

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * Quote one argument for a POSIX shell: for the command lines vmlab shows
 * (to copy into any shell) and for the `exec:` URIs QEMU hands to /bin/sh,
 * which is dash on Debian. Guest commands go to root's login shell, bash,
 * and are quoted with zx's `quote` instead; zx has no POSIX quoting (its
 * `quote` writes bash's $'...', which dash reads as a `$` and a string).
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
