import { scenario } from "../src/scenario/types.ts";
import { expectBoot } from "../src/vm/machine.ts";
import { UsageError, VmlabError } from "../src/errors.ts";
import {
  backupBootDisk,
  bootDiskDevice,
  mounts,
  plugBlankDisk,
  pullBootDisk,
  readGuestDisk,
  repairSwap,
  restoreBootDisk,
  verifyRestored,
} from "../src/procedures/boot-backup.ts";

/**
 * The MBR + /boot backup runbook: the boot disk holds /boot and swap, `/`
 * lives on another disk. dd everything before the swap partition (MBR, GRUB's
 * core image in the post-MBR gap, /boot) to a file on `/`; the boot disk
 * dies and is replaced by a blank one of the same size; dd the backup back
 * from the running system; reboot through the firmware; remake the swap
 * area the backup left out, with the label fstab names.
 */
export default scenario({
  name: "mbr-boot-restore",
  description: "dd the MBR, GRUB's gap and /boot to a file, replace the boot disk with a blank one, dd it back, boot, remake swap",
  image: "debian12-bootdisk",
  // The root disk's kernel name depends on the probe order; the scenario checks it is the image's second disk.
  expect: { final: { boot: "ssh", fstype: "ext3", data: "intact" } },
  tags: ["dr", "boot", "mbr"],
  runbook: "mbr-boot-dd-backup.ja.txt",
  async run(ctx) {
    const { vm, step, record, log, data } = ctx;
    const before = await step("read the boot disk's partition table", async () => {
      const disk = await readGuestDisk(vm, await bootDiskDevice(vm));
      record("bootDisk", { device: disk.device, bytes: disk.bytes, partitions: disk.table.partitions.map((p) => [p.number, p.startSector, p.sizeSectors, p.type]) });
      record("mountsBefore", await mounts(vm));
      return disk;
    });
    const meta = await step("dd the MBR, GRUB's gap and /boot to a backup on /", async () => {
      const m = await backupBootDisk(ctx, before);
      record("backup", { sectors: m.sectors, bytes: m.sectors * m.sectorSize, reason: m.reason, sha256: m.sha256 });
      return m;
    });
    await step("the boot disk fails: take it out of use and pull it", () => pullBootDisk(ctx, before));
    await step("a smaller replacement disk is refused before writing", async () => {
      const small = await plugBlankDisk(ctx, "small", before.bytes / 2);
      try {
        await restoreBootDisk(ctx, meta, small.device);
        throw new VmlabError("the restore onto a disk half the size was not refused");
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        const untouched = Number((await vm.succeed(`head -c ${meta.sectors * meta.sectorSize} ${small.device} | tr -d '\\000' | wc -c`)).trim()) === 0;
        if (!untouched) throw new VmlabError("the refused restore wrote to the disk");
        record("refusedSmaller", { device: small.device, bytes: before.bytes / 2, message: err.message, untouched });
        log(`refused: ${err.message}`);
      }
      await vm.pullDisk("small");
    });
    const target = await step("plug in a blank disk of the same size", () => plugBlankDisk(ctx, "newboot", before.bytes));
    await step("dd the backup onto the new disk", async () => {
      record("restoreCommand", await restoreBootDisk(ctx, meta, target.device));
      record("restored", await verifyRestored(vm, meta, target.device));
    });
    await step("reboot through firmware", async () => expectBoot(vm, await vm.reboot(), "ssh"));
    await step("booted from the new disk, / from the other", async () => {
      const m = await mounts(vm);
      record("mountsAfter", m);
      if (m.bootDisk !== "newboot") throw new VmlabError(`/boot is mounted from ${m.boot} on disk ${m.bootDisk}, not from the restored disk`);
      if (m.rootDisk !== "sdb") throw new VmlabError(`/ is mounted from ${m.root} on disk ${m.rootDisk}, not from the image's second disk`);
    });
    record("swap", await step("swap has no signature: remake it with the label from fstab", () => repairSwap(ctx)));
    record("data", await step("data set intact", () => data.expectIntact(vm)));
  },
});
