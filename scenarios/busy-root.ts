import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import { holdRootBusy, releaseBusyRoot } from "../src/faults/index.ts";
import { errorText, expectLeftAsItWas, failureOf } from "../src/faults/checks.ts";
import { rootToLvm } from "../src/procedures/root-to-lvm.ts";

/**
 * A process in a login session keeps a file on `/` open for writing (a
 * forgotten `tail -f >> log`, a user's screen session): the root → LVM
 * procedure stops the services it knows of, but `mount -o remount,ro /` is
 * refused as busy. The procedure must see that, name the process, and abort
 * cleanly: `/` still the old root and writable, no half-made LV, data intact.
 */
export default scenario({
  name: "busy-root",
  description: "root → LVM with / held busy by a session process: remount,ro refused, clean abort, machine as it was",
  image: "debian12-bios",
  expect: {
    failure: [{ says: "remount,ro is refused because / is busy", step: { name: "remount it read-only", error: "busy" }, facts: [{ path: "error", matches: "busy" }] }],
    final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" },
  },
  tags: ["fault", "busy-root", "lvm"],
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  kind: "twin",
  async run(ctx) {
    const { vm, step, record } = ctx;
    const fault = ctx.injected(await step("fault: a session process holds / busy", () => holdRootBusy(vm)));
    const err = await failureOf(rootToLvm(ctx, { vg: "sys", lv: "root", size: "3G", oldRoot: "/dev/sda2" }));
    await step("observe: the remount was refused as busy and named the holder", async () => {
      if (!err) throw new VmlabError("the migration went through although / was held busy", { hint: "remount,ro must be refused while a file on / is open for writing" });
      const text = errorText(err);
      record("error", text);
      if (!/busy/i.test(text)) throw new VmlabError("the procedure failed, but not because / was busy", { output: text });
      if (!text.includes(String(fault.details.pid))) throw new VmlabError(`the error does not name the process holding / (pid ${fault.details.pid})`, { output: text });
      fault.observed.push(...new Set(text.split("\n").filter((l) => /busy/i.test(l))));
    });
    await step("verify: old root, writable, no LV sys/root, data set intact", () => expectLeftAsItWas(ctx, "/dev/sda2", "ext3", "sys/root"));
    await step("let go of /", () => releaseBusyRoot(vm, fault));
  },
});
