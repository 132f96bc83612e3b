import { join } from "node:path";
import { scenario } from "../src/scenario/types.ts";
import { expectBoot } from "../src/vm/machine.ts";
import { UsageError, VmlabError } from "../src/errors.ts";
import { createImage } from "../src/disk/qemu-img.ts";
import { restoreBootImage, sha256File, sidecarPath } from "../src/disk/boot-backup.ts";
import {
  backupBootDisk,
  bootDiskDevice,
  fetchFromGuest,
  GUEST_BACKUP,
  mounts,
  plugBlankDisk,
  pullBootDisk,
  readGuestDisk,
  repairSwap,
  restoreBootDisk,
} from "../src/procedures/boot-backup.ts";

/**
 * Twin of mbr-boot-restore: the advice "save 512 bytes, write back 446" (the
 * boot code only). On a blank replacement disk that leaves no partition
 * table and no 0x55AA signature, so the firmware finds nothing to boot. The
 * lab must see that boot fail and classify it; then, like an admin with a
 * rescue system, it writes the whole backup from the host (`vmlab dr
 * restore-boot`, refusing a too-small disk first) and the machine boots.
 */
export default scenario({
  name: "mbr-446-pitfall",
  description: "twin of mbr-boot-restore that restores only the first 446 bytes: the firmware must find no bootable disk; the full backup then boots",
  image: "debian12-bootdisk",
  expect: {
    failure: [
      { says: "446 bytes of boot code without a partition table: the firmware finds no bootable disk", boot: { outcome: "no-bootable-device", evidence: "No bootable device|Boot failed|no working boot code" } },
      { says: "446 bytes of boot code without a partition table: GRUB cannot find its partition", boot: { outcome: "grub-rescue", evidence: "error: |grub rescue>" } },
    ],
    final: { boot: "ssh", fstype: "ext3", data: "intact" },
  },
  tags: ["dr", "boot", "mbr", "twin"],
  kind: "twin",
  runbook: "mbr-boot-dd-backup.ja.txt",
  async run(ctx) {
    const { vm, step, record, log, data, runDir } = ctx;
    // A .raw name: the run directory keeps logs, not disk data, and drops it at the end.
    const hostBackup = join(runDir, "boot-disk.raw");
    const before = await step("read the boot disk's partition table", async () => readGuestDisk(vm, await bootDiskDevice(vm)));
    const meta = await step("dd the MBR, GRUB's gap and /boot to a backup, and keep a copy on the host", async () => {
      const m = await backupBootDisk(ctx, before);
      await fetchFromGuest(vm, GUEST_BACKUP, hostBackup);
      await fetchFromGuest(vm, `${GUEST_BACKUP}.json`, sidecarPath(hostBackup));
      if ((await sha256File(hostBackup)) !== m.sha256) throw new VmlabError("the host copy of the backup differs from the guest's");
      record("backup", { sectors: m.sectors, reason: m.reason, sha256: m.sha256, hostCopy: hostBackup });
      return m;
    });
    await step("the boot disk fails: take it out of use and pull it", () => pullBootDisk(ctx, before));
    const target = await step("plug in a blank disk of the same size", () => plugBlankDisk(ctx, "newboot", before.bytes));
    await step("restore only the first 446 bytes (the boot code)", async () => {
      record("restoreCommand", await restoreBootDisk(ctx, meta, target.device, { bytes: 446 }));
      const sig = (await vm.succeed(`dd if=${target.device} bs=1 skip=510 count=2 status=none | od -An -tx1`)).trim();
      const table = await vm.run(`sfdisk --dump ${target.device}`);
      record("after446", { signature: sig, partitionTable: table.exitCode === 0 ? table.stdout.trim() : `none: ${table.stderr.trim()}` });
      log(`bytes 510-511: ${sig}; sfdisk: ${table.stderr.trim() || table.stdout.trim()}`);
    });
    await step("reboot through firmware: the lab must see it fail", async () => {
      const boot = await vm.reboot({ timeoutMs: 180_000 });
      if (boot.outcome !== "no-bootable-device" && boot.outcome !== "grub-rescue") {
        throw new VmlabError(`after restoring 446 bytes the boot ended as ${boot.outcome}; the lab expected the firmware to find no bootable disk`, {
          output: boot.evidence.join("\n"),
        });
      }
      record("observedFailure", { kind: "boot", outcome: boot.outcome, evidence: boot.evidence });
      log(`classified: ${boot.outcome}`);
    });
    await step("power off; a too-small disk image is refused before writing", async () => {
      await vm.powerCut();
      const small = join(runDir, "small.qcow2");
      await createImage(small, { format: "qcow2", size: before.bytes / 4 });
      const sum = await sha256File(small);
      try {
        await restoreBootImage(hostBackup, small);
        throw new VmlabError("vmlab dr restore-boot wrote to a disk a quarter of the size");
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        if ((await sha256File(small)) !== sum) throw new VmlabError("the refused restore changed the disk image");
        record("refusedSmaller", { message: err.message, untouched: true });
      }
    });
    await step("restore all of the backup onto the disk image from the host", async () => {
      const r = await restoreBootImage(hostBackup, target.path);
      record("hostRestore", { image: target.path, bytes: r.bytes, verified: true });
    });
    await step("power on: boot through firmware", async () => expectBoot(vm, await vm.boot(), "ssh"));
    await step("booted from the restored disk", async () => {
      const m = await mounts(vm);
      record("mountsAfter", m);
      if (m.bootDisk !== "newboot" || m.rootDisk !== "sdb") throw new VmlabError(`/boot is on disk ${m.bootDisk} and / on ${m.rootDisk}; expected newboot and sdb`);
    });
    record("swap", await step("swap has no signature: remake it with the label from fstab", () => repairSwap(ctx)));
    record("data", await step("data set intact", () => data.expectIntact(vm)));
  },
});
