import { existsSync } from "node:fs";
import { link, mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { cacheDir } from "../paths.ts";
import { run } from "../util/proc.ts";

/**
 * The lab's SSH key: generated once, kept with the image cache, and baked
 * into every image's /root/.ssh/authorized_keys. Safe to ask for from many
 * places at once: the pair is made under a private name and put in place
 * with link(2), which only one maker wins; the others take the winner's.
 */
export async function labKey(): Promise<{ privateKey: string; publicKey: string }> {
  const dir = join(cacheDir(), "keys");
  const privateKey = join(dir, "id_ed25519");
  if (!existsSync(`${privateKey}.pub`)) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const mine = join(dir, `.new-${process.pid}-${Math.random().toString(36).slice(2)}`);
    try {
      await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "vmlab-lab-key", "-f", mine], { hint: "install the Debian package openssh-client" });
      try {
        // The private key first: a .pub without its key is never seen.
        await link(mine, privateKey);
        await link(`${mine}.pub`, `${privateKey}.pub`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    } finally {
      await rm(mine, { force: true });
      await rm(`${mine}.pub`, { force: true });
    }
    // Another maker won between the two links: wait for its .pub.
    for (let i = 0; i < 100 && !existsSync(`${privateKey}.pub`); i++) await new Promise((r) => setTimeout(r, 50));
  }
  const publicKey = (await readFile(`${privateKey}.pub`, "utf8")).trim();
  return { privateKey, publicKey };
}

/** The root password on the serial console, the way back in when SSH is gone. Documented in the README. */
export const CONSOLE_ROOT_PASSWORD = "vmlab";
