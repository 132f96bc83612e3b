import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";

/**
 * The quickest real check of the lab: resume the saved guest, seed the data
 * set, and prove the guest answers over SSH with its disk, identity and data
 * in place. No reboot. A good first run on a new host, and the machine to
 * keep (`vmlab run --keep smoke`) for a look around the stock image.
 */
export default scenario({
  name: "smoke",
  description: "resume the stock guest, seed the data set and check it: the lab works on this host (seconds)",
  image: "debian12-bios",
  expect: { final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  tags: ["smoke"],
  async run({ vm, step, data, record }) {
    await step("check the guest", async () => {
      const hostname = (await vm.succeed("cat /etc/hostname")).trim();
      const root = (await vm.succeed("findmnt -no SOURCE,FSTYPE /")).trim();
      record("guest", { hostname, root });
      if (hostname !== "vmlab") throw new VmlabError(`the guest calls itself "${hostname}", expected "vmlab"`, { hint: "the image recipe sets the hostname; rebuild it with `vmlab image build --rebuild`" });
    });
    await step("check the data set", async () => record("data", await data.expectIntact(vm)));
  },
});
