/**
 * Shell quoting of interpolated values. Guest commands go to root's login
 * shell on the guest, bash, and are quoted with zx's `quote`; what vmlab
 * shows for the user's shell and the `exec:` URIs QEMU runs with /bin/sh
 * (dash on Debian) are quoted the POSIX way with `shellQuote`. Each must give
 * back hostile strings exactly through a real shell.
 */
import { execa } from "execa";
import { quote } from "zx/core";
import { describe, expect, it } from "vitest";
import { findTool } from "../../src/host/tools.ts";
import { inChroot } from "../../src/procedures/temp-root.ts";
import { shellQuote } from "../../src/util/proc.ts";
import { HOSTILE } from "../hostile-strings.ts";


/** What `SHELL -c 'printf %s ARG'` prints for one quoted argument. */
async function roundTrip(shell: string, quoted: string): Promise<string> {
  const r = await execa(shell, ["-c", `printf %s ${quoted}`], { stripFinalNewline: false, env: { HOME: "/nonexistent", PATH: process.env.PATH } });
  return r.stdout;
}

describe("zx's quote, for guest commands (bash)", () => {
  it("gives every hostile string back through bash -c 'printf %s ...'", async () => {
    for (const s of HOSTILE) expect(await roundTrip("bash", quote(s)), JSON.stringify(s)).toBe(s);
  });

  it("quotes the script inChroot runs, once, for the guest's bash", async () => {
    const script = "for k in $(ls /lib/modules); do echo \"$k\" 'x'; done\nupdate-grub";
    const s = inChroot("/mnt/c", script);
    expect(s).toContain(`chroot /mnt/c /bin/sh -ec ${quote(script)}`);
    expect(await roundTrip("bash", quote(script))).toBe(script);
  });

  it("is bash's $'...', not POSIX: dash takes it for a $ and a string (so shellQuote stays for /bin/sh)", async (ctx) => {
    if (!findTool("dash")) ctx.skip();
    expect(quote("two words")).toBe("$'two words'");
    expect(await roundTrip("dash", quote("two words"))).not.toBe("two words");
  });
});

describe("shellQuote, POSIX, for /bin/sh and for commands shown to the user", () => {
  it("gives every hostile string back through sh -c 'printf %s ...' and bash", async () => {
    for (const shell of ["sh", "bash"]) {
      for (const s of HOSTILE) expect(await roundTrip(shell, shellQuote(s)), `${shell}: ${JSON.stringify(s)}`).toBe(s);
    }
  });

  it("leaves plain words alone and quotes the empty string", () => {
    expect(shellQuote("/tmp/disk.qcow2")).toBe("/tmp/disk.qcow2");
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
});
