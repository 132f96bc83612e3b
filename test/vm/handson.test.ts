/**
 * The hands-on primitives on real guests, as a person at a terminal uses
 * them: `vmlab up` a machine with a blank extra disk (8G: the warm state of
 * the RAID1 scenarios, so it is made once for both), `check` it, break its
 * boot (the initrd moved away), `reboot` it and read the classified
 * failure, `rescue` it (the rescue system gets its disks), repair /boot by
 * hand over `vmlab ssh`, `rescue --done` to boot it from its own disk, check
 * it again, and `stop --all` ends everything.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { dir } from "tmp-promise";
import type { KeptStatus } from "../../src/vm/kept.ts";
import { vmlab } from "./helpers.ts";
import { qemuProcessesOf } from "../../src/vm/orphans.ts";

let reports = "";
beforeAll(async () => {
  reports = (await dir({ unsafeCleanup: true })).path;
});

async function ps(): Promise<KeptStatus[]> {
  const r = await vmlab(["ps", "--json"]);
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as KeptStatus[];
}

describe("up, reboot, check, rescue and rescue --done on real guests", () => {
  it("a person breaks a machine's boot, sees why, repairs it from the rescue system and boots it again", async () => {
    const up = await vmlab(["up", "--disks", "8G", "--report-dir", reports]);
    expect(up.exitCode, `${up.stdout}\n${up.stderr}`).toBe(0);
    const id = /^(up-debian12-bios-[0-9a-f]+): up /m.exec(up.stdout)?.[1];
    expect(id, up.stdout).toBeDefined();
    let runDir = "";
    try {
      const entry = (await ps()).find((e) => e.id === id)!;
      runDir = entry.reportDir;
      expect(entry.alive).toBe(true);
      // The blank disk is there, as sdb.
      const lsblk = await vmlab(["ssh", id!, "lsblk", "-dno", "NAME,SIZE", "/dev/sdb"]);
      expect(lsblk.stdout.trim()).toMatch(/^sdb\s+8G$/);

      const check = await vmlab(["check", id!, "--root", "/dev/sda2"]);
      expect(check.exitCode, check.stdout).toBe(0);
      expect(check.stdout).toMatch(/\/ is \/dev\/sda2 \(ext3\), as expected/);
      expect(check.stdout).toMatch(/data set: intact: \d+ files match/);
      // --root is a promise checked, not a label printed.
      const wrong = await vmlab(["check", id!, "--root", "/dev/mapper/sys-root"]);
      expect(wrong.exitCode).toBe(1);
      expect(wrong.stdout).toMatch(/not yet: \/ is on \/dev\/sda2, not \/dev\/mapper\/sys-root/);

      // Break it: the initrd goes where GRUB does not look.
      const brk = await vmlab(["ssh", id!, "sh", "-c", "'for f in /boot/initrd.img-*; do mv $f /boot/moved-${f#/boot/}; done; sync'"]);
      expect(brk.exitCode, brk.stderr).toBe(0);
      const reboot = await vmlab(["reboot", id!]);
      expect(reboot.exitCode, reboot.stdout).toBe(1);
      expect(reboot.stdout).toMatch(/boot via firmware \(reboot\): kernel-panic/);
      expect(reboot.stdout).toMatch(/evidence: .*(Unable to mount root fs|not found)/);

      const rescue = await vmlab(["rescue", id!]);
      expect(rescue.exitCode, `${rescue.stdout}\n${rescue.stderr}`).toBe(0);
      const rescueId = `${id}-rescue`;
      expect(rescue.stdout).toContain(`the rescue system ${rescueId} has its disks`);
      const during = await ps();
      expect(during.find((e) => e.id === id)).toMatchObject({ alive: false, cleaned: false, parked: { rescue: rescueId } });
      expect(during.find((e) => e.id === rescueId)).toMatchObject({ alive: true, rescueOf: id });
      // While parked, the machine is not reachable, and says where its disks are.
      const parkedSsh = await vmlab(["ssh", id!, "true"]);
      expect(parkedSsh.exitCode).toBe(2);
      expect(parkedSsh.stderr).toMatch(/powered off: the rescue system .* has its disks/);

      // The repair, by hand in the rescue system: mount the machine's /boot (its disk by serial) and move the initrd back.
      const disk = entry.disks![0]!.id;
      const fix = await vmlab([
        "ssh", rescueId, "sh", "-c",
        `'set -e; mkdir -p /mnt/b; mount /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_${disk}-part1 /mnt/b; for f in /mnt/b/moved-initrd.img-*; do mv $f /mnt/b/\${f#/mnt/b/moved-}; done; ls /mnt/b; umount /mnt/b'`,
      ]);
      expect(fix.exitCode, `${fix.stdout}\n${fix.stderr}`).toBe(0);
      expect(fix.stdout).toMatch(/^initrd\.img-/m);

      const done = await vmlab(["rescue", id!, "--done"]);
      expect(done.exitCode, `${done.stdout}\n${done.stderr}`).toBe(0);
      expect(done.stdout).toMatch(/boot via firmware \(boot after rescue\): ssh .*a proven new boot/);
      const after = await ps();
      expect(after.map((e) => [e.id, e.alive])).toEqual([[id, true]]);
      // A cold boot names the two disks in the order the kernel's asynchronous scan finds them: / is the
      // system disk's second partition, sda2 or sdb2 (fstab names it by LABEL, as it should).
      const again = await vmlab(["check", id!]);
      expect(again.exitCode, again.stdout).toBe(0);
      expect(again.stdout).toMatch(/\/ is \/dev\/sd[ab]2 \(ext3\)/);
      expect(again.stdout).toMatch(/data set: intact/);
    } finally {
      const stop = await vmlab(["stop", "--all"]);
      expect(stop.exitCode, stop.stderr).toBe(0);
    }
    expect(await ps()).toEqual([]);
    // No QEMU of this machine or its rescue system runs on (other runs may share the host).
    expect(runDir).not.toBe("");
    expect(qemuProcessesOf(runDir)).toEqual([]);
  });

  it("bad input changes nothing: an unknown image, a bad size, an unknown machine", async () => {
    const img = await vmlab(["up", "debian99"]);
    expect([img.exitCode, img.stderr]).toEqual([2, expect.stringMatching(/unknown image "debian99"/)]);
    const size = await vmlab(["up", "--disks", "8G,lots"]);
    expect([size.exitCode, size.stderr]).toEqual([2, expect.stringMatching(/bad disk size in --disks "lots"/)]);
    for (const cmd of ["reboot", "check", "rescue"]) {
      const r = await vmlab([cmd, "no-such-machine"]);
      expect([r.exitCode, r.stderr]).toEqual([2, expect.stringMatching(/no kept machine "no-such-machine"/)]);
    }
    expect(await ps()).toEqual([]);
  });
});
