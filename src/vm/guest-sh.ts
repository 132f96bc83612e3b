/**
 * Guest command strings, built the way zx builds its commands:
 *
 *     vm.succeed(sh`lvcreate -y -L ${size} -n ${lv} ${vg}`)
 *     vm.sh`lvcreate -y -L ${size} -n ${lv} ${vg}`
 *
 * Every interpolated value is one word quoted with zx's `quote`, an array is
 * one quoted word per item, and a plain word (a device path, a size, a
 * number) is left as it is. The text between the values is the command's
 * own shell syntax and is not touched. zx's `quote` writes bash's `$'...'`,
 * right for guest commands: `Machine.run` hands them over SSH to root's
 * login shell, bash, and the layout's install script is run with `bash -s`.
 * It is not POSIX: what dash (`/bin/sh`) parses needs `shellQuote` from
 * src/util/proc.ts instead, and so does a command of several lines given
 * to `ConsoleShell.run`, which runs those with `sh`.
 */
import { $, quote } from "zx/core";

/** What may go into a guest command: a word, a number, or a list of words. */
export type GuestShValue = string | number | bigint | readonly (string | number | bigint)[];

/**
 * zx's `$` with `halt: true` builds the command (zx's own interpolation)
 * without running it. `quote` and `shell` are pinned, so that a host script's
 * `$.quote = quotePowerShell` or `$.shell = false` cannot change guest commands.
 */
const build = $({ halt: true, quote, shell: true, sync: false });

/** The command string for a guest's bash; see the file's comment. */
export function sh(pieces: TemplateStringsArray, ...values: GuestShValue[]): string {
  const cmd: unknown = build(pieces, ...values).cmd;
  if (typeof cmd !== "string") throw new TypeError(`guest command built as ${typeof cmd}, not a string: ${pieces.join("${...}")}`);
  return cmd;
}
