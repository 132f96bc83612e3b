/**
 * The hands-on primitives on real guests, as a person at a terminal uses
 * them: `vmlab up` a machine with a blank extra disk (8G: the warm state of
 * the RAID1 scenarios, so it is made once for both), `check` it, `rescue` it
 * (the rescue system gets its disks, the machine is parked), and `stop
 * --all` ends everything. Rebooting into a failure, repairing it from the
 * rescue system and `rescue --done` run on every training proof
 * (test/vm/training.test.ts).
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
  it("a person starts a machine, checks it, and boots the rescue system with its disks; stop ends both", async () => {
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

      // The rescue system gets the machine's disks; the machine is parked, powered off, until --done.
      // (Breaking a boot, rebooting into the failure, repairing it from the rescue system and `rescue --done`
      // are what the training exercises do on every proof: test/vm/training.test.ts, initrd-deleted.)
      const rescue = await vmlab(["rescue", id!]);
      expect(rescue.exitCode, `${rescue.stdout}\n${rescue.stderr}`).toBe(0);
      const rescueId = `${id}-rescue`;
      expect(rescue.stdout).toContain(`the rescue system ${rescueId} has its disks`);
      expect(rescue.stdout).toMatch(/boot via direct-kernel \(rescue\): ssh/);
      const during = await ps();
      expect(during.find((e) => e.id === id)).toMatchObject({ alive: false, cleaned: false, parked: { rescue: rescueId } });
      expect(during.find((e) => e.id === rescueId)).toMatchObject({ alive: true, rescueOf: id });
      // While parked, the machine is not reachable, and says where its disks are.
      const parkedSsh = await vmlab(["ssh", id!, "true"]);
      expect(parkedSsh.exitCode).toBe(2);
      expect(parkedSsh.stderr).toMatch(/powered off: the rescue system .* has its disks/);
      // The rescue system sees the machine's disks by their serials, with the machine's labels.
      const disks = await vmlab(["ssh", rescueId, "lsblk", "-dno", "SERIAL"]);
      expect(disks.exitCode, disks.stderr).toBe(0);
      expect(disks.stdout.trim().split("\n").sort()).toEqual(["rescue", "sda", "sdb"]);
      const root = await vmlab(["ssh", rescueId, "sh", "-c", "'lsblk -no SERIAL,LABEL $(blkid -L root | sed s/[0-9]*$//)'"]);
      expect(root.stdout.trim().split("\n")[0], root.stderr).toMatch(/^sda\s*$/);
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
