import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import lockfile from "proper-lockfile";

/** A held lock's directory is touched this often; one untouched for `DEFAULT_STALE_MS` belongs to a holder that died. */
export const DEFAULT_STALE_MS = 15_000;

export interface DirLockOptions {
  /** Told once when the lock is held by someone else and this caller starts waiting. */
  onWait?: () => void;
  /** A lock not refreshed for this long is taken over (at least 2000 ms; default 15 s). */
  staleMs?: number;
  /** How often a waiting caller tries again (default 500 ms). */
  pollMs?: number;
  /** Told when the held lock was lost (taken over as stale, or removed): another builder may be at work. */
  onCompromised?: (err: Error) => void;
}

/**
 * Run `fn` holding the lock directory `lock`: one builder of a cached thing
 * at a time, across processes and within one. A second caller waits (told
 * once through `onWait`), and `fn` learns that it waited, so that it can
 * take what the first one made instead of making it again.
 *
 * The lock is proper-lockfile's: a directory made with mkdir (atomic),
 * whose mtime the holder refreshes while it holds it. A holder that dies,
 * SIGKILL included, stops refreshing it, and its lock is taken over once it
 * is `staleMs` old: seconds, not a guess about how long a build may take.
 */
export async function withDirLock<T>(lock: string, fn: (waited: boolean) => Promise<T>, opts: DirLockOptions = {}): Promise<T> {
  const held = await takeDirLock(lock, opts);
  try {
    return await fn(held.waited);
  } finally {
    await held.release();
  }
}

/**
 * withDirLock's lock without the callback, for code that takes it in one
 * place and lets it go in another: wait for it, then `release()` in a
 * finally. `waited` tells whether someone else held it first.
 */
export async function takeDirLock(lock: string, opts: DirLockOptions = {}): Promise<{ waited: boolean; release: () => Promise<void> }> {
  await mkdir(dirname(lock), { recursive: true });
  const stale = Math.max(2000, opts.staleMs ?? DEFAULT_STALE_MS);
  let waited = false;
  for (;;) {
    try {
      const release = await lockfile.lock(lock, {
        lockfilePath: lock,
        realpath: false,
        stale,
        // Refreshed four times per stale period: a busy host's late timer does not lose the lock.
        update: Math.max(1000, stale / 4),
        retries: 0,
        // The default throws from a timer, which would end the process; the work goes on, and the caller is told.
        onCompromised: (err) => opts.onCompromised?.(err),
      });
      // A compromised lock is no longer ours to remove; releasing it says so, and that is not the work's failure.
      return { waited, release: () => release().catch(() => undefined) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ELOCKED") throw err;
      if (!waited) opts.onWait?.();
      waited = true;
      await sleep(opts.pollMs ?? 500);
    }
  }
}
