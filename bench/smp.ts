/**
 * vCPUs per guest when guests share the host: the suite runs two at a time
 * (`--jobs 2`) on a 2-core host. Under TCG each vCPU is a host thread, so
 * two 2-vCPU guests are four threads on two cores. This measures, side by
 * side in one run, for -smp 1 and -smp 2:
 *
 *   pair boot        two guests cold-booted at once through the firmware, to the first SSH command
 *   pair initramfs   `update-initramfs -u` in both at once
 *   alone boot       one guest alone, cold boot to SSH
 *   alone initramfs  `update-initramfs -u` in that guest alone
 *
 *   npm run bench:smp -- [--runs N] [--json]
 *
 * Medians over N runs (default 2: each run is minutes under TCG).
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { dir } from "tmp-promise";
import { createOverlay } from "../src/disk/qemu-img.ts";
import { chooseAccel } from "../src/host/kvm.ts";
import { ensureImage } from "../src/image/build.ts";
import { labKey } from "../src/image/keys.ts";
import { loadRecipe } from "../src/image/recipes.ts";
import { Machine } from "../src/vm/machine.ts";
import { median } from "./stats.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "2" }, json: { type: "boolean", default: false } } });
const runs = Number(values.runs);
const accel = await chooseAccel();
const { privateKey } = await labKey();
const image = await ensureImage(await loadRecipe("debian12-bios"));
const note = (m: string) => process.stderr.write(`${m}\n`);

async function machine(smp: number, tag: string): Promise<Machine> {
  const runDir = (await dir({ unsafeCleanup: true })).path;
  const disk = join(runDir, "disk.qcow2");
  await createOverlay(disk, image.disk, { backingFormat: "qcow2" });
  return new Machine({ name: `bench-${tag}`, runDir, disks: [{ path: disk, format: "qcow2", id: "sda" }], accel, sshKey: privateKey, smp });
}

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t = Date.now();
  await fn();
  return Date.now() - t;
}

async function bootAndInitramfs(ms: Machine[]): Promise<{ boot: number; initramfs: number }> {
  try {
    const boot = await timed(() =>
      Promise.all(
        ms.map(async (m) => {
          const b = await m.boot();
          if (b.outcome !== "ssh") throw new Error(`boot ended as ${b.outcome}`);
        }),
      ),
    );
    const initramfs = await timed(() => Promise.all(ms.map((m) => m.succeed("update-initramfs -u", { timeoutMs: 20 * 60_000 }))));
    return { boot, initramfs };
  } finally {
    await Promise.all(ms.map((m) => m.kill()));
  }
}

const results: Record<string, number[]> = {};
const add = (k: string, v: number) => (results[k] ??= []).push(v);
for (let r = 1; r <= runs; r++) {
  for (const smp of [2, 1]) {
    note(`run ${r}: -smp ${smp}, two guests at once`);
    const pair = await bootAndInitramfs([await machine(smp, "a"), await machine(smp, "b")]);
    add(`pairBoot${smp}`, pair.boot);
    add(`pairInitramfs${smp}`, pair.initramfs);
    note(`run ${r}: -smp ${smp}, one guest alone`);
    const alone = await bootAndInitramfs([await machine(smp, "solo")]);
    add(`aloneBoot${smp}`, alone.boot);
    add(`aloneInitramfs${smp}`, alone.initramfs);
  }
}
const m = (k: string) => median(results[k]!);
const out = {
  runs,
  accel: accel.accel,
  pairBootMs: { smp1: m("pairBoot1"), smp2: m("pairBoot2") },
  pairInitramfsMs: { smp1: m("pairInitramfs1"), smp2: m("pairInitramfs2") },
  aloneBootMs: { smp1: m("aloneBoot1"), smp2: m("aloneBoot2") },
  aloneInitramfsMs: { smp1: m("aloneInitramfs1"), smp2: m("aloneInitramfs2") },
};
if (values.json) console.log(JSON.stringify(out, null, 2));
else {
  const row = (name: string, v: { smp1: number; smp2: number }) =>
    `${name.padEnd(34)} ${(v.smp2 / 1000).toFixed(1).padStart(7)} s  ${(v.smp1 / 1000).toFixed(1).padStart(7)} s   ${(v.smp1 / v.smp2).toFixed(2)}`;
  console.log(`${"median of " + runs + " (" + accel.accel + ")".padEnd(0)}`.padEnd(34) + "  -smp 2    -smp 1   1/2");
  console.log(row("two guests at once: cold boot", out.pairBootMs));
  console.log(row("two guests at once: initramfs", out.pairInitramfsMs));
  console.log(row("one guest alone: cold boot", out.aloneBootMs));
  console.log(row("one guest alone: initramfs", out.aloneInitramfsMs));
}
