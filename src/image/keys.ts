import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { cacheDir } from "../paths.ts";
import { run } from "../util/proc.ts";

/**
 * The lab's SSH key: generated once, kept with the image cache, and baked
 * into every image's /root/.ssh/authorized_keys.
 */
export async function labKey(): Promise<{ privateKey: string; publicKey: string }> {
  const dir = join(cacheDir(), "keys");
  const privateKey = join(dir, "id_ed25519");
  if (!existsSync(privateKey)) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "vmlab-lab-key", "-f", privateKey], {
      hint: "install the Debian package openssh-client",
    });
  }
  const publicKey = (await readFile(`${privateKey}.pub`, "utf8")).trim();
  return { privateKey, publicKey };
}

/** The root password on the serial console, the way back in when SSH is gone. Documented in the README. */
export const CONSOLE_ROOT_PASSWORD = "vmlab";
