import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import { staleFstab } from "../src/faults/index.ts";
import { expectRoot } from "../src/procedures/pivot.ts";
import { rescue } from "../src/rescue/index.ts";

/**
 * /etc/fstab names /boot by a UUID no filesystem has: the leftover of a
 * migration that made a new /boot and forgot the fstab. systemd waits for the
 * device, gives up, and drops to emergency mode; the lab must classify that.
 * The rescue system finds the real /boot from grub.cfg, rewrites the entry to
 * the UUID of the filesystem that is there, and the machine boots from its
 * own disk again with the data intact.
 */
export default scenario({
  name: "stale-fstab",
  description: "fstab names /boot by a UUID nothing has: emergency mode; rescue fixes fstab, firmware boot, data intact",
  image: "debian12-bios",
  expect: {
    failure: [{ says: "systemd waits for the /boot UUID nothing has and drops to emergency mode", boot: { outcome: "emergency-mode", evidence: "Timed out waiting for device|Dependency failed for boot.mount" } }],
    final: { boot: "ssh", root: "/dev/sda2", fstype: "ext3", data: "intact" },
  },
  tags: ["fault", "stale-fstab", "rescue"],
  kind: "twin",
  async run(ctx) {
    const { vm, step, data, record } = ctx;
    const fault = ctx.injected(await step("fault: /boot in fstab by a UUID nothing has", () => staleFstab(vm, "/boot")));
    await step("reboot through firmware: emergency mode", async () => {
      const b = await vm.reboot();
      fault.observed.push(`boot: ${b.outcome}${b.detail ? ` (${b.detail})` : ""}`, ...b.evidence);
      if (b.outcome !== "emergency-mode") throw new VmlabError(`with a stale fstab the boot ended as ${b.outcome}, expected emergency-mode`, { output: b.evidence.join("\n") });
    });
    const { record: r, boot } = await rescue(ctx, { repairs: ["fstab"] });
    await step("verify: booted from its own disk, /boot mounted by its real UUID, data set intact", async () => {
      if (boot.outcome !== "ssh") throw new VmlabError(`after rescue the boot ended as ${boot.outcome}`, { output: boot.evidence.join("\n") });
      if (r.fstab.fixed.length !== 1) throw new VmlabError(`the rescue fixed ${r.fstab.fixed.length} fstab entries, expected the one for /boot`, { output: r.fstab.fixed.join("\n") });
      record("fstabFixed", r.fstab.fixed);
      record("root", await expectRoot(vm, "/dev/sda2", "ext3"));
      const boot2 = (await vm.succeed("findmnt -no SOURCE /boot")).trim();
      if (!boot2) throw new VmlabError("/boot is not mounted after the rescue");
      record("data", await data.expectIntact(vm));
    });
  },
});
