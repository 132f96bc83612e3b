/**
 * Shrink the root filesystem and its partition. resize2fs cannot shrink a
 * mounted ext3, so the root partition is freed first by pivoting into a
 * temporary root. The order is the whole point: the filesystem first, then
 * the container. The other order cuts off the end of a filesystem that is
 * still larger than its partition.
 */
import { VmlabError } from "../errors.ts";
import { parseSize } from "../disk/size.ts";
import type { ScenarioContext } from "../scenario/types.ts";
import type { Machine } from "../vm/machine.ts";
import { pivotToTemporaryRoot } from "./temp-root.ts";

export interface ShrinkOptions {
  /** The disk and partition number that hold `/`, e.g. /dev/sda and 2. */
  disk: string;
  part: number;
  /** New size of filesystem and partition, e.g. "1200M" (MiB, a multiple of 1 MiB). */
  size: string;
  vg: string;
  tempLv: string;
  /** "container-first" is the mistake a twin makes. */
  order?: "filesystem-first" | "container-first";
}

/** The partition's start and size in sectors, from `sfdisk --json`. Pure. */
export function partitionExtent(sfdiskJson: string, node: string): { start: number; size: number } {
  const table = (JSON.parse(sfdiskJson) as { partitiontable?: { partitions?: { node: string; start: number; size: number }[] } }).partitiontable;
  const p = table?.partitions?.find((x) => x.node === node);
  if (!p) throw new VmlabError(`no partition ${node} in the table`, { output: sfdiskJson });
  return { start: p.start, size: p.size };
}

export interface FsckResult {
  exitCode: number;
  output: string;
}

async function resizePartition(vm: Machine, disk: string, node: string, start: number, sectors: number): Promise<void> {
  // Only this partition changes; the kernel learns its new size through BLKPG (partx), the other partitions stay in use.
  await vm.succeed(`sfdisk -q --no-reread -N ${node.slice(disk.length).replace(/^p/, "")} ${disk}`, { input: `start=${start}, size=${sectors}\n` });
  await vm.succeed(`partx -u ${disk} && udevadm settle`);
  const now = Number((await vm.succeed(`blockdev --getsize64 ${node}`)).trim());
  if (now !== sectors * 512) throw new VmlabError(`${node} is ${now} bytes after the resize, expected ${sectors * 512}`, { hint: "the kernel did not take the new partition size; is the partition still in use?" });
}

export async function shrinkRoot(ctx: ScenarioContext, o: ShrinkOptions): Promise<{ fsck: FsckResult }> {
  const { vm, step, log } = ctx;
  const node = `${o.disk}${/\d$/.test(o.disk) ? "p" : ""}${o.part}`;
  const bytes = parseSize(o.size, "new root size");
  if (bytes % (1 << 20) !== 0) throw new VmlabError(`new size ${o.size} is not a whole number of MiB`, { hint: "use a size like 1200M" });
  const sectors = bytes / 512;
  const mib = bytes / (1 << 20);

  await step(`check there is room: used space on / fits in ${o.size}`, async () => {
    const used = Number((await vm.succeed("df -B1 --output=used / | tail -n 1")).trim());
    ctx.record("usedBytesBefore", used);
    if (used > bytes * 0.9) throw new VmlabError(`/ holds ${(used / 2 ** 20).toFixed(0)} MiB; ${o.size} leaves no room`, { hint: "free space first, or choose a larger size" });
  });
  await pivotToTemporaryRoot(ctx, { device: node, vg: o.vg, lv: o.tempLv });
  const { start } = partitionExtent(await vm.succeed(`sfdisk --json ${o.disk}`), node);

  const shrinkFs = () =>
    step(`e2fsck -f, then resize2fs ${node} to ${mib} MiB`, async () => {
      await vm.succeed(`e2fsck -f -y ${node}`, { timeoutMs: 10 * 60_000 });
      await vm.succeed(`resize2fs -p ${node} ${mib}M`, { timeoutMs: 20 * 60_000 });
    });
  const shrinkPart = () => step(`shrink partition ${node} to ${mib} MiB (same start)`, () => resizePartition(vm, o.disk, node, start, sectors));

  if (o.order === "container-first") {
    log("order: the partition before the filesystem");
    await shrinkPart();
    // The admin then tries to shrink the filesystem into it; the tools see the damage.
    await step(`e2fsck -f, then resize2fs ${node} to ${mib} MiB, after the partition`, async () => {
      for (const cmd of [`e2fsck -f -y ${node}`, `resize2fs -p ${node} ${mib}M`]) {
        const r = await vm.run(`${cmd} 2>&1`, { timeoutMs: 20 * 60_000 });
        log(`${cmd}: exit ${r.exitCode}: ${r.stdout.trim().split("\n").slice(-3).join("; ")}`);
        ctx.record(cmd.split(" ")[0]!, { exitCode: r.exitCode, output: r.stdout.trim().split("\n").slice(-6) });
      }
    });
  } else {
    await shrinkFs();
    await shrinkPart();
  }
  const fsck = await step(`e2fsck -f -n ${node}`, async () => {
    const r = await vm.run(`e2fsck -f -n ${node} 2>&1`, { timeoutMs: 10 * 60_000 });
    const res = { exitCode: r.exitCode, output: r.stdout.trim() };
    log(`e2fsck exit ${r.exitCode}: ${res.output.split("\n").slice(-2).join("; ")}`);
    return res;
  });
  return { fsck };
}
