import { homedir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root (where package.json lives). */
export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Where built images, saved states and the lab's SSH key live.
 * VMLAB_CACHE overrides; otherwise $XDG_CACHE_HOME/vmlab or ~/.cache/vmlab.
 */
export function cacheDir(): string {
  if (process.env.VMLAB_CACHE) return resolve(process.env.VMLAB_CACHE);
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "vmlab");
}

/** Where runs write their overlays, sockets and logs unless --report-dir says otherwise. */
export function defaultReportsDir(): string {
  return resolve(process.env.VMLAB_REPORTS ?? join(process.cwd(), "reports"));
}
