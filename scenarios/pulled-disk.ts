import { scenario } from "../src/scenario/types.ts";

/**
 * The only disk of a non-redundant machine is pulled while it runs (QMP
 * device_del) and stays out at the next power-on: the firmware finds nothing
 * to boot, and the lab must say so (no-bootable-device), not wait for SSH
 * until a timeout. Plugged back in, the same disk boots with the data set
 * intact: pulling a disk from an idle machine loses nothing that was synced.
 * A pulled disk under a RAID1 mirror (the machine still boots, degraded) is
 * part of root-to-mdraid1.
 */
export default scenario({
  name: "pulled-disk",
  description: "pull the only disk (QMP device_del): classified no bootable device; plugged back, it boots with data intact",
  image: "debian12-bios",
  expect: {
    failure: [{ says: "with its only disk pulled, the firmware finds nothing to boot", fault: { name: "pulled-disk", stoppedProcedure: true }, boot: { outcome: "no-bootable-device", evidence: "No bootable device" } }],
    final: { boot: "ssh", root: "/dev/sda2", fstype: "ext3", data: "intact" },
  },
  tags: ["fault", "pulled-disk"],
  kind: "twin",
  fault: {
    inject: { fault: "pulled-disk", at: 2, disk: "sda" },
    async observe(p, { vm, step, record }) {
      record("afterPull", p);
      if (p.boot.outcome !== "no-bootable-device") return;
      await step("switch off, plug the disk back in and boot through firmware", async () => {
        // The firmware goes on looking for a boot disk; switching off is the only way out.
        await vm.powerCut();
        await vm.plugDisk("sda");
        await vm.boot({ reason: "power-on with the disk plugged back" });
      });
    },
  },
  async run({ vm, step, record }) {
    await step("note the machine's disk and root", async () => record("before", (await vm.succeed("lsblk -dno NAME,SERIAL; findmnt -no SOURCE /")).trim()));
    // The fault goes in before this step, and a pulled disk stops the procedure: it never runs.
    await step("write on / and sync", () => vm.succeed("date > /root/after-pull && sync", { timeoutMs: 20_000 }));
  },
});
