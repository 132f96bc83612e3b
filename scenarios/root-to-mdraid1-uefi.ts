import { VmlabError } from "../src/errors.ts";
import { expectRoot, expectUniqueRoot } from "../src/procedures/pivot.ts";
import { expectArrays, MD_MARKER, rootToMdraid, UEFI_MIRRORS } from "../src/procedures/root-to-mdraid.ts";
import { bootEntries, diskEntries, startedOption } from "../src/procedures/uefi.ts";
import { scenario } from "../src/scenario/types.ts";
import { expectBoot, type BootRecord } from "../src/vm/machine.ts";

const MDS = UEFI_MIRRORS.map((m) => m.md);

/**
 * The RAID1 migration on a UEFI server (debian12-uefi: ESP, /boot, /, LVM
 * PV). As root-to-mdraid1, plus what only UEFI has: the ESP cannot be an
 * ordinary mirror, so the second disk gets an ESP of its own with GRUB on
 * it, at \EFI\debian with a boot entry of its own and at the removable-media
 * path; /boot/efi is mounted nofail. Proven by a firmware reboot, by booting
 * from each disk alone through its own boot entry, and by booting again
 * with the NVRAM lost.
 */
export default scenario({
  name: "root-to-mdraid1-uefi",
  description: "UEFI: move / and /boot onto RAID1 with sdb, an ESP and a boot entry on each disk; boot from each disk alone, then with the NVRAM lost",
  image: "debian12-uefi",
  expect: { final: { boot: "ssh", root: "/dev/md1", fstype: "ext3", data: "intact" } },
  tags: ["uefi", "raid", "pivot", "slow"],
  runbook: "raid1-migration-howto.txt",
  hardware: { extraDisks: ["8G"] },
  async run(ctx) {
    const { vm, step, data, record, log } = ctx;
    const [source, target] = [await vm.guestDisk("sda"), await vm.guestDisk("sdb")];
    log(`lab disk sda is ${source} in the guest, sdb is ${target}`);
    await rootToMdraid(ctx, { source, target, mirrors: UEFI_MIRRORS, esp: { part: 1 } });

    await step("reboot through firmware", async () => expectBoot(vm, await vm.reboot(), "ssh"));
    await step("verify / is md1 (ext3), /boot is md0, both arrays clean, an entry for each disk's ESP", async () => {
      record("root", await expectRoot(vm, "/dev/md1", "ext3"));
      const boot = (await vm.succeed("findmnt -no SOURCE /boot")).trim();
      if (boot !== "/dev/md0") throw new VmlabError(`/boot is ${boot}, expected /dev/md0`, { hint: "fstab still names the old /boot" });
      record("arrays", await expectArrays(vm, MDS, 2));
      await vm.succeed(`test -s ${MD_MARKER}`, { hint: "the file written after the pivot is missing: the old root booted" });
      const entries = diskEntries(await bootEntries(vm));
      record("bootEntries", entries.map((e) => `Boot${e.num} ${e.label}: ${e.path}`));
      if (entries.length < 2) throw new VmlabError("fewer than two disk boot entries after the migration", { output: JSON.stringify(entries, null, 2) });
    });
    await step("verify no other filesystem answers to the root's UUID or LABEL", async () => record("rootIdentity", await expectUniqueRoot(vm)));
    await step("verify the data set", async () => record("data", await data.expectIntact(vm)));

    const single: Record<string, unknown>[] = [];
    /** After a boot with one disk missing: degraded arrays (1 of 2), / still on md1, data intact; which boot option the firmware started. */
    const verifyDegraded = async (without: string, boot: BootRecord) => {
      await expectBoot(vm, boot, "ssh");
      const started = await startedOption(vm, boot);
      const root = await expectRoot(vm, "/dev/md1", "ext3");
      const state = (await expectArrays(vm, MDS, 1)).map((a) => `${a.md} [${a.map}]`);
      const check = await data.expectIntact(vm);
      const option = started ? `Boot${started.num} "${started.label}"` : "unknown";
      single.push({ without, via: boot.via, outcome: boot.outcome, option, root: root.device, arrays: state, data: check.intact ? `intact, ${check.files} files` : "damaged" });
      log(`booted without ${without} through ${option}: ${state.join(", ")}`);
      return started;
    };
    await step("pull sda through QMP, reboot from sdb alone", async () => {
      await vm.pullDisk("sda");
      const started = await verifyDegraded("sda", await vm.reboot());
      if (!started?.label.includes(target.replace("/dev/", ""))) throw new VmlabError(`sdb alone booted through ${started?.label ?? "no option the console names"}, not its own entry`);
    });
    await step("power off, start with sda only (sdb left out), boot through firmware", async () => {
      await vm.shutdown();
      await vm.plugDisk("sda");
      vm.leaveOut("sdb");
      await verifyDegraded("sdb", await vm.boot());
    });
    await step("power off, lose the NVRAM, boot sda alone through its removable-media path", async () => {
      await vm.shutdown();
      await vm.clearNvram();
      const started = await verifyDegraded("sdb, with an empty NVRAM", await vm.boot({ reason: "power-on with an empty NVRAM" }));
      if (!started || /debian/.test(started.label)) throw new VmlabError(`with an empty NVRAM the console shows ${started?.label ?? "no boot option"} starting, not the disk's own option`);
    });
    record("singleDiskBoots", single);
  },
});
