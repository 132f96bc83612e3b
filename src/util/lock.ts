import { statSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { dirname } from "node:path";

/**
 * Run `fn` holding a lock directory: one builder of a cached thing at a time,
 * across processes. A second caller waits (told once through `onWait`); a
 * lock older than `staleMs` belongs to a builder that died and is taken over.
 */
export async function withDirLock<T>(lock: string, fn: (waited: boolean) => Promise<T>, opts: { onWait?: () => void; staleMs?: number } = {}): Promise<T> {
  await mkdir(dirname(lock), { recursive: true });
  let waited = false;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch {
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > (opts.staleMs ?? 60 * 60_000)) await rm(lock, { recursive: true, force: true });
      if (!waited) opts.onWait?.();
      waited = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn(waited);
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}
