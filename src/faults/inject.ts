/**
 * A fault at a step boundary of any scenario (`vmlab run --fault`, `vmlab
 * sweep`): inject it before step `at`, let the procedure stop or go on, then
 * power-cycle the machine through the firmware and record what became of it:
 * the boot outcome, which root it came up on, the data set, and, if asked,
 * whether the rescue route brings it back.
 */
import { UsageError } from "../errors.ts";
import { rootInfo } from "../procedures/pivot.ts";
import { rescue } from "../rescue/index.ts";
import { describeCheck } from "../scenario/dataset.ts";
import type { ProbeResult, ScenarioContext } from "../scenario/types.ts";
import type { Machine } from "../vm/machine.ts";
import type { InjectSpec } from "./types.ts";

export type { InjectSpec } from "./types.ts";
import { cutPower, dropLink, failSectors, forgetMdadmConf, holdRootBusy, pullDisk, removeInitrd, staleFstab, type FaultName, type Injection } from "./index.ts";


/** The bytes the guest has written to all of its disks, from a QMP query-blockstats reply. */
export function writtenBytes(blockstats: unknown): number {
  if (!Array.isArray(blockstats)) throw new Error("query-blockstats did not return a list");
  let sum = 0;
  for (const d of blockstats as Array<{ stats?: { wr_bytes?: unknown } }>) {
    const n = d.stats?.wr_bytes;
    if (typeof n === "number") sum += n;
  }
  return sum;
}

/**
 * Resolves once `bytes` more than `base` have been written to the machine's
 * disks, or when `done()` turns true first. Returns the bytes written since `base`.
 */
export async function untilWritten(vm: Machine, base: number, bytes: number, done: () => boolean): Promise<number> {
  for (;;) {
    const written = writtenBytes(await vm.qmpExecute("query-blockstats")) - base;
    if (written >= bytes || done()) return written;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Faults after which the procedure cannot go on: the machine is off or lost its disk. */
export const STOPS_PROCEDURE: ReadonlySet<FaultName> = new Set(["power-cut", "pulled-disk"]);


/** Inject `spec.fault` into a running machine the generic way (see FAULTS for each one's mechanism). */
export async function injectGeneric(vm: Machine, spec: InjectSpec): Promise<Injection> {
  switch (spec.fault) {
    case "power-cut":
      return cutPower(vm, "quit");
    case "pulled-disk": {
      const id = spec.disk ?? vm.disks[0]?.id;
      if (!id) throw new UsageError("pulled-disk: the machine has no disks");
      const { disk: _d, ...inj } = await pullDisk(vm, id);
      return inj;
    }
    case "dropped-ssh":
      return dropLink(vm);
    case "busy-root":
      return holdRootBusy(vm);
    case "missing-initrd":
      return removeInitrd(vm);
    case "stale-fstab":
      return staleFstab(vm, "/boot");
    case "forgotten-mdadm-conf":
      return forgetMdadmConf(vm);
    case "io-errors": {
      const dev = spec.device ?? (await vm.succeed("dmsetup ls --target linear | awk 'NR==1 {print $1}'")).trim();
      if (!dev) throw new UsageError("io-errors: the machine has no device-mapper device at this step", { hint: "pick a later step, or name one with --device" });
      const sectors = Number((await vm.succeed(`blockdev --getsz /dev/mapper/${dev}`)).trim());
      // A zone from a quarter into the device, an eighth of it long.
      return failSectors(vm, dev, Math.floor(sectors / 4), Math.max(8, Math.floor(sectors / 8)));
    }
  }
}

type Which = ProbeResult["root"];

async function whichRoot(vm: Machine, before: string): Promise<Which> {
  const dev = (await rootInfo(vm)).device;
  return { which: dev === before ? "old" : "new", device: dev };
}

/**
 * After the fault: power-cycle (QMP quit, then a firmware start), classify
 * the boot, and look at the root and the data set; try rescue if asked and
 * the boot failed. Fills `row` in place.
 */
export async function observeAfterFault(ctx: ScenarioContext, spec: InjectSpec, rootBefore: string, row: ProbeResult): Promise<void> {
  const { vm, step, data } = ctx;
  const boot = await step("after the fault: power off, firmware boot", async () => {
    if (vm.running) await vm.powerCut();
    return vm.boot({ reason: "power-on after the fault" });
  });
  row.boot = { outcome: boot.outcome, detail: boot.detail };
  if (boot.outcome === "ssh") {
    await step("after the fault: which root, and the data set", async () => {
      row.root = await whichRoot(vm, rootBefore);
      const c = await data.check(vm);
      row.data = c.intact ? { state: "intact", summary: describeCheck(c) } : { state: "lost", summary: describeCheck(c) };
    });
    return;
  }
  if (!spec.rescue) return;
  try {
    const { boot: after } = await rescue(ctx);
    const r: NonNullable<ProbeResult["rescue"]> = { boot: { outcome: after.outcome, detail: after.detail }, root: { which: "none" }, data: { state: "unknown" } };
    if (after.outcome === "ssh") {
      r.root = await whichRoot(vm, rootBefore);
      const c = await data.check(vm);
      r.data = { state: c.intact ? "intact" : "lost", summary: describeCheck(c) };
    }
    row.rescue = r;
  } catch (err) {
    row.rescue = { boot: { outcome: "not reached" }, root: { which: "none" }, data: { state: "unknown" }, error: (err as Error).message };
  }
}
