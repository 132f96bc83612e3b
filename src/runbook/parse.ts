/**
 * Runbook documents as sysadmins keep them: a Markdown page with prose and
 * shell blocks, or a shell script with `# step:` comments. Parsing turns one
 * into front matter (where to rehearse, what must hold at the end) and an
 * ordered list of blocks, each a step with its name, its line in the
 * document and its directives. Nothing here touches a machine.
 *
 * Markdown:
 * - every fenced block whose info string starts with `sh`, `bash` or
 *   `shell` is a step, in document order; its name is the nearest heading
 *   above it;
 * - a `console` block shows a session: the commands after a `# ` or `$ `
 *   prompt are run (a line ending in `\` goes on), the other lines are the
 *   output the author saw and are not run;
 * - other blocks and all prose are documentation;
 * - directives go in an HTML comment right before the block:
 *   `<!-- vmlab: console, new-session -->`.
 *
 * Shell: `# step: NAME` lines split the script; commands before the first
 * one are a step named after the file. `# vmlab: DIRECTIVES` lines right
 * after a `# step:` line are that step's directives. Front matter is the
 * block of `# vmlab: key: value` lines at the top (YAML once the prefix is
 * taken off).
 */
import { basename, extname } from "node:path";
import MarkdownIt from "markdown-it";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { UsageError } from "../errors.ts";
import { parseSize } from "../disk/size.ts";
import type { BootOutcome } from "../boot/classify.ts";
import { expectationProblems, type FailureAlternative } from "../verdict/expect.ts";

export type RunbookFormat = "markdown" | "shell";

export interface RebootDirective {
  /** The boot outcome the lab must classify (default "ssh"). */
  expect: BootOutcome;
  /** A regular expression one of the boot's evidence lines must match. */
  evidence?: string;
  /**
   * Lab disks out for this boot, as if they had died ("sda", "sdb"): pulled
   * from the running machine before the reboot, and left out until a later
   * `reboot` directive no longer names them (the lab's final reboot keeps
   * them out).
   */
  without?: string[];
}

export interface BlockDirectives {
  /** Run on the serial console: SSH is expected to drop during the block. */
  console?: boolean;
  /** After the block, open a new SSH session: a fresh login shell (cwd and variables reset); the lab waits for sshd. */
  newSession?: boolean;
  /** The block is expected to fail: exit non-zero, with this exit code and output when given. */
  fails?: { exitCode?: number; output?: string };
  /** After the block, reboot through the firmware (unless the block did) and expect this outcome. */
  reboot?: RebootDirective;
  /** How long the block may take, in seconds (default 30 minutes). */
  timeoutS?: number;
}

export interface RunbookBlock {
  /** The step's name: the nearest heading above (numbered when several blocks share it). */
  name: string;
  /** 1-based line of the block's first line in the document. */
  line: number;
  /** The shell text that is run. */
  text: string;
  /** For each line of `text`, its 1-based line in the document. */
  lines: number[];
  /** The fence's language (markdown), or "sh" (shell script). */
  lang: string;
  directives: BlockDirectives;
}

export interface RunbookFront {
  name?: string;
  description?: string;
  /** Image recipe (default debian12-bios). */
  image: string;
  /** A captured layout (a layout.json, relative to the runbook) to rehearse on instead of `image`. */
  layout?: string;
  /** Blank extra disks (sdb, sdc, ...) by size. */
  disks: string[];
  memory?: string;
  tags: string[];
  /** "twin": the runbook forgets a step on purpose and must fail as `expect.failure` says. */
  kind: "rehearsal" | "twin";
  /** A twin: the runbook it is a variant of (a path relative to this one), to fork from when both run together. */
  variantOf?: string;
  expect: { root?: string; fstype?: string; failure?: FailureAlternative[] };
}

export interface ParsedRunbook {
  file: string;
  format: RunbookFormat;
  /** The document's first top-level heading, or the file name. */
  title: string;
  front: RunbookFront;
  blocks: RunbookBlock[];
  /** What parsing decided that the author should know (blocks not run, ...). */
  notes: string[];
}

const RUNNABLE = new Set(["sh", "bash", "shell"]);
const FRONT_KEYS = ["name", "description", "image", "layout", "disks", "memory", "tags", "kind", "variant-of", "expect"];
const EXPECT_KEYS = ["root", "fstype", "failure"];
const FAILURE_KEYS = ["says", "boot", "step", "facts", "root", "data"];
const OUTCOMES: BootOutcome[] = ["ssh", "no-bootable-device", "grub-rescue", "uefi-shell", "kernel-panic", "initramfs-shell", "root-shell", "emergency-mode", "reboot-loop"];

export const DIRECTIVES_HELP =
  "directives: console, new-session, fails, exit=N, output=REGEX, reboot, expect=OUTCOME, evidence=REGEX, without=DISK (sda, sdb+sdc), timeout=DURATION (90s, 20m)";

/** What a file is, from its name and first line; undefined when neither Markdown nor shell. */
export function runbookFormat(file: string, text: string): RunbookFormat | undefined {
  const ext = extname(file).toLowerCase();
  if (ext === ".md" || ext === ".markdown") return "markdown";
  if (ext === ".sh" || ext === ".bash") return "shell";
  if (/^#!.*\b(ba)?sh\b/.test(text)) return "shell";
  return undefined;
}

export function parseRunbook(text: string, file: string): ParsedRunbook {
  const format = runbookFormat(file, text);
  if (!format) {
    throw new UsageError(`${file} is neither a Markdown runbook nor a shell script`, {
      hint: "name a Markdown runbook *.md and a shell runbook *.sh (or start it with #!/bin/sh or #!/bin/bash)",
    });
  }
  const parsed = format === "markdown" ? parseMarkdown(text, file) : parseShell(text, file);
  if (parsed.blocks.length === 0) {
    throw new UsageError(`${file} has no runnable block`, {
      output: parsed.notes.join("\n") || undefined,
      hint:
        format === "markdown"
          ? "fence the commands as ```sh, ```bash or ```shell (or show a session as ```console with `# ` prompts)"
          : "the script has no commands",
    });
  }
  uniqueNames(parsed.blocks);
  checkDisks(parsed);
  return parsed;
}

/** A `without=` directive names disks the machine has: sda, and one more per size in `disks`. */
function checkDisks(rb: ParsedRunbook): void {
  const have = ["sda", ...rb.front.disks.map((_, i) => `sd${String.fromCharCode(98 + i)}`)];
  for (const b of rb.blocks) {
    const without = b.directives.reboot?.without ?? [];
    const missing = without.filter((d) => !have.includes(d));
    if (missing.length && !rb.front.layout) {
      throw new UsageError(`${rb.file}:${b.line}: block "${b.name}" reboots without ${missing.join(", ")}, which the machine does not have`, {
        hint: `its disks: ${have.join(", ")} (sda, then one per size in the front matter's disks)`,
      });
    }
    if (!rb.front.layout && without.length >= have.length) throw new UsageError(`${rb.file}:${b.line}: block "${b.name}" reboots without every disk`, { hint: "leave at least one disk in" });
  }
}

/** A name for the scenario: the front matter's, or the file's name without its extension. */
export function runbookName(file: string, front: Pick<RunbookFront, "name">): string {
  if (front.name) return front.name;
  return basename(file).replace(/\.(md|markdown|sh|bash)$/i, "").toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "") || "runbook";
}

function parseMarkdown(text: string, file: string): ParsedRunbook {
  let body = text;
  let frontText: string | undefined;
  let offset = 0;
  const fm = /^---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)/.exec(text);
  if (fm) {
    frontText = fm[1];
    body = text.slice(fm[0].length);
    offset = fm[0].split("\n").length - 1;
  }
  const front = parseFront(frontText, file, 2);
  const md = new MarkdownIt({ html: true });
  const tokens = md.parse(body, {});
  const blocks: RunbookBlock[] = [];
  const notes: string[] = [];
  let title: string | undefined;
  let heading: string | undefined;
  let pending: { directives: BlockDirectives; line: number } | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const docLine = (t.map?.[0] ?? 0) + offset + 1;
    if (t.type === "heading_open") {
      const inline = tokens[i + 1];
      heading = inline?.content.trim() || heading;
      if (t.tag === "h1" && title === undefined) title = heading;
      pending = undefined;
      continue;
    }
    if (t.type === "html_block") {
      const m = /^\s*<!--\s*vmlab:([\s\S]*?)-->\s*$/.exec(t.content);
      if (m) {
        pending = { directives: parseDirectives(m[1]!, `${file}:${docLine}`), line: docLine };
        continue;
      }
    }
    if (t.type === "fence" || t.type === "code_block") {
      const lang = t.type === "fence" ? (t.info.trim().split(/\s+/)[0] ?? "").toLowerCase() : "";
      const first = docLine + 1;
      const directives = pending?.directives ?? {};
      pending = undefined;
      if (RUNNABLE.has(lang)) {
        const lines = t.content.replace(/\n$/, "").split("\n");
        blocks.push({ name: heading ?? title ?? runbookName(file, {}), line: first, text: lines.join("\n"), lines: lines.map((_, k) => first + k), lang, directives });
      } else if (lang === "console") {
        const c = consoleCommands(t.content, first);
        if (c.lines.length === 0) notes.push(`${file}:${first}: a console block with no "# " or "$ " prompt shows output only; it is not run`);
        else blocks.push({ name: heading ?? title ?? runbookName(file, {}), line: first, text: c.text.join("\n"), lines: c.lines, lang, directives });
      } else if (Object.keys(directives).length) {
        throw new UsageError(`${file}:${docLine}: vmlab directives before a block that is not run (\`${lang || "no language"}\`)`, {
          hint: "directives go right before a ```sh, ```bash, ```shell or ```console block",
        });
      }
      continue;
    }
    if (pending && t.type !== "html_block") {
      // A directive comment belongs to the block right after it, with nothing in between.
      if (t.type.endsWith("_open") || t.type === "inline" || t.type.endsWith("_close")) {
        throw new UsageError(`${file}:${pending.line}: a vmlab directive comment must come right before a code block`, {
          hint: "move the <!-- vmlab: ... --> line to just above the ``` fence",
        });
      }
    }
  }
  if (pending) throw new UsageError(`${file}:${pending.line}: a vmlab directive comment with no block after it`, { hint: "move it to just above the ``` fence it is for" });
  return { file, format: "markdown", title: title ?? runbookName(file, front), front, blocks, notes };
}

/**
 * The commands of a `console` block, as a reader would type them: what
 * follows a `# ` or `$ ` prompt (with an optional `user@host:dir` before it),
 * and the lines a trailing backslash carries on to.
 */
export function consoleCommands(content: string, firstLine: number): { text: string[]; lines: number[] } {
  const text: string[] = [];
  const lines: number[] = [];
  let going = false;
  for (const [k, raw] of content.replace(/\n$/, "").split("\n").entries()) {
    if (going) {
      text.push(raw);
      lines.push(firstLine + k);
      going = /\\$/.test(raw);
      continue;
    }
    const m = /^(?:[\w.-]+@[\w.-]+(?::[^\s#$]*)?\s?|\[[^\]]*\]\s?)?[#$] (.*)$/.exec(raw);
    if (!m) continue;
    text.push(m[1]!);
    lines.push(firstLine + k);
    going = /\\$/.test(m[1]!);
  }
  return { text, lines };
}

function parseShell(text: string, file: string): ParsedRunbook {
  const all = text.split("\n");
  let i = 0;
  if (all[0]?.startsWith("#!")) i = 1;
  const frontLines: string[] = [];
  let frontStart = i + 1;
  while (i < all.length && (/^#\s*vmlab:/.test(all[i]!) || (frontLines.length === 0 && all[i]!.trim() === ""))) {
    if (/^#\s*vmlab:/.test(all[i]!)) {
      if (frontLines.length === 0) frontStart = i + 1;
      frontLines.push(all[i]!.replace(/^#\s*vmlab: ?/, ""));
    }
    i++;
  }
  const front = parseFront(frontLines.length ? frontLines.join("\n") : undefined, file, frontStart);
  const blocks: RunbookBlock[] = [];
  const first = { name: runbookName(file, {}), start: i + 1 };
  let cur: { name: string; directives: BlockDirectives; text: string[]; lines: number[]; markerLine: number } = { name: first.name, directives: {}, text: [], lines: [], markerLine: first.start };
  let inDirectives = false;
  const flush = () => {
    while (cur.text.length && cur.text.at(-1)!.trim() === "") (cur.text.pop(), cur.lines.pop());
    while (cur.text.length && cur.text[0]!.trim() === "") (cur.text.shift(), cur.lines.shift());
    const runnable = cur.text.some((l) => l.trim() !== "" && !/^\s*#/.test(l));
    if (runnable) blocks.push({ name: cur.name, line: cur.lines[0]!, text: cur.text.join("\n"), lines: cur.lines, lang: "sh", directives: cur.directives });
    else if (Object.keys(cur.directives).length) throw new UsageError(`${file}:${cur.markerLine}: step "${cur.name}" has directives but no commands`);
  };
  for (; i < all.length; i++) {
    const line = all[i]!;
    const step = /^#\s*step:\s*(.*?)\s*$/.exec(line);
    if (step) {
      flush();
      if (!step[1]) throw new UsageError(`${file}:${i + 1}: a \`# step:\` line without a name`, { hint: "write it as `# step: Create the logical volume`" });
      cur = { name: step[1], directives: {}, text: [], lines: [], markerLine: i + 1 };
      inDirectives = true;
      continue;
    }
    const dir = /^#\s*vmlab:(.*)$/.exec(line);
    if (dir) {
      if (!inDirectives) throw new UsageError(`${file}:${i + 1}: a \`# vmlab:\` line belongs at the top (front matter) or right after a \`# step:\` line`);
      cur.directives = { ...cur.directives, ...parseDirectives(dir[1]!, `${file}:${i + 1}`) };
      continue;
    }
    inDirectives = false;
    cur.text.push(line);
    cur.lines.push(i + 1);
  }
  flush();
  return { file, format: "shell", title: runbookName(file, front), front, blocks, notes: [] };
}

/** Directives: words and key=value pairs, separated by commas or spaces; values may be quoted. */
export function parseDirectives(text: string, where: string): BlockDirectives {
  const d: BlockDirectives = {};
  const items = [...text.matchAll(/([a-z-]+)(?:=("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,]+))?/gi)];
  const rest = text.replace(/([a-z-]+)(?:=("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,]+))?/gi, "").replace(/[\s,]/g, "");
  const bad = (why: string) => new UsageError(`${where}: ${why}`, { hint: DIRECTIVES_HELP });
  if (rest) throw bad(`cannot read the directive text "${text.trim()}"`);
  let expect: string | undefined;
  let evidence: string | undefined;
  let without: string[] | undefined;
  for (const [, key, raw] of items) {
    const value = raw === undefined ? undefined : raw.startsWith('"') ? (JSON.parse(raw) as string) : raw.replace(/^'|'$/g, "");
    switch (key!.toLowerCase()) {
      case "console":
        d.console = true;
        break;
      case "new-session":
        d.newSession = true;
        break;
      case "fails":
        d.fails = { ...d.fails };
        break;
      case "exit": {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 0 || n > 255) throw bad(`exit=${value}: an exit code is a whole number 0-255`);
        d.fails = { ...d.fails, exitCode: n };
        break;
      }
      case "output":
        if (!value) throw bad("output= needs a regular expression");
        checkRegex(value, bad);
        d.fails = { ...d.fails, output: value };
        break;
      case "reboot":
        d.reboot = { expect: "ssh" };
        break;
      case "expect":
        if (!value || !OUTCOMES.includes(value as BootOutcome)) throw bad(`expect=${value ?? ""}: a boot outcome is one of ${OUTCOMES.join(", ")}`);
        expect = value;
        break;
      case "evidence":
        if (!value) throw bad("evidence= needs a regular expression");
        checkRegex(value, bad);
        evidence = value;
        break;
      case "without": {
        const disks = (value ?? "").split("+");
        if (!value || disks.some((x) => !/^sd[a-z]$/.test(x))) throw bad(`without=${value ?? ""}: name the lab's disks, like without=sda or without=sdb+sdc`);
        if (new Set(disks).size !== disks.length) throw bad(`without=${value}: a disk is named twice`);
        without = disks;
        break;
      }
      case "timeout":
        d.timeoutS = parseDuration(value, bad);
        break;
      default:
        throw bad(`unknown directive "${key}"`);
    }
  }
  if ((expect || evidence || without) && !d.reboot) throw bad("expect=, evidence= and without= go with reboot");
  if (d.reboot) {
    d.reboot = { expect: (expect ?? "ssh") as BootOutcome, ...(evidence ? { evidence } : {}), ...(without ? { without } : {}) };
    if (d.reboot.expect !== "ssh" && !evidence) throw bad(`reboot expect=${d.reboot.expect} needs evidence=REGEX: the console line that proves it`);
  }
  if (d.fails?.exitCode === 0) throw bad("exit=0 is not a failure");
  if (d.console && d.newSession) throw bad("a console block opens no SSH session; put new-session on the block after it");
  return d;
}

function checkRegex(source: string, bad: (why: string) => Error): void {
  try {
    new RegExp(source);
  } catch (e) {
    throw bad(`bad regular expression ${JSON.stringify(source)}: ${(e as Error).message}`);
  }
}

function parseDuration(value: string | undefined, bad: (why: string) => Error): number {
  const m = /^(\d+)(s|m|h)?$/.exec(value ?? "");
  if (!m || Number(m[1]) === 0) throw bad(`timeout=${value ?? ""}: write a duration like 90s, 20m or 1h`);
  return Number(m[1]) * (m[2] === "h" ? 3600 : m[2] === "m" ? 60 : 1);
}

function parseFront(text: string | undefined, file: string, line: number): RunbookFront {
  const front: RunbookFront = { image: "debian12-bios", disks: [], tags: [], kind: "rehearsal", expect: {} };
  if (text === undefined || text.trim() === "") return front;
  const where = `${file}:${line} (front matter)`;
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    const pos = e instanceof YAMLParseError ? e.linePos?.[0] : undefined;
    throw new UsageError(`${file}:${line + (pos ? pos.line - 1 : 0)}: the front matter is not valid YAML`, { output: (e as Error).message, hint: "front matter is YAML: `key: value` lines" });
  }
  if (raw === null || raw === undefined) return front;
  if (typeof raw !== "object" || Array.isArray(raw)) throw new UsageError(`${where}: the front matter must be a mapping of keys to values`);
  const o = raw as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(o)) if (!FRONT_KEYS.includes(k)) problems.push(`unknown key "${k}" (known: ${FRONT_KEYS.join(", ")})`);
  const str = (k: string): string | undefined => {
    if (o[k] === undefined) return undefined;
    if (typeof o[k] !== "string" || !o[k]) problems.push(`${k} must be a text`);
    return typeof o[k] === "string" ? (o[k] as string) : undefined;
  };
  front.name = str("name");
  if (front.name !== undefined && !/^[a-z0-9][a-z0-9-]*$/.test(front.name)) problems.push(`name "${front.name}" must be lower-case words joined by -`);
  front.description = str("description");
  front.image = str("image") ?? front.image;
  front.layout = str("layout");
  if (front.layout !== undefined && o.image !== undefined) problems.push("give image or layout, not both");
  front.memory = o.memory === undefined ? undefined : String(o.memory);
  if (front.memory !== undefined) tryProblem(problems, () => parseSize(front.memory!, "memory"));
  if (o.disks !== undefined) {
    if (!Array.isArray(o.disks)) problems.push("disks must be a list of sizes, like [8G, 8G]");
    else front.disks = o.disks.map((d) => String(d));
    for (const d of front.disks) tryProblem(problems, () => parseSize(d, "disk size in `disks`"));
  }
  if (o.tags !== undefined) {
    if (!Array.isArray(o.tags) || o.tags.some((t) => typeof t !== "string")) problems.push("tags must be a list of words");
    else front.tags = o.tags as string[];
  }
  if (o.kind !== undefined) {
    if (o.kind !== "rehearsal" && o.kind !== "twin") problems.push(`kind must be rehearsal or twin, not ${JSON.stringify(o.kind)}`);
    else front.kind = o.kind;
  }
  front.variantOf = str("variant-of");
  if (o.expect !== undefined) {
    if (typeof o.expect !== "object" || o.expect === null || Array.isArray(o.expect)) problems.push("expect must be a mapping (root, fstype, failure)");
    else {
      const e = o.expect as Record<string, unknown>;
      for (const k of Object.keys(e)) if (!EXPECT_KEYS.includes(k)) problems.push(`unknown key "expect.${k}" (known: ${EXPECT_KEYS.join(", ")})`);
      if (e.root !== undefined && (typeof e.root !== "string" || !e.root.startsWith("/dev/"))) problems.push(`expect.root must be a device path like /dev/mapper/sys-root, not ${JSON.stringify(e.root)}`);
      if (e.fstype !== undefined && typeof e.fstype !== "string") problems.push("expect.fstype must be a text like ext4");
      front.expect = { root: e.root as string | undefined, fstype: e.fstype as string | undefined };
      if (e.failure !== undefined) {
        if (!Array.isArray(e.failure)) problems.push("expect.failure must be a list of alternatives");
        else {
          for (const [i, a] of e.failure.entries()) {
            if (typeof a !== "object" || a === null) problems.push(`expect.failure[${i}] must be a mapping`);
            else for (const k of Object.keys(a)) if (!FAILURE_KEYS.includes(k)) problems.push(`unknown key "expect.failure[${i}].${k}" (known: ${FAILURE_KEYS.join(", ")})`);
          }
          front.expect.failure = e.failure as FailureAlternative[];
        }
      }
    }
  }
  if (front.kind === "twin") {
    if (front.expect.root || front.expect.fstype) problems.push("a twin predicts a failure: expect.root and expect.fstype are for rehearsals");
    problems.push(...expectationProblems("twin", { failure: front.expect.failure }));
  } else if (front.expect.failure) problems.push("expect.failure is for a twin: add `kind: twin`");
  if (front.variantOf && front.kind !== "twin") problems.push("variant-of is for a twin: a variant of its good path");
  if (problems.length) throw new UsageError(`${where}: ${problems.length === 1 ? problems[0] : "the front matter has problems"}`, { output: problems.length > 1 ? problems.join("\n") : undefined, hint: "see runbooks/README.md for the front matter keys" });
  return front;
}

function tryProblem(problems: string[], fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    problems.push((e as Error).message);
  }
}

/** Blocks under one heading get numbered names: "Copy the data", "Copy the data (2)". */
function uniqueNames(blocks: RunbookBlock[]): void {
  const count = new Map<string, number>();
  for (const b of blocks) count.set(b.name, (count.get(b.name) ?? 0) + 1);
  const seen = new Map<string, number>();
  for (const b of blocks) {
    if ((count.get(b.name) ?? 0) < 2) continue;
    const n = (seen.get(b.name) ?? 0) + 1;
    seen.set(b.name, n);
    if (n > 1) b.name = `${b.name} (${n})`;
  }
}
