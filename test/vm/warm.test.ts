/**
 * Warm starts on real guests: two machines resumed side by side from one
 * saved state share nothing they could collide on, each has its own clock
 * and randomness, and the saved state and its disk are never written.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { createOverlay } from "../../src/disk/qemu-img.ts";
import { chooseAccel, type AccelChoice } from "../../src/host/kvm.ts";
import { ensureImage, type BuiltImage } from "../../src/image/build.ts";
import { labKey } from "../../src/image/keys.ts";
import { loadRecipe } from "../../src/scenario/registry.ts";
import { Machine } from "../../src/vm/machine.ts";
import { DEFAULT_PROFILE, ensureWarmState, warmKey, type WarmState } from "../../src/vm/warm.ts";
import { qemuPids, sha256File } from "./helpers.ts";

let tmp: DirectoryResult;
let image: BuiltImage;
let accel: AccelChoice;
let key = "";
let warm: WarmState;

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  image = await ensureImage(await loadRecipe("debian12-bios"));
  accel = await chooseAccel();
  key = (await labKey()).privateKey;
  warm = await ensureWarmState(image, DEFAULT_PROFILE, accel, key);
});
afterAll(async () => {
  await tmp.cleanup();
});

async function resumed(name: string): Promise<Machine> {
  const runDir = join(tmp.path, name);
  await mkdir(runDir);
  const disk = join(runDir, "sda.qcow2");
  await createOverlay(disk, warm.disk, { backingFormat: "qcow2" });
  return new Machine({ name: "vm", runDir, disks: [{ path: disk, format: "qcow2", id: "sda" }], accel, sshKey: key, incomingState: warm.state });
}

describe("warm starts", () => {
  it("a second request for the same image and profile reuses the saved state", async () => {
    const again = await ensureWarmState(image, DEFAULT_PROFILE, accel, key);
    expect(again.dir).toBe(warm.dir);
    expect(again.meta.savedAt).toBe(warm.meta.savedAt);
    // Another profile, or another image build, is another state: never reused across them.
    expect(await warmKey(image, { ...DEFAULT_PROFILE, extraDisks: ["8G"] }, accel)).not.toBe(warm.key);
    expect(await warmKey({ ...image, hash: "0000000000000000" }, DEFAULT_PROFILE, accel)).not.toBe(warm.key);
    expect(await warmKey(image, DEFAULT_PROFILE, accel)).toBe(warm.key);
  });

  it("two machines resumed at once: separate ports, sockets and disks; own clock and randomness; base untouched", async () => {
    const stateSum = await sha256File(warm.state);
    const diskSum = await sha256File(warm.disk);
    const a = await resumed("a");
    const b = await resumed("b");
    try {
      const [ba, bb] = await Promise.all([a.resume(), b.resume()]);
      expect([ba.via, ba.outcome, bb.via, bb.outcome]).toEqual(["saved-state", "ssh", "saved-state", "ssh"]);
      expect(a.sshPort).not.toBe(b.sshPort);
      expect(a.qmpSocket).not.toBe(b.qmpSocket);
      expect(a.serialSocket).not.toBe(b.serialSocket);
      expect(a.opts.disks[0]!.path).not.toBe(b.opts.disks[0]!.path);

      // The clock was set from the host's, not left at the moment the state was saved.
      for (const m of [a, b]) {
        const guest = Number((await m.succeed("date +%s")).trim());
        expect(Math.abs(guest - Date.now() / 1000)).toBeLessThan(30);
      }
      // vmgenid makes each resumed guest reseed: no two runs share random numbers.
      const [ra, rb] = await Promise.all([a.succeed("head -c 32 /dev/urandom | od -An -tx1"), b.succeed("head -c 32 /dev/urandom | od -An -tx1")]);
      expect(ra).not.toBe(rb);
      // A write in one machine is invisible in the other.
      await a.succeed("echo only-in-a > /root/mark && sync");
      expect((await b.run("cat /root/mark")).exitCode).not.toBe(0);
      expect((await a.succeed("findmnt -no SOURCE /")).trim()).toBe("/dev/sda2");
    } finally {
      await a.kill();
      await b.kill();
    }
    expect(await sha256File(warm.state)).toBe(stateSum);
    expect(await sha256File(warm.disk)).toBe(diskSum);
    expect(await qemuPids()).toEqual([]);
  });
});
