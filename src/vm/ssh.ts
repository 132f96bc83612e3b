import { execa } from "execa";
import { VmlabError } from "../errors.ts";

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  keyPath: string;
}

export interface SshResult {
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface SshOptions {
  /** Give up on the command after this long (the connection is killed). */
  timeoutMs?: number;
  /** Text sent to the command's standard input. */
  input?: string;
  /** Seconds to wait for the TCP connection and handshake. */
  connectTimeoutS?: number;
}

/** ssh exits 255 when the connection itself failed, not the remote command. */
export const SSH_CONNECTION_FAILED = 255;

/**
 * What every ssh to a lab guest says: the lab key and nothing else, no host
 * key checks (every run is a new guest on a new port), quiet.
 */
export function labSshOptions(keyPath: string, port: number, connectTimeoutS = 10): string[] {
  return [
    "-i", keyPath,
    "-p", String(port),
    "-o", "IdentitiesOnly=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", `ConnectTimeout=${connectTimeoutS}`,
    // The guest does its half of every key exchange under emulation. The
    // default hybrid sntrup761x25519 costs it noticeably more than plain
    // X25519, on every command, and a throwaway lab key gains nothing from it.
    "-o", "KexAlgorithms=curve25519-sha256",
  ];
}

export function sshArgs(t: SshTarget, command: string, connectTimeoutS = 10): string[] {
  return [
    ...labSshOptions(t.keyPath, t.port, connectTimeoutS),
    "-o", "BatchMode=yes",
    // A TCG guest sharing two cores with another can stall for many seconds:
    // only call the connection dead after two minutes of silence.
    "-o", "ServerAliveInterval=10",
    "-o", "ServerAliveCountMax=12",
    `${t.user}@${t.host}`,
    command,
  ];
}

/** Run one command over a new SSH connection. Never throws for a non-zero exit. */
export async function sshRun(t: SshTarget, command: string, opts: SshOptions = {}): Promise<SshResult> {
  const r = await execa("ssh", sshArgs(t, command, opts.connectTimeoutS), {
    reject: false,
    input: opts.input ?? "",
    timeout: opts.timeoutMs,
    forceKillAfterDelay: 2000,
    stripFinalNewline: false,
  });
  const exitCode = r.timedOut ? -1 : (r.exitCode ?? -1);
  return { command, exitCode, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "") };
}

export class SshCommandError extends VmlabError {
  constructor(
    message: string,
    readonly result: SshResult,
    where: string,
    hint?: string,
  ) {
    super(message, {
      where,
      output: formatResult(result),
      hint,
    });
  }
}

export function formatResult(r: SshResult): string {
  const parts = [`$ ${r.command}`, `exit code: ${r.exitCode === -1 ? "timed out" : r.exitCode}`];
  if (r.stdout.trim()) parts.push(`stdout:\n${r.stdout.trimEnd()}`);
  if (r.stderr.trim()) parts.push(`stderr:\n${r.stderr.trimEnd()}`);
  return parts.join("\n");
}
