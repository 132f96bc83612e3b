/**
 * A directory for a machine's UNIX sockets whose paths the kernel accepts.
 *
 * A socket path must be shorter than 108 bytes (sun_path). Run directories
 * can be deeper than that leaves room for (a CI temp directory, a report
 * directory named after a long scenario), so when the run directory is too
 * long, the sockets are reached through a short symlink to it in the temp
 * directory. The sockets themselves still live in the run directory.
 */
import { createHash } from "node:crypto";
import { existsSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;

export function socketDir(runDir: string, longestFile: string): string {
  const dir = resolve(runDir);
  if (Buffer.byteLength(join(dir, longestFile)) <= MAX_SOCKET_PATH) return dir;
  const name = `vmlab-${createHash("sha256").update(dir).digest("hex").slice(0, 12)}`;
  for (const base of [tmpdir(), "/tmp"]) {
    const link = join(base, name);
    if (Buffer.byteLength(join(link, longestFile)) > MAX_SOCKET_PATH) continue;
    try {
      if (readlinkSync(link) === dir) return link;
      rmSync(link, { force: true });
    } catch {
      /* no link yet */
    }
    if (!existsSync(link)) {
      symlinkSync(dir, link);
      return link;
    }
  }
  return dir;
}

/** Remove the short link socketDir made for `runDir`, if any. */
export function removeSocketLink(runDir: string, used: string): void {
  if (used === resolve(runDir)) return;
  try {
    if (readlinkSync(used) === resolve(runDir)) rmSync(used, { force: true });
  } catch {
    /* gone already */
  }
}
