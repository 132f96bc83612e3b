import { VmlabError } from "../src/errors.ts";
import { rootToMdraid, UEFI_MIRRORS } from "../src/procedures/root-to-mdraid.ts";
import { optionsTried } from "../src/procedures/uefi.ts";
import { scenario } from "../src/scenario/types.ts";

/**
 * Negative twin of root-to-mdraid1-uefi: / and /boot are mirrored, but the
 * second disk gets no ESP, the way a BIOS habit ("GRUB is on the first
 * disk") carries over to UEFI. Both disks present, the machine boots and
 * the arrays look healthy. Pull the first disk, and the firmware has
 * nothing to load from the second: its entry's disk is gone and the other
 * disk holds no loader at all. The twin passes only when the lab classifies
 * OVMF's outcome.
 */
export default scenario({
  name: "root-to-mdraid1-uefi-esp-one-disk",
  description: "twin of root-to-mdraid1-uefi with the ESP on sda only: with sda pulled, the firmware finds nothing to boot on sdb",
  image: "debian12-uefi",
  expect: {
    failure: [
      { says: "with sda pulled, sdb has no ESP: OVMF fails to load its entry and the disk, and falls back to its shell", boot: { outcome: "uefi-shell", detail: "fallback", evidence: "failed to load Boot[0-9A-F]{4} " } },
      { says: "with sda pulled, sdb has no ESP: OVMF finds no bootable option", boot: { outcome: "no-bootable-device", detail: "uefi-no-boot-option", evidence: "BdsDxe: No bootable option" } },
    ],
  },
  tags: ["uefi", "raid", "pivot", "twin", "slow"],
  kind: "twin",
  // Run with root-to-mdraid1-uefi, it forks from that run's checkpoint before this step.
  variantOf: { scenario: "root-to-mdraid1-uefi", fromStep: "install GRUB on the ESP of /dev/sda and /dev/sdb, a boot entry for each, update-grub" },
  runbook: "raid1-migration-howto.txt",
  hardware: { extraDisks: ["8G"] },
  async run(ctx) {
    const { vm, step, record, log } = ctx;
    const [source, target] = [await vm.guestDisk("sda"), await vm.guestDisk("sdb")];
    log(`lab disk sda is ${source} in the guest, sdb is ${target}`);
    await rootToMdraid(ctx, { source, target, mirrors: UEFI_MIRRORS, esp: { part: 1 }, skip: ["grub-on-target"] });
    const boot = await step("pull sda through QMP, reboot from sdb alone", async () => {
      await vm.pullDisk("sda");
      return vm.reboot();
    });
    await step("observe the forgotten ESP", async () => {
      if (boot.outcome === "ssh") throw new VmlabError("sdb booted alone although it has no ESP", { hint: "the twin expects the firmware to find nothing to load on sdb" });
      const tried = optionsTried(await vm.consoleSince(boot.log.from)).map((o) => `Boot${o.num} "${o.label}": ${o.result}`);
      record("observedFailure", { kind: "boot", without: "sda", outcome: boot.outcome, detail: boot.detail, evidence: boot.evidence, optionsTried: tried });
      log(`sdb alone: ${boot.outcome}${boot.detail ? ` (${boot.detail})` : ""}; tried ${tried.join(", ")}`);
    });
  },
});
