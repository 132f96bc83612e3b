/**
 * One shell, as a person at a terminal has: every block of a runbook runs in
 * bash on the guest with the working directory, variables and functions the
 * blocks before it left, and with `set -e`: the first failing command ends
 * the block. Each block is its own bash process (over a new SSH connection,
 * or typed on the serial console), so the state travels through the lab:
 * when a block ends, bash prints its state (`cd`, `declare -p`, `declare -f`)
 * after a marker line, and the next block starts by reading it back. A new
 * SSH session or a reboot starts from a fresh login, as it would for a
 * person.
 *
 * Everything here is deterministic text (no random tags), so a forked run
 * replays the same commands its good path recorded (src/scenario/share.ts).
 */
import type { RunbookBlock } from "./parse.ts";

export const BLOCK_DIR = "/run/vmlab-runbook";
export const STATE_MARK = "@@vmlab-runbook-state@@";
export const ERROR_MARK = "@@vmlab-runbook-error@@";
const EOF_MARK = "@@vmlab-runbook-eof@@";

/**
 * Variables a new shell sets itself, or that belong to one SSH connection:
 * never carried from one block to the next.
 */
const NOT_CARRIED =
  "INVOCATION_ID|SYSTEMD_EXEC_PID|JOURNAL_STREAM|HUSHLOGIN|__vmlab*|BASH*|EUID|PPID|UID|SHELLOPTS|SHLVL|PWD|OLDPWD|LINENO|RANDOM|SRANDOM|SECONDS|EPOCHREALTIME|EPOCHSECONDS|FUNCNAME|GROUPS|PIPESTATUS|DIRSTACK|HOSTNAME|HOSTTYPE|MACHTYPE|OSTYPE|OPTERR|OPTIND|OPTARG|IFS|COLUMNS|LINES|HIST*|COMP_*|SSH_*|_|PS1|PS2|PS4|TERM|MAIL|MAILCHECK|MAILPATH|LOGNAME|USER|HOME|SHELL|MOTD_SHOWN|XDG_*";

/** The bash script of one block: the state before it, errexit, and what saves the state after it. */
export function blockScript(block: Pick<RunbookBlock, "text">, state: string): { script: string; preludeLines: number } {
  const prelude = [
    "# the shell state the blocks before this one left",
    state.trimEnd(),
    "__vmlab_save() {",
    "  __vmlab_rc=$?",
    `  { printf 'cd -- %q 2>/dev/null || cd /\\n' "$PWD"`,
    "    __vmlab_names=",
    "    for __vmlab_v in $(compgen -v); do",
    `      case $__vmlab_v in ${NOT_CARRIED}) continue ;; esac`,
    '      __vmlab_names="$__vmlab_names $__vmlab_v"',
    "    done",
    "    [ -n \"$__vmlab_names\" ] && declare -p $__vmlab_names",
    "    __vmlab_names=",
    "    for __vmlab_v in $(compgen -A function); do",
    "      case $__vmlab_v in __vmlab*) continue ;; esac",
    '      __vmlab_names="$__vmlab_names $__vmlab_v"',
    "    done",
    "    [ -n \"$__vmlab_names\" ] && declare -f $__vmlab_names",
    `  } > ${BLOCK_DIR}/state 2>/dev/null`,
    "  exit $__vmlab_rc",
    "}",
    "trap __vmlab_save EXIT",
    `trap 'printf "\\n%s %s %s\\n" "${ERROR_MARK}" "$LINENO" "$BASH_COMMAND" >&2' ERR`,
    "set -eE",
  ].filter((l) => l !== "");
  const head = prelude.join("\n");
  // The state is many lines in one entry: count the lines, not the entries.
  return { script: `${head}\n${block.text}\n`, preludeLines: head.split("\n").length };
}

/**
 * The command that runs a block's script on the guest: it writes the script
 * to a file on /run (never on `/`, which a runbook may remount read-only or
 * pivot away from), runs it with bash and no standard input, and prints the
 * state after a marker line. POSIX sh, for SSH and the serial console alike.
 */
export function blockCommand(script: string): string {
  return [
    `mkdir -p ${BLOCK_DIR} && rm -f ${BLOCK_DIR}/state && cat > ${BLOCK_DIR}/block.sh <<'${EOF_MARK}'`,
    script.trimEnd(),
    EOF_MARK,
    `bash ${BLOCK_DIR}/block.sh </dev/null`,
    "rc=$?",
    `printf '\\n%s\\n' '${STATE_MARK}'`,
    `cat ${BLOCK_DIR}/state 2>/dev/null`,
    "exit $rc",
  ].join("\n");
}

export interface BlockOutcome {
  /** What the block printed, without the lab's state. */
  stdout: string;
  /** What it printed on stderr, without the lab's error marker. */
  stderr: string;
  /** The shell state it left, for the next block; undefined when the block did not get to the end (the connection dropped). */
  state?: string;
  /** The command that failed, with its line in the block's script (1-based, the prelude not counted). */
  failed?: { line: number; command: string };
}

/** Split what a block's command printed into its output, its state and the failing command. */
export function readBlockOutput(stdout: string, stderr: string, preludeLines: number): BlockOutcome {
  const at = stdout.lastIndexOf(`\n${STATE_MARK}\n`);
  const out: BlockOutcome = { stdout: at >= 0 ? stdout.slice(0, at) : stdout, stderr };
  if (at >= 0) out.state = stdout.slice(at + STATE_MARK.length + 2);
  const errs = [...stderr.matchAll(new RegExp(`\\n?${ERROR_MARK} (\\d+) (.*)\\n?`, "g"))];
  if (errs.length) {
    // The first is the innermost: a failing command inside a function or a subshell reports before its caller.
    const first = errs[0]!;
    out.failed = { line: Number(first[1]) - preludeLines, command: first[2]! };
    out.stderr = stderr.replace(new RegExp(`\\n?${ERROR_MARK} \\d+ .*(\\n|$)`, "g"), "$1");
  }
  return out;
}

/** A block that reboots the machine itself: the lab waits for that boot instead of rebooting it. */
export function rebootsItself(text: string): boolean {
  // In command position: at the start of a line, or after ; & | ( (and a sudo).
  return /(?:^|[;&|(])\s*(?:sudo\s+)?(reboot|systemctl\s+(--\S+\s+)*(reboot|kexec)|shutdown\s+(-\S*\s+)*-r\S*|telinit\s+6|init\s+6)(\s|$|;)/m.test(
    text.replace(/#.*$/gm, ""),
  );
}
