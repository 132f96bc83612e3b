import { VmlabError } from "../src/errors.ts";
import { DEFAULT_MIRRORS, rootToMdraid } from "../src/procedures/root-to-mdraid.ts";
import { scenario } from "../src/scenario/types.ts";

/**
 * Negative twin of root-to-mdraid1: GRUB goes onto the first disk only, the
 * habit of a single-disk server. Both disks present, the machine would boot
 * (root-to-mdraid1 proves that much) and the mirror looks healthy. Pull the
 * disk with GRUB, though, and the other one, although
 * it holds a complete copy of /boot and /, has no boot code: the firmware
 * hands over to an empty boot sector. The twin passes only when the lab
 * classifies that boot as a failure.
 */
export default scenario({
  name: "root-to-mdraid1-grub-one-disk",
  description: "twin of root-to-mdraid1 with GRUB on sda only: with sda pulled, sdb must not boot",
  image: "debian12-bios",
  expect: {
    failure: [
      { says: "with sda pulled, sdb's boot sector holds no boot code: silence after the firmware's hand-over", boot: { outcome: "no-bootable-device", detail: "no-boot-code", evidence: "^Booting from Hard Disk" } },
      { says: "with sda pulled, the firmware finds no bootable disk", boot: { outcome: "no-bootable-device", evidence: "No bootable device" } },
    ],
  },
  tags: ["raid", "pivot", "twin", "slow"],
  kind: "twin",
  // Run with root-to-mdraid1, it forks from root-to-mdraid1's checkpoint before this step instead of repeating the prefix.
  variantOf: { scenario: "root-to-mdraid1", fromStep: "install GRUB on /dev/sda and /dev/sdb, update-grub" },
  runbook: "raid1-migration-howto.txt",
  hardware: { extraDisks: ["8G"] },
  async run(ctx) {
    const { vm, step, record, log } = ctx;
    const [source, target] = [await vm.guestDisk("sda"), await vm.guestDisk("sdb")];
    log(`lab disk sda is ${source} in the guest, sdb is ${target}`);
    await rootToMdraid(ctx, { source, target, mirrors: DEFAULT_MIRRORS, skip: ["grub-on-target"] });
    const boot = await step("pull sda through QMP, reboot from sdb alone", async () => {
      await vm.pullDisk("sda");
      return vm.reboot();
    });
    await step("observe the forgotten step", async () => {
      if (boot.outcome === "ssh") {
        throw new VmlabError("sdb booted alone although GRUB was never installed on it", {
          hint: "the twin expects sdb's boot sector to hold no boot code; check the procedure's skip list",
        });
      }
      record("observedFailure", { kind: "boot", without: "sda", outcome: boot.outcome, detail: boot.detail, evidence: boot.evidence });
      log(`sdb alone: ${boot.outcome}${boot.detail ? ` (${boot.detail})` : ""}`);
    });
  },
});
