/**
 * Warm starts on real guests: two machines resumed side by side from one
 * saved state share nothing they could collide on, each has its own clock
 * and randomness, its DHCP lease and SSH host key are sound, and the saved
 * state and its disk are never written.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { createOverlay } from "../../src/disk/qemu-img.ts";
import { chooseAccel, type AccelChoice } from "../../src/host/kvm.ts";
import { ensureImage, type BuiltImage } from "../../src/image/build.ts";
import { labKey } from "../../src/image/keys.ts";
import { loadRecipe } from "../../src/scenario/registry.ts";
import { Machine } from "../../src/vm/machine.ts";
import { SshCommandError } from "../../src/vm/ssh.ts";
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

/** eth0's IPv4 address and the seconds its DHCP lease has left (networkd sets the address lifetime from the lease). */
async function lease(m: Machine): Promise<{ address: string; validS: number }> {
  const line = await m.succeed("ip -4 -o addr show dev eth0");
  const hit = /inet (\S+) .*valid_lft (\d+)sec/.exec(line);
  if (!hit) throw new Error(`no DHCP address with a lifetime on eth0: ${line}`);
  return { address: hit[1]!, validS: Number(hit[2]) };
}

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

  it("two machines resumed at once: separate ports, sockets and disks; own clock and randomness; DHCP lease and host key sound; base untouched", async () => {
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
      expect(a.disks[0]!.path).not.toBe(b.disks[0]!.path);

      // The clock was set from the host's, not left at the moment the state was saved.
      for (const m of [a, b]) {
        const guest = Number((await m.succeed("date +%s")).trim());
        expect(Math.abs(guest - Date.now() / 1000)).toBeLessThan(30);
      }
      // vmgenid makes each resumed guest reseed: no two runs share random numbers.
      const [ra, rb] = await Promise.all([a.succeed("head -c 32 /dev/urandom | od -An -tx1"), b.succeed("head -c 32 /dev/urandom | od -An -tx1")]);
      expect(ra).not.toBe(rb);
      // The DHCP lease from the saving boot is still good for the rest of any run:
      // networkd times it on the guest's boot clock, which stood still while the
      // state sat on disk, so the date jump after a resume does not expire it.
      for (const m of [a, b]) {
        const l = await lease(m);
        expect(l.address).toBe("10.0.2.15/24");
        expect(l.validS).toBeGreaterThan(23 * 3600);
        const link = await m.succeed("cat /run/systemd/netif/links/$(cat /sys/class/net/eth0/ifindex)");
        expect(link).toMatch(/^ADMIN_STATE=configured$/m);
        expect(link).toMatch(/^OPER_STATE=routable$/m);
      }
      // SSH host keys: the key a new connection is shown is the guest's own, and sshd accepts its configuration.
      for (const m of [a, b]) {
        const scanned = (await execa("ssh-keyscan", ["-T", "60", "-p", String(m.sshPort), "-t", "ed25519", "127.0.0.1"])).stdout.trim().split(/\s+/).slice(1, 3).join(" ");
        expect(scanned).toMatch(/^ssh-ed25519 AAAA/);
        expect(scanned).toBe((await m.succeed("cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub")).trim());
        await m.succeed("sshd -t");
      }
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

  it("the machine's verbs on a resumed guest: copyTo/copyFrom keep bytes, waitUntilSucceeds waits and times out with the last result, block cuts SSH and unblock brings it back", async () => {
    const m = await resumed("verbs");
    try {
      expect((await m.resume()).outcome).toBe("ssh");
      // A binary file, every byte value, through SSH and back.
      const sent = join(tmp.path, "sent.bin");
      const back = join(tmp.path, "back.bin");
      await writeFile(sent, Buffer.concat([randomBytes(200_000), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]));
      await m.copyTo(sent, "/root/copied file.bin");
      expect((await m.succeed("sha256sum '/root/copied file.bin' | cut -d' ' -f1")).trim()).toBe(await sha256File(sent));
      await m.copyFrom("/root/copied file.bin", back);
      expect(await readFile(back)).toEqual(await readFile(sent));
      await expect(m.copyFrom("/root/no-such-file", back)).rejects.toThrow(/could not copy \/root\/no-such-file/);

      // waitUntilSucceeds: a file that appears a few seconds later, then one that never does.
      await m.succeed("(sleep 3; touch /run/ready) >/dev/null 2>&1 &");
      expect(await m.fail("test -e /run/ready")).toMatchObject({ exitCode: 1 });
      await m.waitUntilSucceeds("test -e /run/ready && echo ready", { timeoutMs: 60_000 });
      const never = await m.waitUntilSucceeds("echo still-missing >&2; test -e /run/never", { timeoutMs: 3_000 }).catch((e: unknown) => e);
      expect(never).toBeInstanceOf(SshCommandError);
      expect(String((never as SshCommandError).message)).toMatch(/did not succeed within 3 s/);
      expect((never as SshCommandError).result.stderr).toContain("still-missing");

      // block: the link goes down, no SSH session opens; unblock: it comes back.
      await m.block();
      const cut = await m.run("true", { timeoutMs: 8_000 });
      expect(cut.exitCode).not.toBe(0);
      await m.unblock();
      await m.waitUntilSucceeds("true", { timeoutMs: 60_000 });
    } finally {
      await m.kill();
    }
  });
});
