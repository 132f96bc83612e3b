import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.ts";
import { consoleCommands, parseDirectives, parseRunbook } from "../../src/runbook/parse.ts";
import { firstDifference, loadRunbook, runbookScenario } from "../../src/runbook/scenario.ts";
import { blockCommand, blockScript, readBlockOutput, rebootsItself } from "../../src/runbook/shell.ts";
import { defaultBoundaries, planSteps } from "../../src/suite/sweep.ts";
import { validateScenario } from "../../src/scenario/registry.ts";

const usage = (fn: () => unknown): UsageError => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error("expected a UsageError");
};

const md = (s: string) => s.replace(/^\n/, "");

describe("Markdown runbooks", () => {
  const doc = md(`
---
image: debian12-bios
disks: [8G, 512M]
expect:
  root: /dev/mapper/sys-root
  fstype: ext4
---

# Title

Prose with \`inline code\` is not run.

\`\`\`yaml
not: run
\`\`\`

## First step

\`\`\`sh
echo one
echo two
\`\`\`

\`\`\`bash
echo three
\`\`\`

## Session

<!-- vmlab: console, timeout=20m -->
\`\`\`console
root@srv:~# lvs \\
  --units b
  LV   VG
# echo hi
hi
\`\`\`

## Reboot

<!-- vmlab: reboot expect=emergency-mode evidence="Dependency failed" -->
\`\`\`shell
true
\`\`\`
`);

  it("takes sh, bash, shell and console blocks in order, named after the nearest heading, with document lines", () => {
    const r = parseRunbook(doc, "rb.md");
    expect(r.format).toBe("markdown");
    expect(r.title).toBe("Title");
    expect(r.front).toMatchObject({ image: "debian12-bios", disks: ["8G", "512M"], kind: "rehearsal", expect: { root: "/dev/mapper/sys-root", fstype: "ext4" } });
    expect(r.blocks.map((b) => [b.name, b.line, b.text])).toEqual([
      ["First step", 20, "echo one\necho two"],
      ["First step (2)", 25, "echo three"],
      ["Session", 32, "lvs \\\n  --units b\necho hi"],
      ["Reboot", 43, "true"],
    ]);
    expect(r.blocks[2]!.lines).toEqual([32, 33, 35]);
    expect(r.blocks[2]!.directives).toEqual({ console: true, timeoutS: 1200 });
    expect(r.blocks[3]!.directives).toEqual({ reboot: { expect: "emergency-mode", evidence: "Dependency failed" } });
  });

  it("refuses what cannot be rehearsed, naming the line: exit 2", () => {
    expect(usage(() => parseRunbook("# t\n\nprose only\n```text\nx\n```\n", "a.md")).message).toMatch(/no runnable block/);
    expect(usage(() => parseRunbook("---\ncolour: blue\n---\n```sh\ntrue\n```\n", "a.md")).message).toMatch(/a\.md:2.*unknown key "colour"/);
    expect(usage(() => parseRunbook("---\nexpect: { rot: /dev/sda2 }\n---\n```sh\ntrue\n```\n", "a.md")).message).toMatch(/unknown key "expect\.rot"/);
    expect(usage(() => parseRunbook("---\ndisks: [8Q]\n---\n```sh\ntrue\n```\n", "a.md")).message).toMatch(/bad disk size.*8Q/);
    expect(usage(() => parseRunbook("---\ndisks: [1.5G]\n---\n```sh\ntrue\n```\n", "a.md")).message).toMatch(/decimals/);
    expect(usage(() => parseRunbook("<!-- vmlab: consol -->\n```sh\ntrue\n```\n", "a.md")).message).toMatch(/a\.md:1: unknown directive "consol"/);
    expect(usage(() => parseRunbook("<!-- vmlab: console -->\n\nsome prose\n\n```sh\ntrue\n```\n", "a.md")).message).toMatch(/right before a code block/);
    expect(usage(() => parseRunbook("---\nkind: twin\n---\n```sh\ntrue\n```\n", "a.md")).message).toMatch(/expect\.failure/);
    expect(usage(() => parseRunbook("---\nimage: [\n---\n```sh\ntrue\n```\n", "a.md")).message).toMatch(/not valid YAML/);
    expect(usage(() => parseRunbook("echo hi\n", "notes.txt")).message).toMatch(/neither a Markdown runbook nor a shell script/);
  });

  it("takes a twin's failure alternatives from YAML and checks them like a scenario's", () => {
    const ok = parseRunbook(md(`
---
kind: twin
expect:
  failure:
    - says: the rollback is refused
      step: { name: roll back, error: invalid }
---
\`\`\`sh
true
\`\`\`
`), "t.md");
    expect(ok.front.expect.failure).toEqual([{ says: "the rollback is refused", step: { name: "roll back", error: "invalid" } }]);
    const vague = usage(() => parseRunbook("---\nkind: twin\nexpect:\n  failure:\n    - says: it times out\n      boot: { outcome: timeout }\n---\n```sh\ntrue\n```\n", "t.md"));
    expect(vague.output ?? vague.message).toMatch(/not a specific failure/);
  });
});

describe("directives", () => {
  it("reads words and key=value pairs, quoted or not", () => {
    expect(parseDirectives(" fails exit=3 output='No such' ", "x")).toEqual({ fails: { exitCode: 3, output: "No such" } });
    expect(parseDirectives("new-session", "x")).toEqual({ newSession: true });
    expect(parseDirectives("reboot", "x")).toEqual({ reboot: { expect: "ssh" } });
    expect(parseDirectives("reboot without=sda", "x")).toEqual({ reboot: { expect: "ssh", without: ["sda"] } });
    expect(parseDirectives("reboot, without=sdb+sdc, expect=no-bootable-device, evidence='^Booting'", "x")).toEqual({
      reboot: { expect: "no-bootable-device", evidence: "^Booting", without: ["sdb", "sdc"] },
    });
  });
  it("refuses what it cannot mean", () => {
    expect(usage(() => parseDirectives("reboot expect=timeout evidence=x", "f:3")).message).toMatch(/f:3: expect=timeout/);
    expect(usage(() => parseDirectives("reboot expect=kernel-panic", "f:3")).message).toMatch(/needs evidence/);
    expect(usage(() => parseDirectives("expect=ssh", "f:3")).message).toMatch(/go with reboot/);
    expect(usage(() => parseDirectives("timeout=soon", "f:3")).message).toMatch(/duration/);
    expect(usage(() => parseDirectives("output=(", "f:3")).message).toMatch(/regular expression/);
    expect(usage(() => parseDirectives("without=sda", "f:3")).message).toMatch(/go with reboot/);
    expect(usage(() => parseDirectives("reboot without=/dev/sda", "f:3")).message).toMatch(/name the lab's disks/);
    expect(usage(() => parseDirectives("reboot without=sda+sda", "f:3")).message).toMatch(/named twice/);
  });

  it("a reboot without a disk names one the machine has, and leaves one in", () => {
    const doc = (disks: string, without: string) => `---\ndisks: [${disks}]\n---\n## Pull it\n\n<!-- vmlab: reboot without=${without} -->\n\`\`\`sh\nsync\n\`\`\`\n`;
    expect(parseRunbook(doc("8G", "sda"), "r.md").blocks[0]!.directives.reboot?.without).toEqual(["sda"]);
    expect(usage(() => parseRunbook(doc("8G", "sdc"), "r.md")).message).toMatch(/r\.md:8: block "Pull it" reboots without sdc, which the machine does not have/);
    expect(usage(() => parseRunbook(doc("8G", "sda+sdb"), "r.md")).message).toMatch(/without every disk/);
  });

  it("refuses a block that reboots by itself when the lab has to pull a disk or put one back", () => {
    const pull = parseRunbook("---\ndisks: [8G]\n---\n## Pull\n\n<!-- vmlab: reboot without=sda -->\n```sh\nreboot\n```\n", "r.md");
    expect(usage(() => runbookScenario(pull)).message).toMatch(/reboots by itself, but the lab has to pull sda/);
    const back = parseRunbook("---\ndisks: [8G]\n---\n## Pull\n\n<!-- vmlab: reboot without=sda -->\n```sh\nsync\n```\n\n## Back\n\n<!-- vmlab: reboot -->\n```sh\nsystemctl reboot\n```\n", "r.md");
    expect(usage(() => runbookScenario(back)).message).toMatch(/put sda back/);
  });
});

describe("console blocks", () => {
  it("runs what follows a prompt and the lines a backslash carries on", () => {
    expect(consoleCommands("~# dd if=/dev/zero of=loop1.raw bs=1M count=40\n~# losetup /dev/loop1 loop1.raw\n7 1 ... loop1\n", 10)).toEqual({ text: [], lines: [] });
    expect(consoleCommands("# lvs\n  LV VG\n$ echo a \\\n  b\na b\n[root@db1 ~]# uptime\n", 5)).toEqual({ text: ["lvs", "echo a \\", "  b", "uptime"], lines: [5, 7, 8, 10] });
  });
});

describe("shell-script runbooks", () => {
  const script = `#!/bin/bash
# vmlab: image: debian12-bios
# vmlab: disks: [8G]
# vmlab: expect:
# vmlab:   root: /dev/md1

set -u
echo before the first marker

# step: Partition the second disk
# vmlab: timeout=5m
sfdisk -d /dev/sda | sfdisk /dev/sdb

# step: Reboot into the array
# vmlab: reboot
reboot
`;
  it("splits at # step: lines, with front matter and directives from # vmlab: lines", () => {
    const r = parseRunbook(script, "raid/migrate-raid.sh");
    expect(r.format).toBe("shell");
    expect(r.front).toMatchObject({ disks: ["8G"], expect: { root: "/dev/md1" } });
    expect(r.blocks.map((b) => [b.name, b.line, b.text, b.directives])).toEqual([
      ["migrate-raid", 7, "set -u\necho before the first marker", {}],
      ["Partition the second disk", 12, "sfdisk -d /dev/sda | sfdisk /dev/sdb", { timeoutS: 300 }],
      ["Reboot into the array", 16, "reboot", { reboot: { expect: "ssh" } }],
    ]);
  });
  it("refuses a directive line in the middle of a step", () => {
    expect(usage(() => parseRunbook("# step: a\ntrue\n# vmlab: console\n", "x.sh")).message).toMatch(/x\.sh:3/);
  });
});

describe("one shell across blocks", () => {
  // The block scripts are bash: run them here, as the guest's bash would, to prove the state travels.
  const run = (text: string, state: string) => {
    const { script, preludeLines } = blockScript({ text }, state);
    const dir = mkdtempSync(join(tmpdir(), "vmlab-rb-"));
    const cmd = blockCommand(script).replaceAll("/run/vmlab-runbook", dir);
    let stdout = "";
    let stderr = "";
    let code = 0;
    try {
      stdout = execFileSync("sh", ["-c", cmd], { encoding: "utf8", cwd: "/", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      const x = e as { stdout: string; stderr: string; status: number };
      [stdout, stderr, code] = [x.stdout, x.stderr, x.status];
    }
    return { code, ...readBlockOutput(stdout, stderr, preludeLines) };
  };

  it("carries cd, exported and plain variables and functions to the next block, not the lab's own", () => {
    const a = run('mkdir -p /tmp/vmlab-rb-state && cd /tmp/vmlab-rb-state\nexport GREETING="hello world"\nplain=$\'two\\nlines\'\ncount() { echo "$#"; }', "");
    expect(a.code).toBe(0);
    expect(a.state).toBeDefined();
    expect(a.state).not.toMatch(/__vmlab|SSH_CONNECTION|BASHPID/);
    const b = run('echo "$PWD|$GREETING|$plain|$(count a b c)"', a.state!);
    expect(b.code).toBe(0);
    expect(b.stdout.trim()).toBe("/tmp/vmlab-rb-state|hello world|two\nlines|3");
  });

  it("stops at the first failing command and names it with its line in the block, whatever state came before", () => {
    const state = run('cd /tmp\nexport A="two\nlines"\nf() {\n  echo "$@"\n}', "").state!;
    expect(state.split("\n").length).toBeGreaterThan(4);
    const r = run("echo one\nls /does-not-exist-vmlab\necho never", state);
    expect(r.code).toBe(2);
    expect(r.failed).toEqual({ line: 2, command: "ls /does-not-exist-vmlab" });
    expect(r.stdout.trim()).toBe("one");
    expect(r.stderr).toMatch(/No such file or directory/);
    expect(r.stderr).not.toMatch(/vmlab-runbook-error/);
  });

  it("does not read the block's standard input from the lab", () => {
    const r = run("read -r line || echo no-input", "");
    expect(r.stdout.trim()).toBe("no-input");
  });

  it("knows a block that reboots by itself", () => {
    expect(rebootsItself("sync\nreboot")).toBe(true);
    expect(rebootsItself("systemctl reboot")).toBe(true);
    expect(rebootsItself("shutdown -r now")).toBe(true);
    expect(rebootsItself("echo no reboot needed # reboot later")).toBe(false);
    expect(rebootsItself("grub-reboot 1")).toBe(false);
  });
});

describe("the runbooks in runbooks/", () => {
  const dir = join(import.meta.dirname, "../../runbooks");
  const files = readdirSync(dir).filter((f) => f.endsWith(".md") && f !== "README.md");
  it.each(files)("%s loads as a scenario and plans its blocks, then the lab's reboot and check", async (f) => {
    const s = validateScenario(await loadRunbook(join(dir, f)), f);
    const rb = parseRunbook(readFileSync(join(dir, f), "utf8"), f);
    const plan = await planSteps(s);
    expect(plan.complete).toBe(true);
    expect(plan.steps).toEqual([...rb.blocks.map((b) => b.name), "reboot through firmware (end of the runbook)", "verify where / is and the data set"]);
    if (s.kind === "twin") expect(s.variantOf).toBeDefined();
  });

  it("a sweep of a runbook has one row per block and one after the last, whatever the blocks are called", async () => {
    const s = await loadRunbook(join(dir, "root-to-lvm.md"));
    const plan = await planSteps(s);
    const blocksN = parseRunbook(readFileSync(join(dir, "root-to-lvm.md"), "utf8"), "root-to-lvm.md").blocks.length;
    // Boundaries 1..blocks are before each block; blocks + 1 is before the lab's own reboot, after the last block.
    expect(defaultBoundaries(plan.steps)).toEqual(Array.from({ length: blocksN + 1 }, (_, i) => i + 1));
    // A block named like a reboot does not end the sweep: only the lab's final reboot does.
    const rb = parseRunbook("## Reboot into the array\n\n<!-- vmlab: reboot -->\n```sh\nreboot\n```\n\n## Add the first disk\n\n```sh\ntrue\n```\n", "r.md");
    const p2 = await planSteps(runbookScenario(rb));
    expect(defaultBoundaries(p2.steps)).toEqual([1, 2, 3]);
  });

  it("the RAID1 twin forks at the GRUB block, and both boot from each disk alone in the same order", async () => {
    const good = parseRunbook(readFileSync(join(dir, "root-to-raid1.md"), "utf8"), "root-to-raid1.md");
    const twin = parseRunbook(readFileSync(join(dir, "root-to-raid1-grub-one-disk.md"), "utf8"), "root-to-raid1-grub-one-disk.md");
    expect(good.blocks[firstDifference(good.blocks, twin.blocks)!]!.name).toBe("Install GRUB on both disks");
    const pulls = (rb: typeof good) => rb.blocks.filter((b) => b.directives.reboot).map((b) => b.directives.reboot!.without);
    expect(pulls(good)).toEqual([["sda"], ["sdb"]]);
    expect(pulls(twin)).toEqual(pulls(good));
  });

  it("a twin forks at the first block it changes", async () => {
    const good = parseRunbook(readFileSync(join(dir, "root-to-lvm.md"), "utf8"), "root-to-lvm.md");
    const twin = parseRunbook(readFileSync(join(dir, "root-to-lvm-no-relabel.md"), "utf8"), "root-to-lvm-no-relabel.md");
    const at = firstDifference(good.blocks, twin.blocks)!;
    expect(good.blocks[at]!.name).toBe("Give the old root a new label and UUID");
    expect(twin.blocks.length).toBe(good.blocks.length - 1);
  });

  it("refuses an unknown image before anything starts", async () => {
    const f = join(mkdtempSync(join(tmpdir(), "vmlab-rb-")), "x.md");
    writeFileSync(f, "---\nimage: debian13-arm\n---\n```sh\ntrue\n```\n");
    await expect(loadRunbook(f)).rejects.toThrow(/unknown image "debian13-arm"/);
  });
});
