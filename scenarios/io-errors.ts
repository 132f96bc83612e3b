import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import { failSectors, type FaultRecord } from "../src/faults/index.ts";
import { errorText, expectLeftAsItWas, failureOf } from "../src/faults/checks.ts";
import { rootToLvm } from "../src/procedures/root-to-lvm.ts";

/**
 * The disk under the new LV goes bad during the root → LVM copy: a range of
 * sys/root in the middle is remapped to the device-mapper `error` target, so
 * the `dd` of the old root hits I/O errors. The lab must report the failed
 * step with the guest's own kernel messages, and the procedure must leave the
 * machine as it was: old root, writable, the broken LV removed, data intact.
 */
export default scenario({
  name: "io-errors",
  description: "root → LVM onto an LV with an error zone (dm error target): dd fails, kernel messages reported, clean abort",
  image: "debian12-bios",
  expect: {
    failure: [{ says: "the dd into the LV fails with an I/O error, reported with the guest's kernel lines", step: { name: "^dd ", error: "Input/output error" }, facts: [{ path: "error", matches: "Buffer I/O error|critical target error|I/O error, dev" }] }],
    final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" },
  },
  tags: ["fault", "io-errors", "lvm"],
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  kind: "twin",
  async run(ctx) {
    const { vm, step, record } = ctx;
    let fault: FaultRecord | undefined;
    const err = await failureOf(rootToLvm(ctx, {
      vg: "sys",
      lv: "root",
      size: "3G",
      oldRoot: "/dev/sda2",
      onLvCreated: async () => {
        // 1 GiB into the LV, 64 MiB long: inside the 2 GiB the dd writes.
        fault = ctx.injected(await failSectors(vm, "sys-root", 2 * 1024 * 1024, 128 * 1024));
      },
    }));
    await step("observe: the copy failed with I/O errors, with the guest's kernel messages", async () => {
      if (!fault) throw new VmlabError("the error zone was never put into the LV");
      if (!err) throw new VmlabError("the migration went through although the new LV returns I/O errors", { hint: "dd with conv=fsync must fail on a bad target" });
      const text = errorText(err);
      record("error", text);
      if (!/Input\/output error/i.test(text)) throw new VmlabError("the procedure failed, but not with an I/O error", { output: text });
      const kernel = text.split("guest kernel messages:\n")[1]?.split("\n").filter(Boolean) ?? [];
      if (!kernel.some((l) => /I\/O error|critical target error|Buffer I\/O/.test(l))) {
        throw new VmlabError("the failure was reported without the guest's kernel messages about the I/O errors", { output: text });
      }
      fault.observed.push(text.split("\n")[0]!, ...kernel);
    });
    await step("verify: old root, writable, no LV sys/root, data set intact", () => expectLeftAsItWas(ctx, "/dev/sda2", "ext3", "sys/root"));
  },
});
