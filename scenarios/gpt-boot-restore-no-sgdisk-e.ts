import { VmlabError } from "../src/errors.ts";
import { errorText, failureOf } from "../src/faults/checks.ts";
import { gptGeometry, growPartition, restoreOntoLarger } from "../src/procedures/gpt-restore.ts";
import { scenario } from "../src/scenario/types.ts";

/**
 * Negative twin of gpt-boot-restore: the disk's image is restored onto the
 * larger disk, and the admin grows the last partition straight away,
 * without `sgdisk -e`. The restored GPT's last usable sector is still the
 * old disk's, so sgdisk refuses the larger partition with its own message.
 * The twin passes only when the lab sees that refusal.
 */
export default scenario({
  name: "gpt-boot-restore-no-sgdisk-e",
  description: "twin of gpt-boot-restore without sgdisk -e: growing the last partition is refused by sgdisk",
  image: "debian12-uefi",
  expect: {
    failure: [
      {
        says: "the restored GPT still ends at the old disk's end: sgdisk cannot create the grown partition",
        step: { name: "grow the LVM partition", error: "Could not create partition 4 from \\d+ to \\d+" },
        facts: [{ path: "refused.lastUsable", matches: "^\\d+$" }],
      },
    ],
  },
  tags: ["uefi", "gpt", "dr", "twin"],
  kind: "twin",
  // Run with gpt-boot-restore, it forks from that run's checkpoint before this step.
  variantOf: { scenario: "gpt-boot-restore", fromStep: "move the backup GPT header and table to the disk's end (sgdisk -e)" },
  runbook: "mbr-boot-dd-backup.ja.txt",
  hardware: { extraDisks: ["12G"] },
  async run(ctx) {
    const { vm, step, record, log } = ctx;
    const [source, target] = [await vm.guestDisk("sda"), await vm.guestDisk("sdb")];
    log(`lab disk sda is ${source} in the guest, the larger blank sdb is ${target}`);
    const old = await restoreOntoLarger(ctx, source, target);
    log("skipped: sgdisk -e");
    const err = await failureOf(step("grow the LVM partition (4) into the added space with sgdisk", () => growPartition(ctx, { disk: target, part: 4, oldDiskSectors: old.diskSectors })));
    await step("observe the refusal", async () => {
      if (!err) throw new VmlabError("sgdisk grew the partition although the backup GPT was never moved", { hint: "the twin expects sgdisk to refuse a partition past the old last usable sector" });
      const text = errorText(err);
      const g = await gptGeometry(vm, target);
      record("refused", { lastUsable: g.lastUsable, diskSectors: g.diskSectors, error: text.split("\n").filter((l) => /Could not|Error/.test(l)) });
      log(`sgdisk refused: ${text.split("\n").find((l) => /Could not create/.test(l)) ?? text}`);
    });
  },
});
