/**
 * Free space on the host: checked before a build copies gigabytes where it
 * is cheap to know how much is needed, and a full disk (ENOSPC), wherever
 * it surfaces later (a write of the lab's own, or a tool's "No space left on
 * device"), turned into one clear error naming the directory and the bytes.
 */
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { HostError, VmlabError } from "../errors.ts";
import { run } from "./proc.ts";

/** Bytes an unprivileged writer may still use on the file system that holds `path` (or its nearest existing parent). */
export async function freeBytes(path: string): Promise<number> {
  for (let p = path; ; p = dirname(p)) {
    try {
      const s = await statfs(p);
      return s.bavail * s.bsize;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || p === dirname(p)) throw err;
    }
  }
}

/** Bytes a directory tree takes on disk (`du`: allocated blocks, each hard-linked file once, one file system). */
export async function diskUsage(dir: string): Promise<number> {
  const { stdout } = await run("du", ["-s", "-x", "-B1", dir]);
  return Number(stdout.split(/\s/)[0]);
}

/** "2.4 GiB (2576980378 bytes)". */
export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[u]} (${n} bytes)`;
}

const hintFor = (dir: string) =>
  `free space on the file system that holds ${dir} (\`df -h ${dir}\`), or point VMLAB_CACHE at a larger one; nothing half-written is kept`;

/** Throws a HostError unless `dir`'s file system has `needed` bytes free: before the work starts, nothing written yet. */
export async function requireSpace(dir: string, needed: number, what: string, how?: string): Promise<void> {
  const free = await freeBytes(dir);
  if (free >= needed) return;
  throw new HostError(`not enough space in ${dir} to ${what}: it needs about ${formatBytes(needed)}, ${formatBytes(free)} free`, {
    where: dir,
    output: how,
    hint: hintFor(dir),
  });
}

const NO_SPACE = /No space left on device|Disk quota exceeded|ENOSPC|EDQUOT/;

/** True for a full file system: an ENOSPC/EDQUOT from node, or a failed tool that said so. */
export function isNoSpace(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException & { output?: string };
  if (!e || typeof e !== "object") return false;
  if (e.code === "ENOSPC" || e.code === "EDQUOT") return true;
  return NO_SPACE.test(`${e.message ?? ""}\n${e instanceof VmlabError ? (e.output ?? "") : ""}`);
}

/**
 * The error to throw for a full disk met while doing `what` in `dir`: names
 * the directory, the bytes needed (when known) and those free; undefined
 * for any other error. The caller has already removed what it half wrote.
 */
export async function noSpaceError(err: unknown, dir: string, what: string, needed?: number): Promise<HostError | undefined> {
  if (!isNoSpace(err) || err instanceof HostError) return undefined;
  const free = await freeBytes(dir).catch(() => undefined);
  const e = err as NodeJS.ErrnoException;
  const need = needed === undefined ? "" : `: it needs about ${formatBytes(needed)}`;
  const has = free === undefined ? "" : `${need ? "," : ":"} ${formatBytes(free)} free now that the partial files are removed`;
  return new HostError(`no space left in ${dir} to ${what}${need}${has}`, {
    where: err instanceof VmlabError ? (err.where ?? dir) : `${e.syscall ?? "write"} ${e.path ?? dir}`,
    output: err instanceof VmlabError ? err.output : e.message,
    hint: hintFor(dir),
    cause: err,
  });
}
