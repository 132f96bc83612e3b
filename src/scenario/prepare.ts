/**
 * Preparing a scenario's machine: its image (built or reused), its warm
 * state, its private disks, and the Machine itself, started from the saved
 * state or booted through the firmware.
 */
import type { AccelChoice } from "../host/kvm.ts";
import { ensureImage, firmwareOf, type BuiltImage } from "../image/build.ts";
import { loadRecipe } from "../image/recipes.ts";
import { labKey } from "../image/keys.ts";
import { expectBoot, Machine, type MachineEvent } from "../vm/machine.ts";
import { ensureWarmState, machineDisks, profileFor, stateFirmware } from "../vm/warm.ts";
import type { Scenario } from "./types.ts";

type StepFn = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

export interface Prepared {
  image: BuiltImage;
  vm: Machine;
  privateKey: string;
  /** The frozen disk the run's overlay sits on. */
  backing: string;
}

export async function prepareMachine(
  s: Scenario,
  o: { runDir: string; accel: AccelChoice; step: StepFn; log: (m: string) => void; onMachineEvent: (e: MachineEvent) => void; keepable?: boolean },
): Promise<Prepared> {
  const { step, log } = o;
  const recipe = await loadRecipe(s.image);
  const image = await step(`image ${s.image}`, () => ensureImage(recipe, { progress: (m) => log(m) }));
  const { privateKey } = await labKey();
  const profile = profileFor(s.hardware);
  const cold = s.coldStart || process.env.VMLAB_WARM === "0";
  const warm = cold ? undefined : await step("warm state", () => ensureWarmState(image, profile, o.accel, privateKey, log));
  const disks = await machineDisks(o.runDir, image, profile, warm);
  const vm = new Machine({
    incomingState: warm?.state,
    memoryMiB: profile.memoryMiB,
    smp: profile.smp,
    name: "vm",
    runDir: o.runDir,
    disks,
    accel: o.accel,
    sshKey: privateKey,
    onEvent: o.onMachineEvent,
    keepable: o.keepable,
    ...(warm ? stateFirmware(warm) : firmwareOf(image)),
  });
  return { image, vm, privateKey, backing: warm?.disk ?? image.disk };
}

/** Start the prepared machine: resume the saved state, or boot through the firmware; it must reach SSH. */
export async function startMachine(p: Prepared, step: StepFn, log: (m: string) => void): Promise<void> {
  const { vm } = p;
  await step(vm.opts.incomingState ? "start from the saved state" : "boot from disk", async () => {
    const boot = vm.opts.incomingState ? await vm.resume() : await vm.boot();
    await expectBoot(vm, boot, "ssh");
    log(`up via ${boot.via} in ${(boot.durationMs / 1000).toFixed(1)} s`);
  });
}
