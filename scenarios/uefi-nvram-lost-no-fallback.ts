import { VmlabError } from "../src/errors.ts";
import { expectInstalledEntries, FALLBACK_PATH } from "../src/procedures/uefi.ts";
import { scenario } from "../src/scenario/types.ts";

/**
 * Negative twin of uefi-nvram-lost: the NVRAM is lost on a machine
 * installed the Debian way, with GRUB only at \EFI\debian\grubx64.efi and
 * nothing at the removable-media path. The disks and the data are whole,
 * yet the firmware has no entry and finds no loader it may start, and ends
 * in its shell (or says it found no bootable option). The twin passes only
 * when the lab classifies that OVMF outcome.
 */
export default scenario({
  name: "uefi-nvram-lost-no-fallback",
  description: "twin of uefi-nvram-lost without GRUB at the removable-media path: the empty NVRAM leaves nothing to boot",
  image: "debian12-uefi",
  expect: {
    failure: [
      { says: "no boot entry and no \\EFI\\BOOT\\BOOTX64.EFI on the disk: OVMF fails to load the disk and falls back to its shell", boot: { outcome: "uefi-shell", detail: "fallback", evidence: "failed to load Boot[0-9A-F]{4} \"UEFI QEMU QEMU HARDDISK" } },
      { says: "no boot entry and no \\EFI\\BOOT\\BOOTX64.EFI on the disk: OVMF finds no bootable option", boot: { outcome: "no-bootable-device", detail: "uefi-no-boot-option", evidence: "BdsDxe: No bootable option" } },
    ],
  },
  tags: ["uefi", "nvram", "twin"],
  kind: "twin",
  // Run with uefi-nvram-lost, it forks from that run's checkpoint before this step.
  variantOf: { scenario: "uefi-nvram-lost", fromStep: "install GRUB at the removable-media path (grub-install --removable)" },
  async run(ctx) {
    const { vm, step, record, log } = ctx;
    await expectInstalledEntries(ctx);
    log(`skipped: grub-install --removable (nothing at ${FALLBACK_PATH})`);
    const lost = await step("power off, lose the NVRAM, power on", async () => {
      await vm.shutdown();
      await vm.clearNvram();
      return vm.boot({ reason: "power-on with an empty NVRAM", singleBoot: true });
    });
    await step("observe the missing fallback", async () => {
      if (lost.outcome === "ssh") throw new VmlabError("the machine booted without its NVRAM although nothing is at the removable-media path");
      record("observedFailure", { kind: "boot", outcome: lost.outcome, detail: lost.detail, evidence: lost.evidence });
      log(`empty NVRAM: ${lost.outcome}${lost.detail ? ` (${lost.detail})` : ""}`);
    });
  },
});
