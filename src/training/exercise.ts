/**
 * Exercises: folders under exercises/ (vmlab's own, and a project's own
 * `exercises/` next to its scenarios), each written without TypeScript:
 *
 *   exercise.md   front matter (title, level, minutes, image, tags, disks,
 *                 break, broken, check, solve) and the story the trainee reads
 *   break.sh      run as root on the guest over SSH (or `break: { fault: NAME }`)
 *   hints.md      one hint per `## ` section, revealed in order
 *   solve.sh      the reference solution: on the guest, on its serial console,
 *                 or in the rescue system with the machine's disks
 *
 * Everything is checked when it is loaded: a bad exercise is exit 2 naming
 * the file and the key, before any machine starts.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { UsageError } from "../errors.ts";
import { isFaultName } from "../faults/index.ts";
import { parseSize } from "../disk/size.ts";
import { kindDirs } from "../project.ts";
import type { BootOutcome } from "../boot/classify.ts";
import type { Exercise, ExerciseCheck } from "./types.ts";

const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

export function validExerciseName(name: string): boolean {
  return NAME.test(name);
}

/** Outcomes an exercise may declare, as the boot classifier names them. */
export const OUTCOMES: readonly BootOutcome[] = [
  "ssh",
  "login-prompt",
  "no-bootable-device",
  "grub-rescue",
  "uefi-shell",
  "kernel-panic",
  "initramfs-shell",
  "root-shell",
  "emergency-mode",
  "reboot-loop",
];

/** The folders exercises are looked up in: the user's project first, then vmlab's own. */
export async function exerciseDirs(): Promise<string[]> {
  return kindDirs("exercises").map((r) => r.dir);
}

export async function listExercises(): Promise<Exercise[]> {
  const seen = new Map<string, Exercise>();
  for (const d of await exerciseDirs()) {
    for (const entry of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      if (!entry.isDirectory() || seen.has(entry.name) || !existsSync(join(d, entry.name, "exercise.md"))) continue;
      seen.set(entry.name, await readExercise(join(d, entry.name)));
    }
  }
  return [...seen.values()];
}

export async function loadExercise(name: string): Promise<Exercise> {
  if (!validExerciseName(name)) throw new UsageError(`"${name}" is not an exercise name`, { hint: "names are lower-case letters, digits and dashes; `vmlab train list` shows them" });
  for (const d of await exerciseDirs()) {
    if (existsSync(join(d, name, "exercise.md"))) return readExercise(join(d, name));
  }
  const known = (await listExercises()).map((e) => e.name);
  throw new UsageError(`no exercise named "${name}"`, { hint: known.length ? `the exercises are: ${known.join(", ")}` : "no exercises were found" });
}

type Raw = Record<string, unknown>;

/** Read and check one exercise folder. */
export async function readExercise(dir: string): Promise<Exercise> {
  const name = dir.split("/").filter(Boolean).pop()!;
  const file = join(dir, "exercise.md");
  if (!validExerciseName(name)) throw new UsageError(`exercise folder ${dir}: "${name}" is not an exercise name`, { hint: "lower-case letters, digits and dashes" });
  const text = await readFile(file, "utf8");
  const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?([\s\S]*)$/.exec(text);
  if (!m) throw new UsageError(`${file} has no front matter`, { hint: "start it with a `---` line, the YAML keys, and another `---` line" });
  let fm: Raw;
  try {
    fm = (parseYaml(m[1]!) ?? {}) as Raw;
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? `:${err.linePos[0].line + 1}` : "";
    throw new UsageError(`${file}${where}: the front matter is not YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  const bad = (key: string, why: string, hint?: string): never => {
    throw new UsageError(`${file}: ${key}: ${why}`, hint ? { hint } : {});
  };
  const known = ["title", "level", "minutes", "image", "layout", "tags", "disks", "break", "broken", "check", "solve"];
  for (const k of Object.keys(fm)) if (!known.includes(k)) bad(k, "unknown key", `the keys are: ${known.join(", ")}`);

  const str = (v: unknown, key: string, required = true): string | undefined => {
    if (v === undefined && !required) return undefined;
    if (typeof v !== "string" || !v.trim()) return bad(key, "must be a non-empty string");
    return v.trim();
  };
  const title = str(fm.title, "title")!;
  const level = (fm.level ?? "beginner") as Exercise["level"];
  if (!["beginner", "intermediate", "advanced"].includes(level)) bad("level", `"${String(fm.level)}" is not beginner, intermediate or advanced`);
  const minutes = fm.minutes ?? 15;
  if (typeof minutes !== "number" || !(minutes > 0 && minutes <= 240)) bad("minutes", "must be a number of minutes, 1 to 240");
  let image = str(fm.image ?? "debian12-bios", "image")!;
  const layout = str(fm.layout, "layout", false);
  if (layout !== undefined) {
    // A captured layout (vmlab layout import), a file in the exercise's folder: the machine is built from it.
    if (fm.image !== undefined) bad("layout", "give image or layout, not both");
    if (layout.includes("/") || layout.startsWith(".")) bad("layout", `"${layout}" must be a file in the exercise's folder`);
    const path = join(dir, layout);
    if (!existsSync(path)) bad("layout", `${path} does not exist`);
    await (await import("../layout/image.ts")).loadLayout(path);
    image = `layout:${path}`;
  }
  const tags = (fm.tags ?? []) as unknown[];
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== "string")) bad("tags", "must be a list of words");
  const disks = (fm.disks ?? []) as unknown[];
  if (!Array.isArray(disks)) bad("disks", "must be a list of sizes, like [1G]");
  for (const d of disks) {
    try {
      parseSize(String(d), "disks");
    } catch {
      bad("disks", `"${String(d)}" is not a size`, "like 1G or 512M");
    }
  }

  const script = async (rel: unknown, key: string): Promise<{ script: string; file: string }> => {
    const f = str(rel, key)!;
    if (f.includes("/") || f.startsWith(".")) bad(key, `"${f}" must be a file in the exercise's folder`);
    const path = join(dir, f);
    if (!existsSync(path)) bad(key, `${path} does not exist`);
    return { script: await readFile(path, "utf8"), file: path };
  };

  const br = (fm.break ?? {}) as Raw;
  if (typeof br !== "object" || Array.isArray(br)) bad("break", "must be a mapping: { script: break.sh } or { fault: NAME }");
  for (const k of Object.keys(br)) if (!["script", "fault", "options", "reboot"].includes(k)) bad(`break.${k}`, "unknown key", "the keys are: script, fault, options, reboot");
  let brk: Exercise["break"];
  if (br.fault !== undefined) {
    const fault = str(br.fault, "break.fault")!;
    if (!isFaultName(fault)) bad("break.fault", `unknown fault "${fault}"`, "`vmlab faults` lists them");
    const options = (br.options ?? {}) as Record<string, unknown>;
    if (typeof options !== "object" || Array.isArray(options)) bad("break.options", "must be a mapping of the fault's options, like { disk: sda }");
    // A script and a fault: the script first (the machine as it was left), then the fault (what happened to it).
    brk = { ...(br.script !== undefined ? await script(br.script, "break.script") : {}), fault, options: Object.fromEntries(Object.entries(options).map(([k, v]) => [k, String(v)])) };
  } else {
    if (br.options !== undefined) bad("break.options", "options go with a fault");
    brk = await script(br.script ?? "break.sh", "break.script");
  }
  const rebootAfterBreak = br.reboot === undefined ? true : br.reboot === true;
  if (br.reboot !== undefined && typeof br.reboot !== "boolean") bad("break.reboot", "must be true or false");

  const broken = (fm.broken ?? {}) as Raw;
  const brokenOutcome = str(broken.outcome, "broken.outcome")!;
  if (!OUTCOMES.includes(brokenOutcome as BootOutcome)) bad("broken.outcome", `"${brokenOutcome}" is not a boot outcome`, `one of: ${OUTCOMES.join(", ")}`);
  const evidence = str(broken.evidence, "broken.evidence", false);
  if (evidence) checkRegex(evidence, file, "broken.evidence");
  for (const k of Object.keys(broken)) if (!["outcome", "evidence"].includes(k)) bad(`broken.${k}`, "unknown key");

  const ck = (fm.check ?? {}) as Raw;
  for (const k of Object.keys(ck)) if (!["reboot", "outcome", "root", "data", "commands"].includes(k)) bad(`check.${k}`, "unknown key", "the keys are: reboot, outcome, root, data, commands");
  const outcome = str(ck.outcome ?? "ssh", "check.outcome")!;
  if (!OUTCOMES.includes(outcome as BootOutcome)) bad("check.outcome", `"${outcome}" is not a boot outcome`, `one of: ${OUTCOMES.join(", ")}`);
  const root = str(ck.root, "check.root", false);
  if (root && !root.startsWith("/dev/")) bad("check.root", `"${root}" is not a device path`);
  const commands = (ck.commands ?? []) as unknown[];
  if (!Array.isArray(commands)) bad("check.commands", "must be a list of { run, says }");
  const check: ExerciseCheck = {
    reboot: ck.reboot === undefined ? true : ck.reboot === true,
    outcome,
    ...(root ? { root } : {}),
    data: ck.data === undefined ? true : ck.data === true,
    commands: commands.map((c, i) => {
      const o = (typeof c === "string" ? { run: c } : c) as Raw;
      return { run: str(o.run, `check.commands[${i}].run`)!, says: str(o.says ?? o.run, `check.commands[${i}].says`)! };
    }),
  };
  if (outcome === brokenOutcome && !check.root && !check.commands.length && !check.data) {
    bad("check", `a fixed machine would end its boot as ${outcome}, like the broken one, and nothing else is checked`, "declare a root, the data set, or commands that tell them apart");
  }

  const sv = (fm.solve ?? {}) as Raw;
  for (const k of Object.keys(sv)) if (!["script", "where"].includes(k)) bad(`solve.${k}`, "unknown key", "the keys are: script, where");
  const where = (sv.where ?? "guest") as Exercise["solve"]["where"];
  if (!["guest", "rescue", "console"].includes(where)) bad("solve.where", `"${String(sv.where)}" is not guest, rescue or console`);
  const solve = { ...(await script(sv.script ?? "solve.sh", "solve.script")), where };

  const hintsFile = join(dir, "hints.md");
  const hints = existsSync(hintsFile) ? parseHints(await readFile(hintsFile, "utf8")) : [];
  if (!hints.length) throw new UsageError(`${hintsFile}: no hints`, { hint: "write each hint as a `## ` section, the first one the gentlest" });

  const story = m[2]!.trim();
  if (!story) bad("story", "the story after the front matter is empty");
  return {
    name,
    dir,
    title,
    level,
    minutes: minutes as number,
    image,
    tags: tags as string[],
    disks: disks.map(String),
    story,
    break: brk,
    rebootAfterBreak,
    broken: { outcome: brokenOutcome, ...(evidence ? { evidence } : {}) },
    hints,
    check,
    solve,
    needsRescue: where === "rescue",
  };
}

function checkRegex(re: string, file: string, key: string): void {
  try {
    new RegExp(re);
  } catch (err) {
    throw new UsageError(`${file}: ${key}: not a regular expression: ${(err as Error).message}`);
  }
}

/** Hints: each `## ` section of hints.md, in order, its heading kept as its first line. */
export function parseHints(text: string): string[] {
  const out: string[] = [];
  for (const part of text.split(/^(?=## )/m)) {
    const t = part.trim();
    if (t.startsWith("## ")) out.push(t.replace(/^## /, ""));
  }
  return out;
}

/** The lines of a console solution that are typed: without comments and blank lines. */
export function consoleLines(script: string): string[] {
  return script
    .split("\n")
    .map((l) => l.replace(/\s+$/, ""))
    .filter((l) => l.trim() && !/^\s*#/.test(l));
}

/** A hash of every file in an exercise's folder: a recorded proof is of this exercise only while it matches. */
export async function exerciseHash(dir: string): Promise<string> {
  const h = createHash("sha256");
  for (const f of (await readdir(dir)).sort()) {
    h.update(`${f}\0`);
    h.update(await readFile(join(dir, f)));
    h.update("\0");
  }
  return h.digest("hex").slice(0, 16);
}
