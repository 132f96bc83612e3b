import { VmlabError } from "../../src/errors.ts";
import { failureOf } from "../../src/faults/checks.ts";
import { scenario } from "../../src/scenario/types.ts";

/**
 * Negative twin of chaos-pair (bench/chaos/pair.ts): the marker is removed
 * before it is read back, and the twin passes only when the read fails with
 * cat's own message. Run with chaos-pair, it forks from chaos-pair's
 * checkpoint before "read the marker back".
 */
export default scenario({
  name: "chaos-pair-twin",
  description: "twin of chaos-pair: the marker is removed first, so reading it back fails with No such file or directory",
  image: "debian12-bios",
  kind: "twin",
  variantOf: { scenario: "chaos-pair", fromStep: "read the marker back" },
  expect: {
    failure: [
      {
        says: "the marker was removed before it was read back: cat names the missing file",
        step: { name: "read the removed marker back", error: "chaos-marker: No such file or directory" },
      },
    ],
  },
  tags: ["bench", "twin"],
  async run({ vm, step }) {
    await step("write a marker file", () => vm.succeed("echo chaos > /root/chaos-marker && sync"));
    await step("remove the marker", () => vm.succeed("rm /root/chaos-marker"));
    const err = await failureOf(step("read the removed marker back", () => vm.succeed("cat /root/chaos-marker")));
    if (!err) throw new VmlabError("the removed marker could still be read");
  },
});
