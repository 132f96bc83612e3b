import { VmlabError } from "../src/errors.ts";
import { expectRoot, expectUniqueRoot } from "../src/procedures/pivot.ts";
import { shrinkRoot } from "../src/procedures/shrink-root.ts";
import { scenario } from "../src/scenario/types.ts";
import { expectBoot } from "../src/vm/machine.ts";

const SIZE_MIB = 1200;

/**
 * Shrink / on sda2 from 2G to 1.2G while it holds about 700M. The partition
 * is freed by pivoting into a temporary root; the filesystem is shrunk first
 * (e2fsck -f, resize2fs), then the partition (sfdisk, same start); fsck must
 * be clean and the machine must boot its own root with the data intact.
 */
export default scenario({
  name: "shrink-root",
  description: "shrink / (ext3 on sda2) from 2G to 1.2G from a pivoted temporary root: filesystem first, then partition; reboot",
  image: "debian12-bios",
  expect: { final: { boot: "ssh", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  tags: ["shrink", "pivot"],
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  async run(ctx) {
    const { vm, step, data, record } = ctx;
    const { fsck } = await shrinkRoot(ctx, { disk: "/dev/sda", part: 2, size: `${SIZE_MIB}M`, vg: "sys", tempLv: "tmproot" });
    record("fsck", fsck);
    if (fsck.exitCode !== 0) throw new VmlabError(`e2fsck -f found problems after the shrink (exit ${fsck.exitCode})`, { output: fsck.output });
    await step("reboot through firmware", async () => expectBoot(vm, await vm.reboot(), "ssh"));
    await step(`verify / is sda2, ext3, ${SIZE_MIB} MiB partition and filesystem`, async () => {
      const root = await expectRoot(vm, "/dev/sda2", "ext3");
      record("root", root);
      const part = Number((await vm.succeed("blockdev --getsize64 /dev/sda2")).trim());
      const fsBytes = Number((await vm.succeed("dumpe2fs -h /dev/sda2 2>/dev/null | awk -F: '/^Block count/ {c=$2} /^Block size/ {s=$2} END {print c*s}'")).trim());
      record("sizes", { partitionBytes: part, filesystemBytes: fsBytes });
      if (part !== SIZE_MIB * 2 ** 20 || fsBytes !== part) {
        throw new VmlabError(`partition ${part} bytes, filesystem ${fsBytes} bytes; expected both ${SIZE_MIB * 2 ** 20}`);
      }
    });
    await step("remove the temporary root", () => vm.succeed("lvremove -y sys/tmproot"));
    await step("verify no other filesystem answers to the root's UUID or LABEL", async () => record("rootIdentity", await expectUniqueRoot(vm)));
    await step("verify the data set", async () => record("data", await data.expectIntact(vm)));
  },
});
