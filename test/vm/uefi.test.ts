/**
 * UEFI machines on real guests: a cold boot of debian12-uefi through OVMF,
 * GRUB on the ESP and the initramfs to SSH; NVRAM that belongs to each
 * machine. The UEFI scenarios (uefi-nvram-lost, the RAID1 migration, the
 * GPT restore, each with its twin) are judged on their recorded real runs
 * (test/unit/verdict.test.ts): this file's cold boot is what none of them
 * shows, since they start from a warm state.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { chooseAccel } from "../../src/host/kvm.ts";
import { ensureImage, firmwareOf, type BuiltImage } from "../../src/image/build.ts";
import { labKey } from "../../src/image/keys.ts";
import { rootInfo } from "../../src/procedures/pivot.ts";
import { bootEntries, diskEntries, optionsTried } from "../../src/procedures/uefi.ts";
import { loadRecipe } from "../../src/scenario/registry.ts";
import { Machine } from "../../src/vm/machine.ts";
import { DEFAULT_PROFILE, ensureWarmState, machineDisks, stateFirmware } from "../../src/vm/warm.ts";
import { qemuPids, sha256File } from "./helpers.ts";

let tmp: DirectoryResult;
let image: BuiltImage;
let imageVars = "";
const machines: Machine[] = [];

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  image = await ensureImage(await loadRecipe("debian12-uefi"));
  imageVars = await sha256File(image.efiVars!);
}, 30 * 60_000);
afterAll(async () => {
  for (const m of machines) await m.kill();
  await tmp.cleanup();
});

describe("debian12-uefi", () => {
  it("cold-boots through OVMF, GRUB on the ESP and the initramfs to SSH; each machine's NVRAM is its own", async () => {
    expect(image.meta.firmware).toBe("uefi");
    expect(image.meta.partitions.map((p) => [p.index, p.type, p.fs])).toEqual([
      [1, "ef", "vfat"],
      [2, "83", "ext2"],
      [3, "83", "ext3"],
      [4, "8e", "LVM2_member"],
    ]);
    const accel = await chooseAccel();
    const { privateKey } = await labKey();
    const coldDir = join(tmp.path, "cold");
    await mkdir(coldDir);
    const cold = new Machine({ name: "cold", runDir: coldDir, disks: await machineDisks(coldDir, image, DEFAULT_PROFILE), accel, sshKey: privateKey, ...firmwareOf(image) });
    machines.push(cold);
    // The warm state (a second machine of the image, saved) is made while the cold one boots.
    const [boot, warm] = await Promise.all([cold.boot(), ensureWarmState(image, DEFAULT_PROFILE, accel, privateKey)]);
    expect(cold.firmware).toBe("uefi");
    expect([boot.via, boot.outcome]).toEqual(["firmware", "ssh"]);
    expect(boot.reached).toMatchObject({ firmware: true, grub: true, kernel: true, initramfs: true, userspace: true });
    // OVMF started the image's own boot entry, not a disk's removable-media path.
    const tried = optionsTried(await cold.consoleSince(boot.log.from));
    expect(tried.at(-1)).toMatchObject({ label: "debian", result: "started" });
    expect(await rootInfo(cold)).toMatchObject({ device: "/dev/sda3", fstype: "ext3" });
    expect((await cold.succeed("test -d /sys/firmware/efi && findmnt -no SOURCE,FSTYPE /boot/efi")).trim().split(/\s+/)).toEqual(["/dev/sda1", "vfat"]);
    expect((await cold.succeed("ls /boot/efi/EFI")).trim().split(/\s+/)).toEqual(["debian"]);

    // A second machine of the image, resumed from its warm state, starts with the same entry.
    const warmDir = join(tmp.path, "warm");
    await mkdir(warmDir);
    const other = new Machine({ name: "other", runDir: warmDir, disks: await machineDisks(warmDir, image, DEFAULT_PROFILE, warm), accel, sshKey: privateKey, incomingState: warm.state, ...stateFirmware(warm) });
    machines.push(other);
    expect((await other.resume()).outcome).toBe("ssh");
    const debian = (m: Machine) => bootEntries(m).then((b) => diskEntries(b).filter((e) => e.label === "debian").map((e) => e.path));
    const coldDebian = await debian(cold);
    expect(coldDebian).toHaveLength(1);
    expect(await debian(other)).toEqual(coldDebian);

    // An entry made on one machine is in its NVRAM file only: not in the other's, not in the image's, not in the warm state's.
    const warmVars = await sha256File(warm.efiVars!);
    await cold.succeed("efibootmgr -q -c -d /dev/sda -p 1 -L vmlab-isolation -l '\\EFI\\debian\\grubx64.efi'");
    expect((await bootEntries(cold)).entries.map((e) => e.label)).toContain("vmlab-isolation");
    expect((await bootEntries(other)).entries.map((e) => e.label)).not.toContain("vmlab-isolation");
    expect(cold.efiVars).toBe(join(coldDir, "cold.efivars.fd"));
    expect(await sha256File(cold.efiVars!)).not.toBe(imageVars);
    expect(await sha256File(image.efiVars!)).toBe(imageVars);
    expect(await sha256File(warm.efiVars!)).toBe(warmVars);
    for (const m of machines.splice(0)) await m.kill();
    expect(await qemuPids()).toEqual([]);
  });
});
