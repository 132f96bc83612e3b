/**
 * `sh`, the tagged template guest commands are built with (src/vm/guest-sh.ts),
 * and `vm.sh`: each value one word quoted with zx's `quote`, arrays one word
 * per item, plain words and numbers as they are, nothing run on the host;
 * every built command gives its values back exactly through a real bash.
 */
import { execa } from "execa";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { $, quote, quotePowerShell, within } from "zx/core";
import { describe, expect, it } from "vitest";
import { failSectors, holdRootBusy } from "../../src/faults/index.ts";
import { sh } from "../../src/vm/guest-sh.ts";
import { Machine } from "../../src/vm/machine.ts";
import { HOSTILE } from "../hostile-strings.ts";


/** What bash prints for a built command (no profile, no rc). */
async function bash(command: string): Promise<string> {
  const r = await execa("bash", ["--norc", "--noprofile", "-c", command], { stripFinalNewline: false, env: { HOME: "/nonexistent", PATH: process.env.PATH } });
  return r.stdout;
}

describe("sh: guest commands built with zx's quote", () => {
  it("leaves plain words and numbers as they are: the command reads as written", () => {
    const size = "3g";
    const lv = "root";
    const vg = "sys";
    expect(sh`lvcreate -y -L ${size} -n ${lv} ${vg}`).toBe("lvcreate -y -L 3g -n root sys");
    expect(sh`lvcreate -y -L ${4194304}b -n ${lv} ${vg}`).toBe("lvcreate -y -L 4194304b -n root sys");
    expect(sh`dmsetup table ${"sys-root"} ${0} ${-1} ${2n ** 40n}`).toBe("dmsetup table sys-root 0 -1 1099511627776");
    expect(sh`mount ${"/dev/mapper/sys-root"} ${"/mnt/new root"}`).toBe("mount /dev/mapper/sys-root $'/mnt/new root'");
  });

  it("quotes each value as zx's quote does: spaces, quotes, $, backquotes, newlines, the empty string", () => {
    for (const v of [...HOSTILE, ""]) expect(sh`printf %s ${v}`, JSON.stringify(v)).toBe(`printf %s ${quote(v)}`);
    expect(sh`echo ${"a b"}`).toBe("echo $'a b'");
    expect(sh`echo ${"it's"}`).toBe("echo $'it\\'s'");
    expect(sh`echo ${"$HOME"}`).toBe("echo $'$HOME'");
    expect(sh`echo ${"one\ntwo"}`).toBe("echo $'one\\ntwo'");
    expect(sh`echo ${""}`).toBe("echo $''");
  });

  it("spreads an array into one quoted word per item; an empty array is no word", () => {
    expect(sh`printf '%s\\n' ${["a", "b c", 3]}`).toBe("printf '%s\\n' a $'b c' 3");
    expect(sh`ls ${[]}`).toBe("ls ");
  });

  it("does not touch the command's own text between the values", () => {
    expect(sh`for d in $(ls /dev/${"sd*"}); do echo "$d" '$x' >&2; done & echo $!`).toBe(`for d in $(ls /dev/$'sd*'); do echo "$d" '$x' >&2; done & echo $!`);
  });

  it("gives every value back through bash -c 'printf \"%s\\n\" ...', each as one argument", async () => {
    const out = await bash(sh`printf "%s\\n" ${HOSTILE}`);
    expect(out).toBe(HOSTILE.map((v) => `${v}\n`).join(""));
    const nul = await bash(sh`printf '%s\\0' ${HOSTILE} ${""} ${42}`);
    expect(nul.split("\0").slice(0, -1)).toEqual([...HOSTILE, "", "42"]);
    for (const v of HOSTILE) expect(await bash(sh`printf "%s\\n" ${v}`), JSON.stringify(v)).toBe(`${v}\n`);
  });

  it("builds the command without running anything on the host", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "vmlab-sh-")), "ran");
    const built = sh`touch ${file}`;
    await new Promise((r) => setTimeout(r, 200));
    expect(built).toBe(`touch ${file}`);
    expect(existsSync(file)).toBe(false);
  });

  it("keeps zx's quote when a host script sets another quote, prefix or shell for its own $", () => {
    within(() => {
      $.quote = quotePowerShell;
      $.prefix = "set -x;";
      $.shell = "/nonexistent/shell";
      expect(sh`echo ${"a b"} ${"it's"}`).toBe("echo $'a b' $'it\\'s'");
    });
  });
});

/** A Machine that records the commands it is given instead of running them. */
function recorder(stdout = ""): { vm: Machine; commands: string[] } {
  const commands: string[] = [];
  const vm = Object.create(Machine.prototype) as Machine;
  vm.run = async (command: string) => {
    commands.push(command);
    return { command, exitCode: 0, stdout, stderr: "" };
  };
  return { vm, commands };
}

describe("vm.sh and the commands built with sh", () => {
  it("vm.sh runs the built command and returns run's result", async () => {
    const { vm, commands } = recorder("done\n");
    const size = "3g";
    const r = await vm.sh`lvcreate -y -L ${size} -n ${"root"} ${"my vg"}`;
    expect(commands).toEqual(["lvcreate -y -L 3g -n root $'my vg'"]);
    expect(r).toEqual({ command: "lvcreate -y -L 3g -n root $'my vg'", exitCode: 0, stdout: "done\n", stderr: "" });
  });

  it("the faults' commands are what they were: each value quoted once", async () => {
    const busy = recorder("1234\n");
    await holdRootBusy(busy.vm);
    expect(busy.commands[0]).toBe(`setsid sh -c $'exec 3>>/root/busy-root.log; while :; do date >&3; sleep 5; done' </dev/null >/dev/null 2>&1 & echo $!`);
    const io = recorder("0 8192 linear 8:2 2048\n");
    await failSectors(io.vm, "sys-root", 100, 10);
    expect(io.commands).toEqual([
      "dmsetup table sys-root",
      `dmsetup suspend sys-root && printf '%s\\n' $'0 100 linear 8:2 2048' $'100 10 error' $'110 8082 linear 8:2 2158' | dmsetup reload sys-root && dmsetup resume sys-root`,
    ]);
  });
});
