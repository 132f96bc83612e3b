import { VmlabError } from "../../src/errors.ts";
import { scenario } from "../../src/scenario/types.ts";

/**
 * The interruption chaos script's (bench/chaos.ts) run with a reboot: the
 * stock guest, resumed and seeded, reboots through its firmware (SeaBIOS,
 * GRUB, kernel, initramfs, systemd) and must come back on its own disk with
 * the data set intact. Not a procedure: the shortest run that holds a real
 * reboot for the script to interrupt.
 */
export default scenario({
  name: "chaos-reboot",
  description: "resume the stock guest, seed the data set, reboot it through the firmware and check it came back",
  image: "debian12-bios",
  expect: { final: { boot: "ssh", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  tags: ["bench"],
  async run({ vm, step }) {
    await step("write a marker file", () => vm.succeed("echo before-reboot > /root/chaos-marker && sync"));
    await step("reboot through the firmware", () => vm.reboot());
    await step("read the marker after the reboot", async () => {
      const got = (await vm.succeed("cat /root/chaos-marker")).trim();
      if (got !== "before-reboot") throw new VmlabError(`the marker reads "${got}" after the reboot, expected "before-reboot"`);
    });
  },
});
