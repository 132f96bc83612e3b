/**
 * The MBR + /boot backup runbook and its 446-byte pitfall, run through the
 * real `vmlab` command line on real guests, judged from report.json; and
 * `vmlab inspect` on the cached base image.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { dir } from "tmp-promise";
import { ensureImage } from "../../src/image/build.ts";
import { loadRecipe } from "../../src/scenario/registry.ts";
import { onlyReport, qemuPids, sha256File, vmlab } from "./helpers.ts";
import { chooseAccel } from "../../src/host/kvm.ts";
import { labKey } from "../../src/image/keys.ts";
import { Machine } from "../../src/vm/machine.ts";
import { DEFAULT_PROFILE, ensureWarmState, machineDisks } from "../../src/vm/warm.ts";

/** `sfdisk --json /dev/sda` in a guest of the image, started from its saved state. */
async function sfdiskInGuest(image: Awaited<ReturnType<typeof ensureImage>>): Promise<{ node: string; start: number; size: number; type: string }[]> {
  const accel = await chooseAccel();
  const { privateKey } = await labKey();
  const warm = await ensureWarmState(image, DEFAULT_PROFILE, accel, privateKey);
  const runDir = (await dir({ unsafeCleanup: true })).path;
  const vm = new Machine({ name: "sfdisk", runDir, disks: await machineDisks(runDir, image, DEFAULT_PROFILE, warm), accel, sshKey: privateKey, incomingState: warm.state });
  try {
    expect((await vm.resume()).outcome).toBe("ssh");
    return JSON.parse(await vm.succeed("sfdisk --json /dev/sda")).partitiontable.partitions;
  } finally {
    await vm.kill();
  }
}

let reports = "";
let bootdiskSums: string[] = [];
let bootdiskDisks: string[] = [];


beforeAll(async () => {
  const img = await ensureImage(await loadRecipe("debian12-bootdisk"));
  bootdiskDisks = img.disks;
  bootdiskSums = await Promise.all(img.disks.map(sha256File));
  reports = (await dir({ unsafeCleanup: true })).path;
});

/**
 * The good path on a guest. Its twin, mbr-446-pitfall, is judged on its
 * recorded real run (test/unit/verdict.test.ts): its broken boot is the one
 * the mbr-446-restore exercise makes and proves on a guest in
 * test/vm/training.test.ts.
 */
let goodRun: ReturnType<typeof vmlab> | undefined;
const good = () => (goodRun ??= vmlab(["run", "mbr-boot-restore", "--report-dir", reports]));

interface SwapFact {
  label: string;
  device: string;
  swaponError: string;
  active: string;
}

describe("MBR + /boot dd backup and restore on a real guest", () => {
  it("vmlab inspect on the debian12-bios base image: three partitions at the offsets the image was built with and sfdisk shows in the guest", async () => {
    const img = await ensureImage(await loadRecipe("debian12-bios"));
    const r = await vmlab(["inspect", "--json", "debian12-bios"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as { disks: { path: string; label: string; partitions: { number: number; startSector: number; sizeSectors: number; type: string; offsetBytes: number }[] }[] };
    expect(json.disks).toHaveLength(1);
    expect(json.disks[0]!.path).toBe(img.disk);
    expect(json.disks[0]!.label).toBe("dos");
    // meta.json records the layout sfdisk wrote, which is what sfdisk --json shows in the guest.
    expect(json.disks[0]!.partitions.map((p) => [p.number, p.startSector, p.sizeSectors, p.type, p.offsetBytes])).toEqual(
      img.meta.partitions.map((p) => [p.index, p.startSector, p.sizeSectors, p.type, p.startSector * 512]),
    );
    expect(json.disks[0]!.partitions.map((p) => p.type)).toEqual(["83", "83", "8e"]);
    // And what sfdisk reads in a running guest of that image.
    const guest = await sfdiskInGuest(img);
    expect(json.disks[0]!.partitions.map((p) => [`/dev/sda${p.number}`, p.startSector, p.sizeSectors, p.type])).toEqual(guest.map((p) => [p.node, p.start, p.size, p.type]));
    const text = await vmlab(["inspect", img.disk]);
    expect(text.stdout).toContain(`offset=${img.meta.partitions[1]!.startSector * 512},sizelimit=${img.meta.partitions[1]!.sizeSectors * 512}`);
  });

  it("mbr-boot-restore: backup, blank disk, dd back, firmware boot from the new disk, swap remade, data intact", async () => {
    const r = await good();
    const report = await onlyReport(reports, "mbr-boot-restore");
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(report.verdict).toBe("pass");
    expect(report.boots.map((b) => [b.reason, b.via, b.outcome])).toEqual([
      ["resume", "saved-state", "ssh"],
      ["reboot", "firmware", "ssh"],
    ]);
    expect(report.boots[1]!.reached).toMatchObject({ firmware: true, grub: true, kernel: true, initramfs: true });
    const f = report.facts as Record<string, any>;
    // Up to the swap partition of the 1 GiB boot disk: sda2 starts right after the 256 MiB /boot.
    expect(f.backup).toMatchObject({ sectors: 2048 + 524288, reason: "start of swap partition 2" });
    // vmlab inspect on the cached image shows the table sfdisk --json showed in the guest.
    const inspected = JSON.parse((await vmlab(["inspect", "--json", "debian12-bootdisk"])).stdout) as { disks: { label: string; partitions: { number: number; startSector: number; sizeSectors: number; type: string }[] }[] };
    expect(inspected.disks[0]!.partitions.map((p) => [p.number, p.startSector, p.sizeSectors, p.type])).toEqual(f.bootDisk.partitions);
    expect(inspected.disks[1]!.label).toBe("none");
    // By serial (the lab's disk ids): the guest kernel may name the two disks either way round.
    expect(f.mountsBefore).toMatchObject({ rootDisk: "sdb", bootDisk: "sda" });
    expect(f.mountsBefore.root).toMatch(/^\/dev\/sd[ab]$/);
    expect(f.mountsBefore.boot).toMatch(/^\/dev\/sd[ab]1$/);
    expect(f.refusedSmaller.message).toMatch(/too small/);
    expect(f.refusedSmaller.untouched).toBe(true);
    expect(f.restored).toEqual({ tableMatches: true, sha256Matches: true });
    // /boot from the replacement disk (its serial is the lab's disk id), / still from the second disk.
    expect(f.mountsAfter).toMatchObject({ bootDisk: "newboot", rootDisk: "sdb" });
    expect(f.mountsAfter.boot).toMatch(/^\/dev\/sd[a-z]1$/);
    const swap = f.swap as SwapFact;
    expect(swap.label).toBe("SWAP-sda2");
    expect(swap.swaponError).toMatch(/cannot find.*LABEL=SWAP-sda2/);
    expect(swap.active).toContain(swap.device);
    expect(f.data).toMatchObject({ intact: true, missing: [], changed: [] });
    expect(f.data.files).toBeGreaterThan(200);
  });

  it("left the cached images unchanged and no QEMU running", async () => {
    expect(await Promise.all(bootdiskDisks.map(sha256File))).toEqual(bootdiskSums);
    // None of this file's machines is left (others' guests on a shared host are not ours to count).
    const ours = [];
    for (const pid of await qemuPids()) {
      const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
      if (cmd.includes(reports)) ours.push(pid);
    }
    expect(ours).toEqual([]);
  });
});
