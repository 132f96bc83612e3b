/**
 * A root shell on a machine's serial console: the way back in when SSH is
 * gone. Commands are typed, and each one's exit code comes back in a marker
 * line that the typed text itself cannot match (the shell expands `$?`).
 */
import { randomBytes } from "node:crypto";
import { VmlabError } from "../errors.ts";
import { CONSOLE_ROOT_PASSWORD } from "../image/keys.ts";
import type { Machine } from "./machine.ts";

export interface ConsoleResult {
  exitCode: number;
  /** What the console printed while the command ran (kernel messages included). */
  output: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
    // A plain prompt and no pager or colours: the log stays readable.
    await this.succeed("export TERM=dumb PAGER=cat SYSTEMD_PAGER= SYSTEMD_COLORS=0; stty cols 500");
  }

  /** Type a command and wait for its exit code. Never throws for a non-zero exit. */
  async run(command: string, opts: { timeoutMs?: number } = {}): Promise<ConsoleResult> {
    if (command.includes("\n")) throw new VmlabError("console commands are typed as one line", { where: command });
    const tag = `VMLAB-${randomBytes(4).toString("hex")}`;
    const from = await this.vm.logOffset();
    await this.vm.type(`${command}; echo "${tag}-RC=$?-"\n`);
    const re = new RegExp(`${tag}-RC=(\\d+)-`);
    const text = await this.waitFor(from, re, opts.timeoutMs ?? 120_000, `the end of \`${command}\``);
    const m = re.exec(text)!;
    // Drop the echoed command line; keep what came after it.
    const body = text.slice(0, m.index);
    const nl = body.indexOf("\n");
    return { exitCode: Number(m[1]), output: (nl >= 0 ? body.slice(nl + 1) : "").replace(/\r/g, "").trimEnd() };
  }

  async succeed(command: string, opts: { timeoutMs?: number; hint?: string } = {}): Promise<string> {
    const r = await this.run(command, opts);
    if (r.exitCode !== 0) {
      throw new VmlabError(`console command failed with exit code ${r.exitCode}: ${command}`, {
        where: `serial console of machine ${this.vm.opts.name}`,
        output: r.output,
        hint: opts.hint ?? `the whole console log is ${this.vm.serialLog}`,
      });
    }
    return r.output;
  }
}
