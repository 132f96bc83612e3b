/**
 * Interruption chaos: runs of the lab's own command line, each interrupted at
 * a random moment with SIGINT, SIGTERM or SIGKILL (a third each), then the
 * same command run again to completion. Not part of `npm test`.
 *
 *   npm run bench:chaos                              # 50 interruptions, two at a time
 *   npm run bench:chaos -- --count 6 --seed 7        # a short check; a seed repeats the plan and the moments
 *   npm run bench:chaos -- --only warm-save,checkpoint --jobs 1
 *   npm run bench:chaos -- --plan                    # the plan only, nothing started
 *
 * `--jobs N` runs N interruptions at a time, each in its own lane (its own
 * scratch cache and report directories); a guest takes one core, so 2 on a
 * 2-core host. `--keep-work` keeps the work directory (logs, reports).
 *
 * Phases: what each one runs, and what the signal lands in. The cheap ones
 * (resume, step, checkpoint: under a minute with their next run) come twice
 * as often as the others (image build, warm-state save, reboot, sweep row:
 * each a cold boot or a build), so that 50 interruptions take about half an
 * hour two at a time on a 2-core TCG host.
 *
 *   image-build  `vmlab image build rescue` in a scratch cache (below): copy of
 *                the Debian tree, disk assembly (mke2fs -d), qcow2 conversion.
 *                Starts when the build's work directory appears.
 *   warm-save    `vmlab run smoke` in the scratch cache with no saved state:
 *                the cold boot and the save of the warm state. From the line
 *                "… smoke: warm state" to its "✔".
 *   resume       `vmlab run smoke`: the resume of the saved state, up to SSH.
 *   step         `vmlab run smoke`: the data set's seeding and smoke's two
 *                steps, over SSH.
 *   reboot       `vmlab run bench/chaos/reboot.ts`: the guest's reboot through
 *                SeaBIOS, GRUB, the kernel, the initramfs and systemd.
 *   checkpoint   `vmlab run bench/chaos/pair.ts bench/chaos/pair-twin.ts
 *                --jobs 2`: the good path's checkpoint before its second step
 *                (the twin forks from it). Starts when `state.bin.partial`
 *                appears, ends with the "checkpoint before step" line.
 *   sweep-row    `vmlab sweep smoke --fault power-cut --at 2`: the row, from
 *                the fork of the recording run's checkpoint through the power
 *                cut, the firmware boot and the observation.
 *
 * The moment: once the phase has begun (its line in the command's output, or
 * its file), a delay drawn uniformly from [0, window), where the window is
 * the median of the phase's durations measured in this invocation's earlier
 * complete runs of the same command (a figure measured on a 2-core TCG host
 * until there is one); when the phase ends first, the signal goes at its
 * end. The signal goes to the vmlab process alone, as `kill` would send it.
 * A command that ended before the signal is tried again (at most 3 times).
 *
 * After each interruption the same command runs again to completion (the
 * "next run": its start cleans up after the dead run, as every command that
 * starts machines does), and then the script counts, for that iteration:
 *   QEMU left      qemu-system processes started by either command, still
 *                  running (every command gets an environment tag that its
 *                  QEMU and other children inherit); also counted, with the
 *                  command's other processes (cp, mke2fs, ssh, ...), 5 s
 *                  after the interrupted command exited, before the next run
 *   overlays left  disk files (qcow2, raw, checkpoint and state partials) in
 *                  the iteration's report directory and in work directories
 *                  of the scratch cache
 *   sockets left   UNIX sockets there, and short socket links in the temp
 *                  directory pointing into them
 *   other left     other processes with the tag, run entries naming the
 *                  iteration's directories, lock and work directories
 *   changed bytes  of the cached images and warm states: every file of
 *                  images/ and states/ of the real cache, and the scratch
 *                  cache's copies, is stat'ed before the first iteration and
 *                  after each (a write changes the ctime, which nothing can
 *                  set back); the image and warm state the runs use are also
 *                  hashed in 1 MiB blocks before the first iteration and after
 *                  the last, a changed stamp is counted block by block, and
 *                  at the end every entry's manifest is verified
 *   next run       exit 0 (a negative twin counts when its predicted failure
 *                  was observed); for the scratch phases, the image or state
 *                  it made also verifies against its manifest
 *
 * The scratch cache (one per lane, under a temporary directory): the lab's
 * key, the Debian tree and the debian12-bios image copied from the real
 * cache, so that an interrupted build or save never touches the real one.
 * The runs in the real cache only read it (their image and warm state are
 * cache hits); their durations go to the lane's own file.
 *
 * It prints one table, the cache's check and a summary line, and exits 0
 * when every signal landed, nothing was left, no cached byte changed and
 * every next run passed. Each command's output, with times, is kept next to
 * its iteration's report directory in the work directory, which is removed
 * at the end unless something was found (or --keep-work).
 */
import { execa, type ResultPromise } from "execa";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { chooseAccel } from "../src/host/kvm.ts";
import { findBuilt, imagesDir } from "../src/image/build.ts";
import { loadRecipe } from "../src/image/recipes.ts";
import { treeHash, treesDir } from "../src/image/tree.ts";
import { cacheDir, projectRoot } from "../src/paths.ts";
import { MANIFEST, verifyManifest } from "../src/util/manifest.ts";
import { alignColumns } from "../src/util/table.ts";
import { DEFAULT_PROFILE, statesDir, warmKey } from "../src/vm/warm.ts";
import { median } from "./stats.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "50" },
    seed: { type: "string" },
    only: { type: "string" },
    jobs: { type: "string", default: "2" },
    plan: { type: "boolean" },
    "keep-work": { type: "boolean" },
  },
});

const SIGNALS = ["SIGINT", "SIGTERM", "SIGKILL"] as const;
type Signal = (typeof SIGNALS)[number];
const POLL_MS = 20;
const VMLAB = join(projectRoot, "lab/vmlab.mjs");
const TAG = "VMLAB_CHAOS_RUN";
const note = (m: string) => process.stderr.write(`chaos: ${m}\n`);
const secs = (ms: number, digits = 1) => `${(ms / 1000).toFixed(digits)} s`;

// ---- the random plan ----

/** mulberry32: a small seeded generator, so that a seed repeats the plan and the moments. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- what a command printed, and where its files are ----

interface Watch {
  lines: { t: number; text: string }[];
  exited: boolean;
  startedAt: number;
}

interface Lane {
  index: number;
  root: string;
  /** XDG_CACHE_HOME of the scratch cache; the lab's cache is its vmlab/. */
  xdg: string;
  cache: string;
  durations: string;
  prepared?: Promise<void>;
}

interface IterCtx {
  lane: Lane;
  /** The iteration's report directory (both commands write there). */
  dir: string;
  /** Entries there before the command started: a marker file of the dead run is not the new run's. */
  seen: Set<string>;
}

/** What is in the places markers look at, before a command starts. */
function snapshot(c: IterCtx): void {
  c.seen.clear();
  for (const d of [c.dir, join(c.lane.cache, "images")]) {
    try {
      for (const n of readdirSync(d)) c.seen.add(join(d, n));
    } catch {
      /* not there yet */
    }
  }
}

type Marker = (w: Watch, c: IterCtx) => boolean;
const line =
  (re: RegExp): Marker =>
  (w) =>
    w.lines.some((l) => re.test(l.text));
const exited: Marker = (w) => w.exited;

/** A file named `name` at most `depth` directories under `dir`. */
function findFile(dir: string, name: string, depth: number): string | undefined {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const e of entries) {
    if (e.name === name) return join(dir, e.name);
    if (e.isDirectory() && depth > 0) {
      const f = findFile(join(dir, e.name), name, depth - 1);
      if (f) return f;
    }
  }
  return undefined;
}

interface Phase {
  name: string;
  /** What the signal lands in, for the table's last column when the output says nothing. */
  what: string;
  weight: number;
  scratch: boolean;
  args: (c: IterCtx) => string[];
  /** Before the interrupted command: what must not be there for the phase to happen (a finished scratch entry). */
  prepare?: (c: IterCtx) => Promise<void>;
  start: Marker;
  end: Marker;
  /** The window until one is measured here: seconds on a 2-core TCG host. */
  defaultWindowMs: number;
  /** After the next run: the cache entry it made, which must verify. */
  made?: (c: IterCtx) => Promise<string | undefined>;
  /** Where the signal fell, from the step line in progress (if any) and the files. */
  where?: (c: IterCtx, step: string | undefined) => string;
}

async function finishedEntries(dir: string, prefix: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((n) => n.startsWith(prefix) && existsSync(join(dir, n, MANIFEST))).map((n) => join(dir, n));
}

const PHASES: Phase[] = [
  {
    name: "image-build",
    what: "image build",
    weight: 5,
    scratch: true,
    args: () => ["image", "build", "rescue"],
    prepare: async (c) => {
      for (const d of await finishedEntries(join(c.lane.cache, "images"), "rescue-")) await rm(d, { recursive: true, force: true });
    },
    start: (_w, c) => {
      try {
        const d = join(c.lane.cache, "images");
        return readdirSync(d).some((n) => n.startsWith(".build-rescue-") && !c.seen.has(join(d, n)));
      } catch {
        return false;
      }
    },
    end: exited,
    defaultWindowMs: 30_000,
    made: async (c) => (await finishedEntries(join(c.lane.cache, "images"), "rescue-"))[0],
    // The build prints nothing when not on a terminal: its work directory says how far it got.
    where: (c) => {
      const d = join(c.lane.cache, "images");
      const work = readdirSync(d).find((n) => n.startsWith(".build-rescue-") && !c.seen.has(join(d, n)));
      const files = work ? readdirSync(join(d, work)) : [];
      return `image build: ${files.some((f) => f.endsWith(".qcow2")) ? "conversion to qcow2" : files.some((f) => f.endsWith(".raw")) ? "disk assembly (mke2fs -d)" : "tree copy and customisation"}`;
    },
  },
  {
    name: "warm-save",
    what: "warm-state save",
    weight: 5,
    scratch: true,
    args: (c) => ["run", "smoke", "--report-dir", c.dir],
    prepare: async (c) => {
      for (const d of await finishedEntries(join(c.lane.cache, "states"), "debian12-bios-")) await rm(d, { recursive: true, force: true });
    },
    start: line(/… smoke: warm state$/),
    end: line(/✔ smoke: warm state/),
    defaultWindowMs: 50_000,
    made: async (c) => (await finishedEntries(join(c.lane.cache, "states"), "debian12-bios-"))[0],
  },
  {
    name: "resume",
    what: "resume",
    weight: 10,
    scratch: false,
    args: (c) => ["run", "smoke", "--report-dir", c.dir],
    start: line(/… smoke: start from the saved state/),
    end: line(/✔ smoke: start from the saved state/),
    defaultWindowMs: 5_000,
  },
  {
    name: "step",
    what: "step",
    weight: 10,
    scratch: false,
    args: (c) => ["run", "smoke", "--report-dir", c.dir],
    start: line(/… smoke: seed data set/),
    end: line(/✔ smoke: check the data set/),
    defaultWindowMs: 8_000,
  },
  {
    name: "reboot",
    what: "reboot",
    weight: 5,
    scratch: false,
    args: (c) => ["run", "bench/chaos/reboot.ts", "--report-dir", c.dir],
    start: line(/… chaos-reboot: reboot through the firmware/),
    end: line(/✔ chaos-reboot: reboot through the firmware/),
    defaultWindowMs: 35_000,
  },
  {
    name: "checkpoint",
    what: "checkpoint",
    weight: 10,
    scratch: false,
    args: (c) => ["run", "bench/chaos/pair.ts", "bench/chaos/pair-twin.ts", "--jobs", "2", "--report-dir", c.dir],
    start: (_w, c) => {
      try {
        return readdirSync(c.dir).some((n) => !c.seen.has(join(c.dir, n)) && findFile(join(c.dir, n), "state.bin.partial", 2) !== undefined);
      } catch {
        return false;
      }
    },
    end: line(/checkpoint before step \d+ .*paused/),
    defaultWindowMs: 1_600,
    where: (_c, step) => `checkpoint before step 2${step ? `, after ${step}` : ""}`,
  },
  {
    name: "sweep-row",
    what: "sweep row",
    weight: 5,
    scratch: false,
    args: (c) => ["sweep", "smoke", "--fault", "power-cut", "--at", "2", "--report-dir", c.dir],
    start: line(/… smoke: fork:/),
    end: line(/sweep: step 2 done/),
    defaultWindowMs: 47_000,
  },
];

// ---- processes ----

interface Proc {
  pid: number;
  qemu: boolean;
  args: string;
}

/** Running (not zombie) processes whose environment carries a tag starting with `prefix`. */
function tagged(prefix: string): Proc[] {
  const out: Proc[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${p}/environ`, "utf8").split("\0");
      if (!env.some((e) => e.startsWith(`${TAG}=${prefix}`))) continue;
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      if (/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2))) continue;
      const args = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").filter(Boolean);
      out.push({ pid: Number(p), qemu: /qemu-system/.test(args[0] ?? ""), args: args.join(" ").slice(0, 160) });
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return out;
}

/** Tagged processes once they have had up to `ms` to go. */
async function settle(prefix: string, ms: number): Promise<Proc[]> {
  const deadline = Date.now() + ms;
  let left = tagged(prefix);
  while (left.length && Date.now() < deadline) {
    await sleep(100);
    left = tagged(prefix);
  }
  return left;
}

function env(lane: Lane, scratch: boolean, tag: string): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, CI: "true", VMLAB_DURATIONS: lane.durations, [TAG]: tag };
  delete e.VMLAB_REPORTS;
  if (scratch) {
    delete e.VMLAB_CACHE;
    e.XDG_CACHE_HOME = lane.xdg;
  }
  return e;
}

/** Start `vmlab ARGS`, its output watched line by line and kept in `log` (the iteration's directory) with times. */
function launch(args: string[], e: NodeJS.ProcessEnv, log: string): { proc: ResultPromise; watch: Watch } {
  const watch: Watch = { lines: [], exited: false, startedAt: Date.now() };
  const proc = execa(process.execPath, [VMLAB, ...args], { cwd: projectRoot, env: e, extendEnv: false, reject: false, stdin: "ignore", buffer: false, forceKillAfterDelay: false });
  for (const stream of [proc.stdout, proc.stderr]) {
    let rest = "";
    stream?.on("data", (d: Buffer) => {
      const parts = (rest + d.toString()).split("\n");
      rest = parts.pop() ?? "";
      for (const p of parts) watch.lines.push({ t: Date.now(), text: p });
    });
    stream?.on("end", () => rest && watch.lines.push({ t: Date.now(), text: rest }));
  }
  void proc.finally(() => {
    watch.exited = true;
    const text = watch.lines.map((l) => `${((l.t - watch.startedAt) / 1000).toFixed(2).padStart(7)}  ${l.text}`).join("\n");
    void writeFile(log, `$ vmlab ${args.join(" ")}\n${text}\n`).catch(() => undefined);
  });
  return { proc, watch };
}

/** The command's result, or undefined when it has not ended within `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  const ac = new AbortController();
  try {
    return await Promise.race([p, sleep(ms, undefined, { signal: ac.signal }).catch(() => undefined)]);
  } finally {
    ac.abort();
  }
}

function exitOf(r: { exitCode?: number; signal?: string }): string {
  return r.signal ? r.signal.replace(/^SIG/, "") : String(r.exitCode);
}

/** The step in progress when the signal went: the last "… name: step" line before it. */
function stepAt(w: Watch, t: number): string | undefined {
  const l = w.lines.filter((x) => x.t <= t && /^… /.test(x.text)).at(-1);
  return l?.text.slice(2);
}

// ---- files left ----

interface Leftovers {
  overlays: string[];
  sockets: string[];
  other: string[];
}

async function walk(dir: string, f: (path: string, isDir: boolean, isSocket: boolean) => void | "skip"): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (f(p, e.isDirectory(), e.isSocket()) === "skip") continue;
    if (e.isDirectory()) await walk(p, f);
  }
}

const DISK = /\.(qcow2|raw|partial)$|(^|\/)checkpoint-\d+\/state\.bin$/;

async function leftovers(c: IterCtx, procs: Proc[]): Promise<Leftovers> {
  const l: Leftovers = { overlays: [], sockets: [], other: [] };
  const look = (p: string, isDir: boolean, isSocket: boolean) => {
    if (isSocket || p.endsWith(".sock")) l.sockets.push(p);
    else if (!isDir && DISK.test(p)) l.overlays.push(p);
    else if (isDir && /\/checkpoint-\d+$/.test(p)) l.other.push(p);
  };
  await walk(c.dir, look);
  // Work directories, half-made entries and locks in the scratch cache (finished entries are the cache).
  for (const sub of ["images", "states", "trees"]) {
    const d = join(c.lane.cache, sub);
    for (const n of existsSync(d) ? await readdir(d) : []) {
      const p = join(d, n);
      const work = n.startsWith(".build-") || n.includes(".tmp-");
      const lock = n.startsWith(".lock-") || n.endsWith(".lock");
      const unfinished = !work && !lock && sub !== "trees" && !existsSync(join(p, MANIFEST));
      if (!work && !lock && !unfinished) continue;
      l.other.push(p);
      await walk(p, look);
    }
  }
  // Run entries of either cache that name this iteration's directories.
  for (const runs of [join(cacheDir(), "runs"), join(c.lane.cache, "runs")]) {
    for (const n of existsSync(runs) ? await readdir(runs) : []) {
      const text = await readFile(join(runs, n), "utf8").catch(() => "");
      if (text.includes(`${c.dir}/`) || text.includes(`"${c.dir}"`)) l.other.push(join(runs, n));
    }
  }
  // Short links to socket directories (src/vm/socket-dir.ts) that point into the iteration's directory or the scratch cache.
  l.sockets.push(...socketLinks([`${c.dir}/`, `${c.lane.cache}/`]));
  for (const p of procs.filter((x) => !x.qemu)) l.other.push(`pid ${p.pid}: ${p.args}`);
  return l;
}

/** Links in the temp directories named like the lab's socket links that point under one of `prefixes`. */
function socketLinks(prefixes: string[]): string[] {
  const out: string[] = [];
  for (const base of new Set([tmpdir(), "/tmp"])) {
    for (const n of readdirSync(base).filter((x) => x.startsWith("vmlab-"))) {
      try {
        const to = readlinkSync(join(base, n));
        if (prefixes.some((p) => to.startsWith(p))) out.push(join(base, n));
      } catch {
        /* not a link */
      }
    }
  }
  return out;
}

/** Remove what an iteration left in the scratch cache, once counted, so the next iteration starts clean. */
async function resetScratch(lane: Lane): Promise<void> {
  for (const link of socketLinks([`${lane.cache}/`])) await rm(link, { force: true });
  for (const sub of ["images", "states"]) {
    const d = join(lane.cache, sub);
    for (const n of existsSync(d) ? await readdir(d) : []) {
      const p = join(d, n);
      if (n.startsWith(".build-") || n.includes(".tmp-") || n.startsWith(".lock-") || n.endsWith(".lock") || !existsSync(join(p, MANIFEST))) {
        await execa("rm", ["-rf", "--one-file-system", p], { reject: false });
      }
    }
  }
}

// ---- the cache: stamps of every file, blocks of the files in use ----

const BLOCK = 1 << 20;
interface FileState {
  size: number;
  stamp: string;
}

async function stampsOf(dirs: string[]): Promise<Map<string, FileState>> {
  const m = new Map<string, FileState>();
  for (const d of dirs) {
    const todo: string[] = [d];
    while (todo.length) {
      const x = todo.pop()!;
      let entries;
      try {
        entries = await readdir(x, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        const p = join(x, e.name);
        if (e.isDirectory()) todo.push(p);
        else if (e.isFile()) {
          const s = await stat(p, { bigint: true }).catch(() => undefined);
          if (s) m.set(p, { size: Number(s.size), stamp: `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}` });
        }
      }
    }
  }
  return m;
}

async function blocksOf(path: string): Promise<string[]> {
  const out: string[] = [];
  let buf = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: BLOCK })) {
    buf = Buffer.concat([buf, chunk as Buffer]);
    while (buf.length >= BLOCK) {
      out.push(createHash("sha1").update(buf.subarray(0, BLOCK)).digest("hex"));
      buf = buf.subarray(BLOCK);
    }
  }
  if (buf.length) out.push(createHash("sha1").update(buf).digest("hex"));
  return out;
}

async function changedBytes(path: string, before: string[], size: number): Promise<number> {
  if (!existsSync(path)) return size;
  const now = await blocksOf(path);
  let n = 0;
  for (let i = 0; i < Math.max(now.length, before.length); i++) if (now[i] !== before[i]) n += BLOCK;
  return Math.min(n, Math.max(size, (await stat(path)).size));
}

class CacheWatch {
  stamps = new Map<string, FileState>();
  blocks = new Map<string, string[]>();
  constructor(
    readonly stampDirs: string[],
    readonly hashedDirs: string[],
  ) {}

  async baseline(): Promise<void> {
    this.stamps = await stampsOf(this.stampDirs);
    for (const d of this.hashedDirs) for (const f of await readdir(d)) if (this.stamps.has(join(d, f))) this.blocks.set(join(d, f), await blocksOf(join(d, f)));
  }

  hashedBytes(): number {
    return [...this.blocks.keys()].reduce((n, f) => n + (this.stamps.get(f)?.size ?? 0), 0);
  }

  /** Bytes changed since the baseline: by stamp, then block by block where the blocks are known. */
  async changed(full = false): Promise<{ bytes: number; files: string[] }> {
    const now = await stampsOf(this.stampDirs);
    let bytes = 0;
    const files: string[] = [];
    for (const [p, was] of this.stamps) {
      const is = now.get(p);
      const blocks = this.blocks.get(p);
      if (is && is.stamp === was.stamp && !(full && blocks)) continue;
      const n = blocks ? await changedBytes(p, blocks, was.size) : is ? Math.max(is.size, was.size) : was.size;
      if (n > 0 || !is) {
        bytes += n;
        files.push(`${p} (${is ? `${n} bytes` : "removed"})`);
      }
    }
    return { bytes, files };
  }
}

// ---- one iteration ----

interface Row {
  n: number;
  phase: Phase;
  signal: Signal;
  lane: number;
  atMs?: number;
  intoMs?: number;
  windowMs?: number;
  exit?: string;
  exitAfterMs?: number;
  qemuAfter5s: number;
  /** Other processes of the interrupted command still running 5 s after it exited. */
  othersAfter5s: number;
  where: string;
  cleaned: string;
  qemuLeft: number;
  left: Leftovers;
  changed: number;
  changedFiles: string[];
  next: { pass: boolean; ms: number; exit: string; why?: string };
  tries: number;
}

const measured = new Map<string, number[]>();
const windowOf = (p: Phase) => (measured.get(p.name)?.length ? median(measured.get(p.name)!) : p.defaultWindowMs);

/** Watch a running command for the phase's markers; the phase's duration when both came. */
async function measure(p: Phase, c: IterCtx, watch: Watch): Promise<void> {
  let start: number | undefined;
  while (!watch.exited) {
    if (start === undefined && p.start(watch, c)) start = Date.now();
    if (start !== undefined && p.end !== exited && p.end(watch, c)) break;
    await sleep(POLL_MS);
  }
  if (start !== undefined) (measured.get(p.name) ?? measured.set(p.name, []).get(p.name)!).push(Date.now() - start);
}

async function iteration(n: number, p: Phase, signal: Signal, lane: Lane, random: () => number, runTag: string, real: CacheWatch, scratchWatch: Map<number, CacheWatch>): Promise<Row> {
  const c: IterCtx = { lane, dir: join(lane.root, "reports", `${String(n).padStart(2, "0")}-${p.name}`), seen: new Set() };
  await mkdir(c.dir, { recursive: true });
  const args = p.args(c);
  const row: Row = { n, phase: p, signal, lane: lane.index, qemuAfter5s: 0, othersAfter5s: 0, where: p.what, cleaned: "-", qemuLeft: 0, left: { overlays: [], sockets: [], other: [] }, changed: 0, changedFiles: [], next: { pass: false, ms: 0, exit: "-" }, tries: 0 };
  const tag = `${runTag}:${n}:`;
  for (let attempt = 1; attempt <= 3; attempt++) {
    row.tries = attempt;
    await p.prepare?.(c);
    snapshot(c);
    const { proc, watch } = launch(args, env(lane, p.scratch, `${tag}interrupted-${attempt}`), `${c.dir}.interrupted-${attempt}.log`);
    let started: number | undefined;
    const deadline = Date.now() + 15 * 60_000;
    while (!watch.exited && Date.now() < deadline) {
      if (p.start(watch, c)) {
        started = Date.now();
        break;
      }
      await sleep(POLL_MS);
    }
    if (started === undefined) {
      const r = watch.exited ? await proc : (process.kill(proc.pid!, "SIGKILL"), await proc);
      row.exit = exitOf(r);
      row.where = `the phase never began (exit ${row.exit}): ${watch.lines.slice(-3).map((l) => l.text).join(" | ")}`;
      break;
    }
    // A phase that ends with the command: most of its window, so that the signal lands before the exit.
    const window = windowOf(p) * (p.end === exited ? 0.9 : 1);
    const delay = random() * window;
    while (!watch.exited && Date.now() - started < delay && !p.end(watch, c)) await sleep(POLL_MS);
    if (watch.exited) {
      await proc;
      note(`#${n} ${p.name}: the command ended before the signal; again`);
      continue;
    }
    const sent = Date.now();
    process.kill(proc.pid!, signal);
    row.atMs = sent - watch.startedAt;
    row.intoMs = sent - started;
    row.windowMs = window;
    const step = stepAt(watch, sent);
    row.where = (p.end !== exited && p.end(watch, c) ? "at its end: " : "") + (p.where ? p.where(c, step) : (step ?? p.what));
    let r = await within(proc, 120_000);
    if (!r) {
      note(`#${n} ${p.name}: no exit 120 s after ${signal}; SIGKILL`);
      process.kill(proc.pid!, "SIGKILL");
      r = await proc;
      row.where += " (hung after the signal, killed)";
    }
    row.exitAfterMs = Date.now() - sent;
    row.exit = exitOf(r);
    const after = await settle(tag, 5000);
    row.qemuAfter5s = after.filter((x) => x.qemu).length;
    row.othersAfter5s = after.length - row.qemuAfter5s;
    if (after.length) note(`#${n} ${p.name}: 5 s after the exit still running: ${after.map((x) => `${x.pid} ${x.args}`).join("; ")}`);
    break;
  }

  // The next run: the same command, to completion.
  const t = Date.now();
  snapshot(c);
  const { proc, watch } = launch(args, env(lane, p.scratch, `${tag}next`), `${c.dir}.next.log`);
  const timing = measure(p, c, watch);
  let r = await within(proc, 20 * 60_000);
  if (!r) {
    process.kill(proc.pid!, "SIGKILL");
    r = await proc;
  }
  await timing;
  const out = watch.lines.map((l) => l.text);
  const cleanedLine = out.find((l) => /cleaned up after \d+ run/.test(l));
  const builds = out.find((l) => /removed \d+ build director/.test(l));
  const m = cleanedLine && /ended (\d+) QEMU, removed (\d+)/.exec(cleanedLine);
  row.cleaned = [m ? `${m[1]} QEMU, ${m[2]} files` : "", builds ? `${/removed (\d+)/.exec(builds)![1]} build dirs` : ""].filter(Boolean).join(", ") || "-";
  row.next = { pass: r.exitCode === 0, ms: Date.now() - t, exit: exitOf(r) };
  if (!row.next.pass) row.next.why = out.filter((l) => /✖|FAIL|error|Error/.test(l)).slice(0, 3).join(" | ") || out.slice(-3).join(" | ");
  if (row.next.pass && p.made) {
    const entry = await p.made(c);
    const v = entry ? await verifyManifest(entry) : undefined;
    if (v?.state !== "ok") row.next = { ...row.next, pass: false, why: entry ? `${entry} does not verify: ${JSON.stringify(v)}` : "no finished entry after the next run" };
  }

  const procs = await settle(tag, 5000);
  row.qemuLeft = procs.filter((x) => x.qemu).length;
  row.left = await leftovers(c, procs);
  const changes = [await real.changed(), ...(p.scratch ? [await scratchWatch.get(lane.index)!.changed()] : [])];
  row.changed = changes.reduce((s, x) => s + x.bytes, 0);
  row.changedFiles = changes.flatMap((x) => x.files);
  if (p.scratch) await resetScratch(lane);
  return row;
}

// ---- main ----

const count = Number(values.count);
const jobs = Math.max(1, Number(values.jobs));
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(seed)) {
  process.stderr.write("usage: bench/chaos.ts [--count N] [--seed S] [--only PHASE,...] [--jobs N] [--plan] [--keep-work]\n");
  process.exit(2);
}
const only = values.only?.split(",").map((s) => s.trim()).filter(Boolean);
const unknown = only?.filter((o) => !PHASES.some((p) => p.name === o)) ?? [];
if (unknown.length) {
  process.stderr.write(`unknown phase ${unknown.join(", ")}; phases: ${PHASES.map((p) => p.name).join(", ")}\n`);
  process.exit(2);
}
const phases = only ? PHASES.filter((p) => only.includes(p.name)) : PHASES;

// Counts by weight (largest remainder), signals in turn within each phase so that each sees all three, then shuffled.
const random = rng(seed);
const total = phases.reduce((s, p) => s + p.weight, 0);
const quota = phases.map((p) => (count * p.weight) / total);
const counts = quota.map(Math.floor);
for (const i of quota.map((q, i) => [q - Math.floor(q), i] as const).sort((a, b) => b[0] - a[0]).map(([, i]) => i).slice(0, count - counts.reduce((s, x) => s + x, 0))) counts[i]!++;
let turn = 0;
const plan: { phase: Phase; signal: Signal }[] = phases.flatMap((p, i) => Array.from({ length: counts[i]! }, () => ({ phase: p, signal: SIGNALS[turn++ % 3]! })));
for (let i = plan.length - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1));
  [plan[i], plan[j]] = [plan[j]!, plan[i]!];
}
const header = `chaos: ${count} interruptions, seed ${seed}, ${jobs} at a time; ${phases.map((p, i) => `${p.name} ${counts[i]}`).join(", ")}; ${SIGNALS.map((s) => `${plan.filter((x) => x.signal === s).length} ${s}`).join(", ")}`;
if (values.plan) {
  process.stdout.write(`${header}\n`);
  plan.forEach((x, i) => process.stdout.write(`${i + 1}  ${x.phase.name}  ${x.signal}\n`));
  process.exit(0);
}

const t0 = Date.now();
process.stdout.write(`${header}\n`);

// What the runs in the real cache use: the debian12-bios image and its default warm state.
const accel = await chooseAccel();
const image = await findBuilt(await loadRecipe("debian12-bios"), { progress: note });
if (!image) {
  process.stderr.write("chaos: no cached debian12-bios image; `vmlab run smoke` builds it (and saves its warm state) first\n");
  process.exit(2);
}
const stateDir = join(statesDir(), `${image.name}-${await warmKey(image, DEFAULT_PROFILE, accel)}`);
if (!existsSync(join(stateDir, MANIFEST))) {
  process.stderr.write(`chaos: no saved warm state ${stateDir}; \`vmlab run smoke\` saves it first\n`);
  process.exit(2);
}
const rescue = await loadRecipe("rescue");
const tree = join(treesDir(), `${rescue.suite}-${treeHash(rescue)}`);
const usesScratch = plan.some((x) => x.phase.scratch);
if (usesScratch && !existsSync(join(tree, ".vmlab-tree"))) {
  process.stderr.write(`chaos: no cached Debian tree ${tree}; \`vmlab image build\` makes it first\n`);
  process.exit(2);
}

const work = await mkdtemp(join(tmpdir(), "vmlab-chaos-"));
const runTag = `${seed}-${process.pid}`;
const lanes: Lane[] = Array.from({ length: Math.min(jobs, plan.length) }, (_, i) => {
  const root = join(work, `lane-${i + 1}`);
  return { index: i + 1, root, xdg: join(root, "xdg"), cache: join(root, "xdg", "vmlab"), durations: join(root, "durations.json") };
});

/** The scratch cache: the lab's key, the Debian tree and the debian12-bios image, copied (never linked) from the real cache. */
async function prepareScratch(lane: Lane): Promise<void> {
  await mkdir(join(lane.cache, "trees"), { recursive: true });
  await mkdir(join(lane.cache, "images"), { recursive: true });
  await execa("cp", ["-a", join(cacheDir(), "keys"), join(lane.cache, "keys")]);
  await execa("cp", ["-a", "--reflink=auto", tree, join(lane.cache, "trees")]);
  await execa("cp", ["-a", "--reflink=auto", image!.dir, join(lane.cache, "images")]);
  // The copies have new stamps: verified (hashed) once here, as the lab would at its first use.
  const v = await verifyManifest(join(lane.cache, "images", image!.dir.split("/").at(-1)!));
  if (v.state !== "ok") throw new Error(`the scratch copy of ${image!.dir} does not verify: ${JSON.stringify(v)}`);
}

note(`work directory ${work}`);
const real = new CacheWatch([imagesDir(), statesDir()], [image.dir, stateDir]);
const scratchWatch = new Map<number, CacheWatch>();
let t = Date.now();
await real.baseline();
if (usesScratch) {
  await Promise.all(lanes.map((l) => prepareScratch(l)));
  for (const l of lanes) {
    // The copies are stat'ed only: a write changes the stamps, and their manifests are verified at the end.
    const w = new CacheWatch([join(l.cache, "images", image.dir.split("/").at(-1)!), join(l.cache, "trees")], []);
    await w.baseline();
    scratchWatch.set(l.index, w);
  }
}
const hashed = real.hashedBytes() + [...scratchWatch.values()].reduce((s, w) => s + w.hashedBytes(), 0);
note(`baseline: ${real.stamps.size} files of the real cache's images and states stat'ed, ${(hashed / 2 ** 30).toFixed(2)} GiB hashed in 1 MiB blocks (${image.dir}, ${stateDir}) in ${secs(Date.now() - t)}`);

const rows: Row[] = [];
let next = 0;
await Promise.all(
  lanes.map(async (lane) => {
    while (next < plan.length) {
      const i = next++;
      const { phase, signal } = plan[i]!;
      // Each iteration draws its moments from its own generator: the same seed gives the same moments whichever lane runs it.
      const r = await iteration(i + 1, phase, signal, lane, rng(seed * 1000 + i + 1), runTag, real, scratchWatch).catch(
        (err: Error): Row => ({ n: i + 1, phase, signal, lane: lane.index, qemuAfter5s: 0, othersAfter5s: 0, where: `the script failed: ${err.message}`, cleaned: "-", qemuLeft: 0, left: { overlays: [], sockets: [], other: [] }, changed: 0, changedFiles: [], next: { pass: false, ms: 0, exit: "-", why: err.stack }, tries: 0 }),
      );
      rows.push(r);
      const left = r.qemuLeft + r.left.overlays.length + r.left.sockets.length + r.left.other.length;
      note(
        `#${r.n}/${plan.length} ${phase.name} ${signal} at ${r.atMs !== undefined ? secs(r.atMs) : "-"} (${r.intoMs !== undefined ? `${secs(r.intoMs)} into ${r.where}` : r.where}): exit ${r.exit ?? "-"}${r.exitAfterMs !== undefined ? ` after ${secs(r.exitAfterMs)}` : ""}; next run ${r.next.pass ? "pass" : `FAIL (${r.next.exit}) ${r.next.why ?? ""}`} in ${secs(r.next.ms)}; left: ${left ? [...r.left.overlays, ...r.left.sockets, ...r.left.other].join(", ") || `${r.qemuLeft} QEMU` : "nothing"}${r.changed ? `; ${r.changed} cache bytes changed` : ""}`,
      );
    }
  }),
);
rows.sort((a, b) => a.n - b.n);

// The cache after the last iteration: every file hashed in blocks again, and the manifests of every image and state.
t = Date.now();
const finalChanges = [await real.changed(true), ...(await Promise.all([...scratchWatch.values()].map((w) => w.changed(true))))];
const finalBytes = finalChanges.reduce((s, x) => s + x.bytes, 0);
// Entries without a manifest were made by an older vmlab: they cannot be verified, and the lab never uses them.
const manifests = { ok: 0, older: 0, bad: [] as string[] };
const scratchImages = usesScratch ? lanes.map((l) => join(l.cache, "images", image.dir.split("/").at(-1)!)) : [];
for (const d of [imagesDir(), statesDir()]) {
  for (const n of await readdir(d)) {
    const p = join(d, n);
    if (!(await lstat(p)).isDirectory() || n.startsWith(".")) continue;
    const v = await verifyManifest(p);
    if (v.state === "ok") manifests.ok++;
    else if (v.state === "unverified") manifests.older++;
    else manifests.bad.push(`${p}: ${v.problems.join("; ")}`);
  }
}
for (const p of scratchImages) {
  const v = await verifyManifest(p);
  if (v.state === "ok") manifests.ok++;
  else manifests.bad.push(`${p}: ${v.state === "damaged" ? v.problems.join("; ") : v.state}`);
}
note(`after the last iteration: hashed again and verified in ${secs(Date.now() - t)}`);
const stray = tagged(`${runTag}:`);

// ---- the table ----

const table = [["#", "phase", "signal", "at", "into phase", "exit", "exit after", "+5s QEMU/other", "next cleaned", "QEMU left", "overlays left", "sockets left", "other left", "cache bytes changed", "next run", "signal fell in"]];
for (const r of rows) {
  table.push([
    String(r.n),
    r.phase.name,
    r.signal.replace(/^SIG/, ""),
    r.atMs !== undefined ? secs(r.atMs) : "-",
    r.intoMs !== undefined ? `${secs(r.intoMs)} of ${secs(r.windowMs!, r.windowMs! < 10_000 ? 1 : 0)}` : "-",
    r.exit ?? "-",
    r.exitAfterMs !== undefined ? secs(r.exitAfterMs) : "-",
    `${r.qemuAfter5s}/${r.othersAfter5s}`,
    r.cleaned,
    String(r.qemuLeft),
    String(r.left.overlays.length),
    String(r.left.sockets.length),
    String(r.left.other.length),
    String(r.changed),
    r.next.pass ? `pass ${secs(r.next.ms)}` : `FAIL ${r.next.exit}`,
    r.where,
  ]);
}
process.stdout.write("\n" + alignColumns(table).join("\n") + "\n\n");
for (const r of rows) {
  const details = [...r.left.overlays, ...r.left.sockets, ...r.left.other, ...r.changedFiles];
  if (details.length) process.stdout.write(`#${r.n} left or changed: ${details.join(", ")}\n`);
  if (!r.next.pass) process.stdout.write(`#${r.n} next run: ${r.next.why}\n`);
}

const interrupted = rows.filter((r) => r.atMs !== undefined);
const sum = (f: (r: Row) => number) => rows.reduce((s, r) => s + f(r), 0);
const passed = rows.filter((r) => r.next.pass).length;
const wall = Date.now() - t0;
process.stdout.write(
  `cache: ${real.stamps.size} files of the real cache's images and states stat'ed after every iteration; ${(hashed / 2 ** 30).toFixed(2)} GiB in use hashed in 1 MiB blocks before the first and after the last: ${finalBytes} bytes changed; manifests: ${manifests.ok} entries verified (${manifests.older} older ones have none)${manifests.bad.length ? `, ${manifests.bad.length} DAMAGED: ${manifests.bad.join("; ")}` : ""}; processes of this run still running: ${stray.length}\n`,
);
process.stdout.write(
  `chaos: ${interrupted.length} interruptions (${SIGNALS.map((s) => `${interrupted.filter((r) => r.signal === s).length} ${s}`).join(", ")}) over ${new Set(interrupted.map((r) => r.phase.name)).size} phases: ` +
    `${sum((r) => r.qemuLeft)} QEMU left, ${sum((r) => r.left.overlays.length)} overlays left, ${sum((r) => r.left.sockets.length)} sockets left, ${sum((r) => r.left.other.length)} other leftovers, ${sum((r) => r.changed) + finalBytes} changed cache bytes; ` +
    `the next run passed ${passed}/${rows.length}${passed === rows.length ? " (every time)" : ""}; ` +
    `median exit ${secs(median(interrupted.map((r) => r.exitAfterMs!)), 2)} after the signal, median next run ${secs(median(rows.map((r) => r.next.ms)))}; wall time ${secs(wall, 0)} (${(wall / 60_000).toFixed(1)} min)\n`,
);

const clean = interrupted.length === count && passed === rows.length && sum((r) => r.qemuLeft + r.left.overlays.length + r.left.sockets.length + r.left.other.length + r.changed) + finalBytes === 0 && manifests.bad.length === 0 && stray.length === 0;
if (values["keep-work"] || !clean) note(`work directory kept: ${work}`);
else await rm(work, { recursive: true, force: true });
process.exit(clean ? 0 : 1);
