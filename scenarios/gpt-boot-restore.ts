import { VmlabError } from "../src/errors.ts";
import { gptGeometry, growPartition, restoreOntoLarger } from "../src/procedures/gpt-restore.ts";
import { expectRoot } from "../src/procedures/pivot.ts";
import { startedOption } from "../src/procedures/uefi.ts";
import { scenario } from "../src/scenario/types.ts";
import { expectBoot } from "../src/vm/machine.ts";

/**
 * The boot-disk restore of the MBR runbook, redone for GPT and UEFI: the
 * UEFI server's disk (protective MBR, primary GPT, ESP, /boot, / and the LVM
 * PV) is restored with dd onto a blank disk that is larger, as when a
 * failed disk is replaced by a bigger one. The copy's GPT still ends where
 * the old disk ended, so the added space cannot be used until `sgdisk -e`
 * moves the backup header and table to the new end. Then the LVM partition
 * grows into it, the old disk is taken out, and the machine boots from the
 * restored disk through its unchanged NVRAM entry (the ESP's partition GUID
 * came along), with / where it was and the data intact.
 */
export default scenario({
  name: "gpt-boot-restore",
  description: "dd a UEFI/GPT disk onto a larger blank disk, sgdisk -e, grow the last partition, boot the restored disk alone",
  image: "debian12-uefi",
  expect: { final: { boot: "ssh", root: "/dev/sda3", fstype: "ext3", data: "intact" } },
  tags: ["uefi", "gpt", "dr", "boot"],
  runbook: "mbr-boot-dd-backup.ja.txt",
  hardware: { extraDisks: ["12G"] },
  async run(ctx) {
    const { vm, step, data, record, log } = ctx;
    const [source, target] = [await vm.guestDisk("sda"), await vm.guestDisk("sdb")];
    log(`lab disk sda is ${source} in the guest, the larger blank sdb is ${target}`);
    const old = await restoreOntoLarger(ctx, source, target);
    await step("move the backup GPT header and table to the disk's end (sgdisk -e)", async () => {
      await vm.succeed(`sgdisk -e ${target}`);
      const g = await gptGeometry(vm, target);
      record("movedGpt", g);
      log(`last usable sector ${old.lastUsable} -> ${g.lastUsable} of ${g.diskSectors}`);
    });
    await step("grow the LVM partition (4) into the added space with sgdisk", async () => record("grow", await growPartition(ctx, { disk: target, part: 4, oldDiskSectors: old.diskSectors })));
    const boot = await step("power off, take the old disk out, boot the restored disk through firmware", async () => {
      await vm.shutdown();
      vm.leaveOut("sda");
      return vm.boot();
    });
    await step("verify: booted through the NVRAM entry, / on the restored disk, the PV grown, the data set", async () => {
      await expectBoot(vm, boot, "ssh");
      const started = await startedOption(vm, boot);
      if (started?.label !== "debian") throw new VmlabError(`the restored disk booted through ${started?.label ?? "no option the console names"}, not the debian entry`);
      record("bootOption", `Boot${started.num} "${started.label}"`);
      record("root", await expectRoot(vm, "/dev/sda3", "ext3"));
      const serial = (await vm.succeed("lsblk -dno SERIAL /dev/sda")).trim();
      if (serial !== "sdb") throw new VmlabError(`/ is on the disk with serial ${serial}, not the restored one (sdb)`);
      await vm.succeed("pvresize /dev/sda4");
      const [pv, vg] = (await vm.succeed("pvs --noheadings --units b --nosuffix -o pv_size /dev/sda4; vgs --noheadings --units b --nosuffix -o vg_size sys")).trim().split(/\s+/).map(Number);
      record("pvBytes", pv);
      if (pv! < 9 * 2 ** 30) throw new VmlabError(`the PV is ${pv} bytes after pvresize: it did not grow into the larger disk`);
      log(`PV /dev/sda4 ${(pv! / 2 ** 30).toFixed(2)} GiB, VG sys ${(vg! / 2 ** 30).toFixed(2)} GiB`);
      record("data", await data.expectIntact(vm));
    });
  },
});
