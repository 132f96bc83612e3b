/**
 * Warm starts: boot a base image once per hardware profile, save the running
 * state next to the image cache, and start later machines from it in about a
 * second instead of a cold boot through firmware.
 *
 * A saved state is a pair, both read-only once made:
 *   sda.qcow2   a frozen overlay over the base image, exactly as the guest left it
 *               (sdb.qcow2, ... for the image's further disks, then for the
 *               profile's blank extra disks);
 *   state.bin   QEMU's migration stream of the running guest.
 * Each run puts its own overlay on each disk and resumes state.bin, so runs in
 * parallel share both files and never write them.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { VmlabError } from "../errors.ts";
import { createImage, createOverlay } from "../disk/qemu-img.ts";
import type { AccelChoice } from "../host/kvm.ts";
import { firmwareOf, type BuiltImage } from "../image/build.ts";
import { cacheDir } from "../paths.ts";
import { takeDirLock } from "../util/lock.ts";
import { checkCacheEntry, manifestId, writeManifest } from "../util/manifest.ts";
import { expectBoot, Machine } from "./machine.ts";
import { GUEST_SMP, type DiskAttachment } from "./qemu-args.ts";

/** What must match between the saving machine and every machine that resumes it. */
export interface HardwareProfile {
  memoryMiB: number;
  smp: number;
  /**
   * Blank disks after the image's own (sdb, sdc, ...), by size. The state
   * holds the guest's view of its devices, so each list is its own profile.
   */
  extraDisks: string[];
}

export const DEFAULT_PROFILE: HardwareProfile = { memoryMiB: 1024, smp: GUEST_SMP, extraDisks: [] };

/** Guest disk ids in order: the image's own disks (sda, ...), then one per blank extra disk. */
export function diskIds(profile: HardwareProfile, imageDisks = 1): string[] {
  return Array.from({ length: imageDisks + profile.extraDisks.length }, (_, i) => `sd${String.fromCharCode(97 + i)}`);
}

/** A profile for a scenario's hardware needs. */
export function profileFor(hw: { extraDisks?: string[]; memoryMiB?: number } = {}): HardwareProfile {
  return { ...DEFAULT_PROFILE, extraDisks: hw.extraDisks ?? [], memoryMiB: hw.memoryMiB ?? DEFAULT_PROFILE.memoryMiB };
}

/**
 * The disks of one machine on fresh overlays in `runDir`: over the saved
 * state's disks when warm, over the image and new blank disks when cold.
 */
export async function machineDisks(runDir: string, image: BuiltImage, profile: HardwareProfile, warm?: WarmState): Promise<DiskAttachment[]> {
  const own = image.disks ?? [image.disk];
  const ids = diskIds(profile, own.length);
  const out: DiskAttachment[] = [];
  for (const [i, id] of ids.entries()) {
    const path = join(runDir, `${id}.qcow2`);
    if (warm) await createOverlay(path, join(warm.dir, `${id}.qcow2`), { backingFormat: "qcow2" });
    else if (i < own.length) await createOverlay(path, own[i]!, { backingFormat: "qcow2" });
    else await createImage(path, { format: "qcow2", size: profile.extraDisks[i - own.length]! });
    out.push({ path, format: "qcow2", id });
  }
  return out;
}

/** Bump when the way states are made changes. */
const WARM_VERSION = 2;

export interface WarmState {
  dir: string;
  disk: string;
  state: string;
  /** A UEFI image's state keeps the saving machine's NVRAM with it (efivars.fd). */
  efiVars?: string;
  key: string;
  meta: { image: string; imageHash: string; profile: HardwareProfile; qemu: string; accel: string; savedAt: string; saveMs: number };
}

let qemuVersionCache: string | undefined;
async function qemuVersion(): Promise<string> {
  if (!qemuVersionCache) {
    const bin = process.env.VMLAB_QEMU || "qemu-system-x86_64";
    qemuVersionCache = String((await execa(bin, ["--version"])).stdout).split("\n")[0]!.trim();
  }
  return qemuVersionCache;
}

/**
 * A state is rebuilt when the image, the profile, the accelerator or the QEMU
 * version changes; and when the image is built again, even from the same
 * recipe: its manifest's id is in the key, so no state is resumed over
 * disks other than those it was saved over.
 */
export async function warmKey(image: BuiltImage, profile: HardwareProfile, accel: AccelChoice): Promise<string> {
  const h = createHash("sha256");
  h.update(JSON.stringify({ WARM_VERSION, image: image.hash, build: await manifestId(image.dir), profile, accel: [accel.accel, accel.cpu], qemu: await qemuVersion() }));
  return h.digest("hex").slice(0, 16);
}

export function statesDir(): string {
  return join(cacheDir(), "states");
}


function stateAt(dir: string, key: string, meta: WarmState["meta"]): WarmState {
  const efiVars = join(dir, "efivars.fd");
  return { dir, disk: join(dir, "sda.qcow2"), state: join(dir, "state.bin"), ...(existsSync(efiVars) ? { efiVars } : {}), key, meta };
}

/** The Machine option for a machine resumed from this state: its NVRAM with it. */
export function stateFirmware(warm: Pick<WarmState, "efiVars">): { uefi?: { varsFrom: string } } {
  return warm.efiVars ? { uefi: { varsFrom: warm.efiVars } } : {};
}

/**
 * The saved state for this image and profile, made on first use. Parallel
 * callers wait for the one that makes it (src/util/lock.ts), then share it.
 * It is verified against its manifest before each use (src/util/manifest.ts).
 */
export async function ensureWarmState(
  image: BuiltImage,
  profile: HardwareProfile,
  accel: AccelChoice,
  sshKey: string,
  log: (m: string) => void = () => undefined,
): Promise<WarmState> {
  const key = await warmKey(image, profile, accel);
  const dir = join(statesDir(), `${image.name}-${key}`);
  const metaPath = join(dir, "meta.json");
  await mkdir(statesDir(), { recursive: true });
  // A damaged or unverifiable state is named, removed and saved again; never resumed.
  const saved = async (): Promise<WarmState | undefined> =>
    (await checkCacheEntry(dir, { what: `saved warm state of ${image.name} (${key})`, redo: "saving it again", say: log }))
      ? stateAt(dir, key, JSON.parse(await readFile(metaPath, "utf8")))
      : undefined;
  const found = await saved();
  if (found) return found;
  // One save at a time: a second caller waits, then takes the first one's state.
  const lock = await takeDirLock(`${dir}.lock`, { onWait: () => log(`waiting for another process saving the warm state of ${image.name}`) });
  if (lock.waited) {
    const again = await saved().catch(async (err) => {
      await lock.release();
      throw err;
    });
    if (again) {
      await lock.release();
      return again;
    }
  }
  const work = `${dir}.tmp-${process.pid}`;
  try {
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { recursive: true });
    log(`saving a warm state of ${image.name} (one cold boot, reused by later runs)`);
    const t = Date.now();
    const disks = await machineDisks(work, image, profile);
    const m = new Machine({ name: "warm", runDir: work, disks, accel, sshKey, memoryMiB: profile.memoryMiB, smp: profile.smp, ...firmwareOf(image) });
    try {
      const boot = await m.boot();
      await expectBoot(m, boot, "ssh");
      // Settle: let boot-time jobs finish, flush the disk, and drop caches so the state is small.
      await m.succeed("systemctl is-system-running --wait >/dev/null 2>&1; sync; echo 3 > /proc/sys/vm/drop_caches");
      await m.saveState(join(work, "state.bin"));
    } finally {
      await m.kill();
    }
    await rm(join(work, "warm.qmp.sock"), { force: true });
    await rm(join(work, "warm.serial.sock"), { force: true });
    if (m.efiVars) await rename(m.efiVars, join(work, "efivars.fd"));
    for (const d of disks) await chmod(d.path, 0o444);
    for (const f of ["state.bin", ...(m.efiVars ? ["efivars.fd"] : [])]) await chmod(join(work, f), 0o444);
    const meta: WarmState["meta"] = {
      image: image.name,
      imageHash: image.hash,
      profile,
      qemu: await qemuVersion(),
      accel: accel.accel,
      savedAt: new Date().toISOString(),
      saveMs: Date.now() - t,
    };
    await writeFile(join(work, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
    // Written last, so a save cut short never looks finished; checked at every use.
    await writeManifest(work);
    await rm(dir, { recursive: true, force: true });
    await rename(work, dir);
    log(`warm state saved in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    return stateAt(dir, key, meta);
  } catch (err) {
    await rm(work, { recursive: true, force: true });
    throw err instanceof VmlabError ? err : new VmlabError(`could not save a warm state of ${image.name}`, { cause: err, output: String(err) });
  } finally {
    await lock.release();
  }
}
