import { VmlabError } from "../src/errors.ts";
import { expectRoot, expectUniqueRoot } from "../src/procedures/pivot.ts";
import { DEFAULT_MIRRORS, expectArrays, MD_MARKER, rootToMdraid } from "../src/procedures/root-to-mdraid.ts";
import { scenario } from "../src/scenario/types.ts";
import { expectBoot } from "../src/vm/machine.ts";

const MDS = DEFAULT_MIRRORS.map((m) => m.md);

/**
 * The RAID1 migration: the system installed on sda of a two-disk machine is
 * moved onto mirrors over SSH (degraded arrays on sdb, copy, pivot_root,
 * fstab, mdadm.conf, initramfs, GRUB on both disks, sda hot-added and
 * resynced), then proven by a firmware reboot and by booting from each disk
 * alone.
 */
export default scenario({
  name: "root-to-mdraid1",
  description: "move / and /boot from sda onto RAID1 mirrors with sdb over SSH, reboot, then boot from each disk alone",
  image: "debian12-bios",
  expect: { final: { boot: "ssh", root: "/dev/md1", fstype: "ext3", data: "intact" } },
  tags: ["raid", "pivot", "slow"],
  runbook: "raid1-migration-howto.txt",
  hardware: { extraDisks: ["8G"] },
  async run(ctx) {
    const { vm, step, data, record, log } = ctx;
    const [source, target] = [await vm.guestDisk("sda"), await vm.guestDisk("sdb")];
    log(`lab disk sda is ${source} in the guest, sdb is ${target}`);
    await rootToMdraid(ctx, { source, target, mirrors: DEFAULT_MIRRORS });

    await step("reboot through firmware", async () => expectBoot(vm, await vm.reboot(), "ssh"));
    await step("verify / is md1 (ext3), /boot is md0, both arrays clean with 2 of 2", async () => {
      record("root", await expectRoot(vm, "/dev/md1", "ext3"));
      const boot = (await vm.succeed("findmnt -no SOURCE /boot")).trim();
      if (boot !== "/dev/md0") throw new VmlabError(`/boot is ${boot}, expected /dev/md0`, { hint: "fstab still names the old /boot" });
      record("arrays", await expectArrays(vm, MDS, 2));
      await vm.succeed(`test -s ${MD_MARKER}`, { hint: "the file written after the pivot is missing: the old root booted" });
    });
    await step("verify no other filesystem answers to the root's UUID or LABEL", async () => record("rootIdentity", await expectUniqueRoot(vm)));
    await step("verify the data set", async () => record("data", await data.expectIntact(vm)));

    const single: Record<string, unknown>[] = [];
    /** After a boot with one disk missing: degraded arrays (1 of 2), / still on md1, data intact. */
    const verifyDegraded = async (without: string, boot: Awaited<ReturnType<typeof vm.reboot>>) => {
      await expectBoot(vm, boot, "ssh");
      const root = await expectRoot(vm, "/dev/md1", "ext3");
      const state = (await expectArrays(vm, MDS, 1)).map((a) => `${a.md} [${a.map}]`);
      const check = await data.expectIntact(vm);
      single.push({ without, via: boot.via, outcome: boot.outcome, root: root.device, arrays: state, data: check.intact ? `intact, ${check.files} files` : "damaged" });
      log(`booted degraded without ${without}: ${state.join(", ")}`);
    };
    await step("pull sda through QMP, reboot from sdb alone", async () => {
      await vm.pullDisk("sda");
      await verifyDegraded("sda", await vm.reboot());
    });
    await step("power off, start with sda only (sdb left out), boot through firmware", async () => {
      await vm.shutdown();
      await vm.plugDisk("sda");
      vm.leaveOut("sdb");
      await verifyDegraded("sdb", await vm.boot());
    });
    record("singleDiskBoots", single);
  },
});
