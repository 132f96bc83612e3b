/** Hands-on: `vmlab up`, `reboot`, `check` and `rescue` (src/handson). */
import { UsageError } from "../../src/errors.ts";
import { chooseAccel } from "../../src/host/kvm.ts";
import { requireTool } from "../../src/host/tools.ts";
import { checkKept, checkUp, rebootKept, rescueDone, rescueKept, up } from "../../src/handson/index.ts";
import { DATA_DIR } from "../../src/scenario/dataset.ts";
import { DETACH_KEY } from "../../src/vm/console.ts";
import type { BootRecord } from "../../src/vm/machine.ts";
import { out } from "../output.ts";
import { cleanOrphans } from "./scenarios.ts";

function bootLines(b: BootRecord): string[] {
  const proof = b.newBoot ? (b.newBoot.proven ? ", a proven new boot" : ", NOT a proven new boot") : "";
  return [`boot via ${b.via} (${b.reason}): ${b.outcome}${b.detail ? ` (${b.detail})` : ""} after ${(b.durationMs / 1000).toFixed(1)} s${proof}`, ...b.evidence.map((l) => `  evidence: ${l}`)];
}

export async function cmdUp(image: string | undefined, o: { disks?: string; memory?: string; reportDir?: string; layout?: string }): Promise<number> {
  const checked = await checkUp({ image, layout: o.layout, disks: o.disks?.split(","), memory: o.memory });
  requireTool("qemu-system-x86_64");
  requireTool("qemu-img");
  await cleanOrphans();
  const accel = await chooseAccel();
  const { report, kept } = await up({ image: checked.image, disks: checked.disks, memory: o.memory, reportDir: o.reportDir, onEvent: (e) => e.type === "step-end" && process.stderr.write(`… ${e.step.name} (${(e.step.durationMs / 1000).toFixed(1)} s)\n`) }, accel);
  void report;
  out(`${kept.id}: up (QEMU pid ${kept.pid}, SSH on 127.0.0.1:${kept.sshPort}), image ${checked.image}${checked.disks.length ? `, blank disks ${checked.disks.join(", ")} (sdb, sdc, ...)` : ""}`);
  out(`  data set seeded in ${DATA_DIR}; \`vmlab check ${kept.id}\` compares it with its checksums`);
  out(`  vmlab ssh ${kept.id}             a root shell (lab key)`);
  out(`  vmlab console ${kept.id}         the serial console (root / vmlab); ${DETACH_KEY} detaches`);
  out(`  vmlab reboot ${kept.id}          reboot through the firmware, classify the boot`);
  out(`  vmlab check ${kept.id} [--root DEV]   where / is, and the data set`);
  out(`  vmlab rescue ${kept.id}          boot the rescue system with its disks`);
  out(`  vmlab stop ${kept.id}            end it and remove its disks`);
  return 0;
}

export async function cmdReboot(id: string): Promise<number> {
  const { entry, boot } = await rebootKept(id);
  out(`${entry.id}:`);
  for (const l of bootLines(boot)) out(`  ${l}`);
  if (boot.outcome !== "ssh") out(`  the machine did not come back: \`vmlab console ${entry.id}\` to look, \`vmlab rescue ${entry.id}\` to repair it`);
  return boot.outcome === "ssh" ? 0 : 1;
}

export async function cmdCheck(id: string, o: { root?: string }): Promise<number> {
  const { entry, result } = await checkKept(id, { root: o.root });
  out(`${entry.id}:`);
  if (result.root) out(`  / is ${result.root.device} (${result.root.fstype})${o.root ? (result.root.device === o.root ? ", as expected" : `, expected ${o.root}`) : ""}`);
  if (result.data) for (const [i, l] of result.data.summary.split("\n").entries()) out(`  ${i === 0 ? "data set: " : "  "}${l}`);
  for (const r of result.reasons) out(`  not yet: ${r}`);
  out(result.ok ? "  ok" : "  not ok");
  return result.ok ? 0 : 1;
}

export async function cmdRescue(id: string, o: { done?: boolean }): Promise<number> {
  if (!id) throw new UsageError("vmlab rescue needs the id of a kept machine", { hint: "`vmlab ps` lists them" });
  if (o.done) {
    const { entry, boot } = await rescueDone(id);
    out(`${entry.id}: the rescue system is off; booted from its own disk`);
    for (const l of bootLines(boot)) out(`  ${l}`);
    out(`  SSH on 127.0.0.1:${entry.sshPort}, QEMU pid ${entry.pid}`);
    return boot.outcome === "ssh" ? 0 : 1;
  }
  await cleanOrphans();
  const { target, rescue, boot } = await rescueKept(id);
  out(`${target.id}: powered off; the rescue system ${rescue.id} has its disks`);
  for (const l of bootLines(boot)) out(`  ${l}`);
  out(`  vmlab ssh ${rescue.id}   a root shell in the rescue system: its own disk is the one with serial "rescue"; the machine's`);
  out(`      disks follow (lsblk -o NAME,SERIAL,SIZE,FSTYPE,LABEL); assemble, mount, chroot and repair by hand`);
  out(`  vmlab rescue ${target.id} --done   power the rescue system off and boot ${target.id} from its own disk`);
  return 0;
}
