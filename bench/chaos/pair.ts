import { VmlabError } from "../../src/errors.ts";
import { scenario } from "../../src/scenario/types.ts";

/**
 * The good path of the interruption chaos script's (bench/chaos.ts) pair:
 * run together with chaos-pair-twin (`vmlab run bench/chaos/pair.ts
 * bench/chaos/pair-twin.ts --jobs 2`), it is checkpointed before its second
 * step and the twin forks from that checkpoint: the shortest run that holds
 * a checkpoint and a fork for the script to interrupt.
 */
export default scenario({
  name: "chaos-pair",
  description: "write a marker file and read it back: the good path the chaos script's twin forks from",
  image: "debian12-bios",
  expect: { final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  tags: ["bench"],
  async run({ vm, step }) {
    await step("write a marker file", () => vm.succeed("echo chaos > /root/chaos-marker && sync"));
    await step("read the marker back", async () => {
      const got = (await vm.succeed("cat /root/chaos-marker")).trim();
      if (got !== "chaos") throw new VmlabError(`the marker reads "${got}", expected "chaos"`);
    });
  },
});
