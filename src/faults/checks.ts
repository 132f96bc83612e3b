/**
 * What fault scenarios check: after a failed procedure, that the machine was
 * left as it was (busy-root, io-errors); after a boot without an initrd, that
 * it panicked on the root mount (missing-initrd and its rescue twin).
 */
import { VmlabError } from "../errors.ts";
import { expectRoot } from "../procedures/pivot.ts";
import type { ScenarioContext } from "../scenario/types.ts";
import type { BootRecord } from "../vm/machine.ts";

/** `/` is still `device`, writable, the LV `lv` ("vg/name") does not exist, and the data set is intact. */
export async function expectLeftAsItWas(ctx: ScenarioContext, device: string, fstype: string, lv: string): Promise<void> {
  const { vm, data, record } = ctx;
  record("root", await expectRoot(vm, device, fstype));
  const w = await vm.run("f=/var/lib/vmlab/still-writable; mkdir -p /var/lib/vmlab && date > $f && sync && rm $f");
  if (w.exitCode !== 0) throw new VmlabError("/ is not writable after the aborted procedure", { output: w.stderr, hint: "the abort must remount / read-write" });
  const lvs = await vm.run(`lvs --noheadings ${lv} 2>&1`);
  if (lvs.exitCode === 0) throw new VmlabError(`a half-made LV ${lv} was left behind`, { output: lvs.stdout, hint: "the abort must remove the LV it created" });
  record("data", await data.expectIntact(vm));
}

/** The text of an error as a sysadmin sees it: message, output and hint. */
export function errorText(err: unknown): string {
  if (err instanceof VmlabError) return [err.message, err.output ?? "", err.hint ?? ""].join("\n");
  return String((err as Error)?.message ?? err);
}

/** The error a procedure failed with, or null when it went through: for scenarios that expect it to fail. */
export function failureOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

/**
 * A boot that must be a kernel panic on the root mount (no initrd to find the
 * root with), proven by the kernel's own lines. `when` says which boot, for
 * the error: "without an initrd", "after a rescue that left the initrd out".
 */
export function expectRootMountPanic(b: BootRecord, when: string): void {
  if (b.outcome !== "kernel-panic") throw new VmlabError(`${when} the boot ended as ${b.outcome}, expected kernel-panic`, { output: b.evidence.join("\n") });
  if (!b.evidence.some((l) => /VFS: Unable to mount root fs|No working init found|unable to mount root/i.test(l))) {
    throw new VmlabError(`${when} the kernel panicked, but its evidence does not show the root mount failing`, { output: b.evidence.join("\n") });
  }
}
