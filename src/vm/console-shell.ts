/**
 * A root shell on a machine's serial console: the way back in when SSH is
 * gone. Commands are typed, and each one's exit code comes back in a marker
 * line that the typed text itself cannot match (the shell expands `$?`).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { randomBytes } from "node:crypto";
import { VmlabError } from "../errors.ts";
import { CONSOLE_ROOT_PASSWORD } from "../image/keys.ts";
import type { Machine } from "./machine.ts";

export interface ConsoleResult {
  exitCode: number;
  /** What the console printed while the command ran (kernel messages included). */
  output: string;
}


export class ConsoleShell {
  private loggedIn = false;
  constructor(readonly vm: Machine) {}

  /** Wait until the console text printed since `from` matches, or throw with its tail. */
  async waitFor(from: number, re: RegExp, timeoutMs: number, what: string): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = await this.vm.consoleSince(from);
      if (re.test(text)) return text;
      if (Date.now() > deadline || !this.vm.running) {
        throw new VmlabError(`serial console: ${what} did not appear within ${Math.round(timeoutMs / 1000)} s`, {
          where: `machine ${this.vm.opts.name}, console log ${this.vm.serialLog}`,
          output: text.split("\n").slice(-20).join("\n"),
          hint: this.vm.running ? "attach with `vmlab console <id>` to see what the guest shows" : "QEMU is no longer running",
        });
      }
      await sleep(250);
    }
  }

  /** Log in as root with the lab's console password (see README, "Stepping into a machine"). */
  async login(timeoutMs = 120_000): Promise<void> {
    if (this.loggedIn) return;
    let from = await this.vm.logOffset();
    await this.vm.type("\n");
    await this.waitFor(from, /login: *$/m, timeoutMs, "the login prompt");
    from = await this.vm.logOffset();
    await this.vm.type("root\n");
    await this.waitFor(from, /Password: *$/m, 30_000, "the password prompt");
    from = await this.vm.logOffset();
    await this.vm.type(`${CONSOLE_ROOT_PASSWORD}\n`);
    await this.waitFor(from, /# *$/m, 60_000, "a root shell prompt");
    this.loggedIn = true;
    // No echo, no prompt, no pager or colours, and kernel messages off the
    // console: what a command prints is all that comes back.
    await this.succeed("stty -echo cols 500; export PS1= PS2= TERM=dumb PAGER=cat SYSTEMD_PAGER= SYSTEMD_COLORS=0; dmesg -n 1");
  }

  /**
   * Type a command and wait for its exit code. Never throws for a non-zero
   * exit. A script of several lines (or with `input`) is typed as base64 into
   * a file first, a chunk a line, and run from there: a tty takes at most 4 KiB a line.
   */
  async run(command: string, opts: { timeoutMs?: number; input?: string } = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    let line = command;
    if (command.includes("\n") || command.length > 900 || opts.input !== undefined) {
      const f = `/run/vmlab-console-${randomBytes(3).toString("hex")}`;
      const b64 = (t: string) => Buffer.from(t).toString("base64");
      const chunks = (t: string) => b64(t).match(/.{1,800}/g) ?? [];
      for (const c of chunks(command)) await this.exec(`printf %s ${c} >> ${f}.b64`, 30_000);
      let run = `base64 -d ${f}.b64 > ${f}.sh; sh ${f}.sh`;
      if (opts.input !== undefined) {
        for (const c of chunks(opts.input)) await this.exec(`printf %s ${c} >> ${f}.in.b64`, 30_000);
        run = `base64 -d ${f}.b64 > ${f}.sh; base64 -d ${f}.in.b64 > ${f}.in; sh ${f}.sh < ${f}.in`;
      }
      line = `${run}; rc=$?; rm -f ${f}.*; (exit $rc)`;
    }
    const r = await this.exec(line, opts.timeoutMs ?? 120_000);
    return { exitCode: r.exitCode, stdout: r.output, stderr: "" };
  }

  private async exec(line: string, timeoutMs: number): Promise<ConsoleResult> {
    const tag = `VMLAB-${randomBytes(4).toString("hex")}`;
    const from = await this.vm.logOffset();
    const end = `echo "${tag}-RC=$?-"`;
    await this.vm.type(`${line}; ${end}\n`);
    const re = new RegExp(`${tag}-RC=(\\d+)-`);
    const text = await this.waitFor(from, re, timeoutMs, `the end of \`${line.slice(0, 80)}\``);
    const m = re.exec(text)!;
    let body = text.slice(0, m.index);
    // With echo on (before login settles it), the typed line comes back first.
    const echoed = body.indexOf(end);
    if (echoed >= 0) body = body.slice(body.indexOf("\n", echoed) + 1);
    return { exitCode: Number(m[1]), output: body.replace(/\r/g, "").replace(/\n$/, "") };
  }

  async succeed(command: string, opts: { timeoutMs?: number; input?: string; hint?: string } = {}): Promise<string> {
    const r = await this.run(command, opts);
    if (r.exitCode !== 0) {
      throw new VmlabError(`console command failed with exit code ${r.exitCode}: ${command.split("\n")[0]}`, {
        where: `serial console of machine ${this.vm.opts.name}`,
        output: r.stdout,
        hint: opts.hint ?? `the whole console log is ${this.vm.serialLog}`,
      });
    }
    return r.stdout;
  }
}
