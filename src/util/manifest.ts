/**
 * Cache entries that are verified before use: a built image
 * (~/.cache/vmlab/images/NAME-HASH/) or a saved warm state (states/NAME-KEY/)
 * gets a `manifest.json` as the last file written into it before it is
 * renamed into place: each file's sha256, its size and its stat stamp
 * (inode, size, mtime and ctime in nanoseconds).
 *
 * Before use each file is stat'ed. A file whose stamp is the manifest's is
 * trusted without reading it: any write to a file, and any chmod or
 * utimes, sets its ctime to now, and nothing in user space can set a ctime
 * back. A file whose stamp differs (the cache was restored by CI's cache
 * action, copied, or a file was written) is hashed in full; when the hash
 * is the manifest's the new stamp is recorded (if the directory can be
 * written) and the file is used; when it is not, or the size differs, or
 * the file is gone, the entry is damaged. An entry without a manifest
 * (made before manifests, or never finished) cannot be verified. Neither
 * is ever used: the caller removes it and makes it again.
 */
import { createHash } from "node:crypto";
import { createReadStream, type BigIntStats } from "node:fs";
import { lstat, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";

export const MANIFEST = "manifest.json";
const MANIFEST_VERSION = 1;

/** What stat says of a file; equal stamps mean the file was not written since. */
export interface FileStamp {
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

export interface ManifestFile {
  sha256: string;
  size: number;
  stamp: FileStamp;
}

export interface Manifest {
  version: number;
  /** By path relative to the entry's directory. */
  files: Record<string, ManifestFile>;
}

export type Verification =
  /** Every file is the manifest's; `rehashed` were read in full because their stamps had changed. */
  | { state: "ok"; rehashed: string[] }
  /** No manifest: made before manifests existed, or never finished. */
  | { state: "unverified" }
  /** What is wrong, one phrase per file: which file, expected against found. */
  | { state: "damaged"; problems: string[] };

/** How many files and bytes were hashed in full, for the tests and for `VMLAB_DEBUG`-style reports. */
export const hashStats = { files: 0, bytes: 0 };

/** The sha256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  let bytes = 0;
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      bytes += chunk.length;
      h.update(chunk);
    }
  });
  hashStats.files++;
  hashStats.bytes += bytes;
  return h.digest("hex");
}

function stampOf(st: BigIntStats): FileStamp {
  return { ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

const sameStamp = (a: FileStamp, b: FileStamp) => a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;

/** The regular files under `dir`, relative, sorted; the manifest itself and its temporary copies are not among them. */
async function filesOf(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (!rel && (e.name === MANIFEST || e.name.startsWith(`.${MANIFEST}.`))) continue;
    if (e.isDirectory()) out.push(...(await filesOf(dir, path)));
    else if (e.isFile()) out.push(path);
  }
  return out.sort();
}

async function saveManifest(dir: string, m: Manifest): Promise<void> {
  const tmp = join(dir, `.${MANIFEST}.${process.pid}`);
  await writeFile(tmp, JSON.stringify(m, null, 2) + "\n");
  await rename(tmp, join(dir, MANIFEST));
}

/**
 * Hash every file of a finished entry and write its manifest. Call it last,
 * after every chmod, in the work directory that is then renamed into place.
 */
export async function writeManifest(dir: string): Promise<Manifest> {
  const files: Manifest["files"] = {};
  for (const f of await filesOf(dir)) {
    const path = join(dir, f);
    const before = await stat(path, { bigint: true });
    const sha256 = await sha256File(path);
    const after = await stat(path, { bigint: true });
    if (!sameStamp(stampOf(before), stampOf(after))) throw new Error(`${path} changed while its manifest was being written`);
    files[f] = { sha256, size: Number(after.size), stamp: stampOf(after) };
  }
  const m: Manifest = { version: MANIFEST_VERSION, files };
  await saveManifest(dir, m);
  return m;
}

async function readManifest(dir: string): Promise<Manifest | undefined | Error> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return err as Error;
  }
  try {
    const m = JSON.parse(text) as Manifest;
    if (m.version !== MANIFEST_VERSION || !m.files || typeof m.files !== "object") throw new Error(`not a version ${MANIFEST_VERSION} manifest`);
    return m;
  } catch (err) {
    return err as Error;
  }
}

const short = (sha: string) => sha.slice(0, 12);

/**
 * Check an entry against its manifest: stat every file, hash only those
 * whose stamp changed. New stamps of intact files are written back when
 * the directory can be written.
 */
export async function verifyManifest(dir: string): Promise<Verification> {
  const m = await readManifest(dir);
  if (m === undefined) return { state: "unverified" };
  if (m instanceof Error) return { state: "damaged", problems: [`${MANIFEST} cannot be read (${m.message})`] };
  const problems: string[] = [];
  const rehashed: string[] = [];
  for (const [f, want] of Object.entries(m.files)) {
    const path = join(dir, f);
    const st = await stat(path, { bigint: true }).catch(() => undefined);
    if (!st || !st.isFile()) {
      problems.push(`${f} is missing`);
      continue;
    }
    if (Number(st.size) !== want.size) {
      problems.push(`${f} is ${st.size} bytes, its manifest says ${want.size}`);
      continue;
    }
    if (sameStamp(stampOf(st), want.stamp)) continue;
    const sha = await sha256File(path);
    if (sha !== want.sha256) {
      problems.push(`${f} has sha256 ${short(sha)}…, its manifest says ${short(want.sha256)}…`);
      continue;
    }
    // Read in full, and its own: a second look costs one stat again.
    const now = await stat(path, { bigint: true });
    m.files[f] = { ...want, stamp: stampOf(now) };
    rehashed.push(f);
  }
  if (problems.length) return { state: "damaged", problems };
  if (rehashed.length) {
    // A read-only cache (a CI restore, a shared mount) is verified by hash every time instead.
    await saveManifest(dir, m).catch(() => rm(join(dir, `.${MANIFEST}.${process.pid}`), { force: true }).catch(() => undefined));
  }
  return { state: "ok", rehashed };
}

/**
 * What identifies the build an entry holds: one sha256 over its manifest's
 * file hashes; undefined without a manifest. A warm state is keyed by its
 * image's, so a rebuilt image never resumes a state saved over the old one.
 */
export async function manifestId(dir: string): Promise<string | undefined> {
  const m = await readManifest(dir);
  if (!m || m instanceof Error) return undefined;
  const lines = Object.keys(m.files)
    .sort()
    .map((f) => `${m.files[f]!.sha256}  ${f}\n`);
  return createHash("sha256").update(lines.join("")).digest("hex");
}

/**
 * Verify a cache entry before it is used. Intact: true. Damaged or
 * unverified: says what was found through `say` (`<what> is damaged:
 * disk.qcow2 is 1048576 bytes, its manifest says 734003200; <redo>`),
 * removes the entry, and returns false. Missing: false, silently.
 */
export async function checkCacheEntry(dir: string, o: { what: string; redo: string; say: (m: string) => void }): Promise<boolean> {
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return false;
  const v = await verifyManifest(dir);
  if (v.state === "ok") {
    if (v.rehashed.length) o.say(`${o.what}: ${v.rehashed.join(", ")} read in full (restored or touched since the last check) and intact`);
    return true;
  }
  const why = v.state === "unverified" ? `has no ${MANIFEST} (made by an older vmlab, or never finished), so it cannot be verified` : `is damaged: ${v.problems.join("; ")}`;
  const removed = await removeEntry(dir, st.ino);
  o.say(`${o.what} ${why}; ${removed ? o.redo : `it could not be removed (${removed === false ? "replaced meanwhile" : "not writable"}), so it is not used`}`);
  return false;
}

/**
 * Remove an entry found damaged, unless another process replaced it
 * meanwhile (a new inode at that path): renamed aside first, so no reader
 * ever sees it half removed. Undefined when it cannot be removed.
 */
async function removeEntry(dir: string, ino: number): Promise<boolean | undefined> {
  const now = await lstat(dir).catch(() => undefined);
  if (!now) return true;
  if (now.ino !== ino) return false;
  // Named like a build directory, so that one left by a process killed while removing it is swept (src/vm/orphans.ts).
  const aside = join(dirname(dir), `.build-damaged-${basename(dir)}-${Date.now()}-${process.pid}`);
  try {
    await rename(dir, aside);
  } catch {
    return undefined;
  }
  await rm(aside, { recursive: true, force: true }).catch(() => undefined);
  return true;
}
