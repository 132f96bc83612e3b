import { VmlabError } from "../src/errors.ts";
import { expectRoot } from "../src/procedures/pivot.ts";
import { addEntry, bootEntries, diskEntries, expectInstalledEntries, installRemovable, startedOption } from "../src/procedures/uefi.ts";
import { scenario } from "../src/scenario/types.ts";
import { expectBoot } from "../src/vm/machine.ts";

/**
 * A UEFI server loses its NVRAM: the board is reset or replaced, or the VM
 * is moved without its variable store. Its boot entry is gone, and the
 * firmware can only try each disk's removable-media path,
 * \EFI\BOOT\BOOTX64.EFI, where Debian puts nothing by default. The
 * rehearsal puts GRUB there first (`grub-install --removable`), loses the
 * NVRAM, boots through that path, then makes the entry again with
 * efibootmgr and proves the next boot takes it.
 */
export default scenario({
  name: "uefi-nvram-lost",
  description: "UEFI NVRAM lost: GRUB at \\EFI\\BOOT\\BOOTX64.EFI boots the machine, then efibootmgr makes its entry again",
  image: "debian12-uefi",
  expect: { final: { boot: "ssh", root: "/dev/sda3", fstype: "ext3", data: "intact" } },
  tags: ["uefi", "nvram"],
  async run(ctx) {
    const { vm, step, data, record, log } = ctx;
    await expectInstalledEntries(ctx);
    await step("install GRUB at the removable-media path (grub-install --removable)", () => installRemovable(vm));
    const lost = await step("power off, lose the NVRAM, power on", async () => {
      await vm.shutdown();
      await vm.clearNvram();
      return vm.boot({ reason: "power-on with an empty NVRAM" });
    });
    await step("observe: the firmware booted the disk's removable-media path", async () => {
      await expectBoot(vm, lost, "ssh");
      const started = await startedOption(vm, lost);
      const b = await bootEntries(vm);
      if (diskEntries(b).some((e) => e.label === "debian")) throw new VmlabError("the debian entry survived the NVRAM loss", { output: JSON.stringify(b, null, 2) });
      if (!started || started.label === "debian") throw new VmlabError("the console does not show the firmware starting a disk by its removable-media path", { output: lost.evidence.join("\n") });
      record("bootWithoutNvram", { option: `Boot${started.num} "${started.label}"`, evidence: lost.evidence });
      log(`without NVRAM the firmware started Boot${started.num} "${started.label}"`);
    });
    const entry = await step("make the debian entry again with efibootmgr", () => addEntry(vm, { disk: "/dev/sda", part: 1, label: "debian" }));
    await step("reboot through firmware: the new entry boots", async () => {
      const boot = await vm.reboot();
      await expectBoot(vm, boot, "ssh");
      const started = await startedOption(vm, boot);
      const b = await bootEntries(vm);
      if (started?.num !== entry.num || b.current !== entry.num) {
        throw new VmlabError(`the boot did not come through the new entry Boot${entry.num}`, { output: `console: ${JSON.stringify(started)}; BootCurrent ${b.current}` });
      }
      record("bootThroughEntry", { option: `Boot${entry.num} "${entry.label}"`, path: entry.path, bootCurrent: b.current });
    });
    await step("verify / and the data set", async () => {
      record("root", await expectRoot(vm, "/dev/sda3", "ext3"));
      record("data", await data.expectIntact(vm));
    });
  },
});
