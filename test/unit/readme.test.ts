/**
 * The README's Commands table against the command line itself: every command
 * and subcommand that `buildProgram` (lab/cli.ts) defines, and every long
 * option of each, is in the table, so the two cannot drift apart.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../lab/cli.ts";
import { projectRoot } from "../../src/paths.ts";

/** Every command under `c`, as its words ("report merge"), with its long options. */
function walk(c: Command, prefix: string[] = []): { path: string; options: string[] }[] {
  return c.commands.flatMap((sub) => {
    const path = [...prefix, sub.name()];
    const options = sub.options.filter((o) => !o.hidden && o.long && o.long !== "--help").map((o) => o.long!);
    return [{ path: path.join(" "), options }, ...walk(sub, path)];
  });
}

const readme = readFileSync(join(projectRoot, "README.md"), "utf8");
/** The Commands section's table rows, as [first cell, whole row]. */
const section = readme.slice(readme.indexOf("\n## Commands\n"), readme.indexOf("\n## ", readme.indexOf("\n## Commands\n") + 5));
const rows = section
  .split("\n")
  .filter((l) => l.startsWith("| ") && !l.startsWith("| ---") && !l.startsWith("| command |"))
  .map((l) => ({ first: l.slice(2, l.indexOf(" | ")), row: l }));

/** The rows that document a command: its own (first cell `vmlab PATH ...`), and the shared option rows that name it (`for \`run\``). */
function rowsOf(path: string): string[] {
  const own = rows.filter((r) => new RegExp(`^\`vmlab ${path}(\`| )`).test(r.first)).map((r) => r.row);
  const shared = rows.filter((r) => /^[a-z]+: /.test(r.first) && new RegExp(`for [^|]*\`${path}\``).test(r.row)).map((r) => r.row);
  return [...own, ...shared];
}

describe("README: the Commands table", () => {
  const commands = walk(buildProgram(() => undefined));

  it("is found, and the program has its commands", () => {
    expect(rows.length).toBeGreaterThan(20);
    expect(commands.map((c) => c.path)).toEqual(expect.arrayContaining(["run", "report merge", "image hash", "init"]));
  });

  it("has a row for every command and subcommand", () => {
    // A command with subcommands (report, image, disk, dr) is documented by theirs.
    const leaves = commands.filter((c) => !commands.some((d) => d.path.startsWith(`${c.path} `)));
    expect(leaves.filter((c) => rowsOf(c.path).length === 0).map((c) => c.path)).toEqual([]);
  });

  it("names every long option of each command in that command's rows", () => {
    const missing: string[] = [];
    for (const c of commands) {
      const text = rowsOf(c.path).join("\n");
      for (const o of c.options) if (!new RegExp(`${o}(?![\\w-])`).test(text)) missing.push(`vmlab ${c.path} ${o}`);
    }
    expect(missing).toEqual([]);
  });
});
