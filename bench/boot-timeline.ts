/**
 * Where a cold boot spends its time: firmware boots of the BIOS image
 * (SeaBIOS) and of the UEFI image (OVMF), with the serial console watched
 * every 100 ms and the host time of each landmark noted. Prints seconds per
 * phase (firmware, GRUB, kernel, initramfs, userspace until sshd answers)
 * for each image side by side, and the UEFI/BIOS ratio.
 *
 *   npm run bench:timeline
 *   npm run bench:timeline -- --runs 3   # medians per phase
 *   npm run bench:timeline -- --images debian12-bios   # one image only
 *   npm run bench:timeline -- --blame --console /tmp/boot.log   # systemd-analyze, keep the console log
 */
import { copyFile, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { dir } from "tmp-promise";
import { createOverlay } from "../src/disk/qemu-img.ts";
import { chooseAccel } from "../src/host/kvm.ts";
import { ensureImage, firmwareOf } from "../src/image/build.ts";
import { labKey } from "../src/image/keys.ts";
import { loadRecipe } from "../src/scenario/registry.ts";
import { Machine } from "../src/vm/machine.ts";
import { sshRun } from "../src/vm/ssh.ts";
import { median } from "./stats.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "1" }, images: { type: "string", default: "debian12-bios,debian12-uefi" }, blame: { type: "boolean" }, console: { type: "string" } } });

/** Console landmarks in boot order; each phase ends where the next begins. */
const LANDMARKS: [phase: string, pattern: RegExp][] = [
  ["firmware", /SeaBIOS|BdsDxe: (?:loading|starting) Boot/],
  ["GRUB", /Booting from Hard Disk|GNU GRUB|Welcome to GRUB/],
  ["GRUB loads the kernel", /Loading Linux/],
  ["GRUB loads the initrd", /Loading initial ramdisk/],
  ["kernel", /Linux version/],
  ["initramfs", /Run \/init as init process|Loading, please wait/],
  ["userspace", /systemd\[1\]|Welcome to Debian|systemd \d+ running/],
];

const accel = await chooseAccel();
const { privateKey } = await labKey();
const tmp = await dir({ unsafeCleanup: true });
const names = values.images!.split(",").filter(Boolean);
/** Per image, per phase: milliseconds of each run. */
const byImage: Record<string, Record<string, number[]>> = {};

for (const name of names) {
  const image = await ensureImage(await loadRecipe(name));
  const phases: Record<string, number[]> = (byImage[name] = {});

  for (let i = 0; i < Number(values.runs); i++) {
    const runDir = join(tmp.path, `${name}-${i}`);
    await mkdir(runDir);
    const disk = join(runDir, "sda.qcow2");
    await createOverlay(disk, image.disk, { backingFormat: "qcow2" });
    const m = new Machine({ name: "timeline", runDir, disks: [{ path: disk, format: "qcow2", id: "sda" }], accel, sshKey: privateKey, ...firmwareOf(image) });
    const seen: Record<string, number> = {};
    const t0 = Date.now();
    try {
      await m.start();
      for (;;) {
        const text = await m.consoleSince(0);
        for (const [phase, re] of LANDMARKS) if (!(phase in seen) && re.test(text)) seen[phase] = Date.now() - t0;
        if ("userspace" in seen || "initramfs" in seen) {
          const r = await sshRun(m.ssh, "true", { timeoutMs: 10_000, connectTimeoutS: 2 });
          if (r.exitCode === 0) {
            if (values.blame) process.stderr.write((await m.succeed("systemd-analyze; systemd-analyze blame | head -25; systemd-analyze critical-chain")) + "\n");
            break;
          }
        }
        if (Date.now() - t0 > 300_000) throw new Error(`no SSH after 300 s; console tail:\n${await m.consoleTail(20)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const total = Date.now() - t0;
      const marks = [["QEMU start", 0] as [string, number], ...LANDMARKS.filter(([p]) => p in seen).map(([p]) => [p, seen[p]!] as [string, number])];
      for (let k = 0; k < marks.length; k++) {
        const [phase, at] = marks[k]!;
        const end = k + 1 < marks.length ? marks[k + 1]![1] : total;
        const name = k === 0 ? "QEMU start → firmware banner" : phase === "userspace" ? "userspace → sshd answers" : phase;
        (phases[name] ??= []).push(end - at);
      }
      (phases["total to first SSH command"] ??= []).push(total);
    } finally {
      if (values.console) await copyFile(m.serialLog, values.console);
      await m.kill();
      await rm(runDir, { recursive: true, force: true });
    }
}
}
await tmp.cleanup();

const allPhases = [...new Set(names.flatMap((n) => Object.keys(byImage[n]!)))];
const sec = (xs?: number[]) => (xs?.length ? (median(xs) / 1000).toFixed(2) : "-");
process.stdout.write(`cold boot timeline (${accel.accel}), median of ${values.runs} run(s) per image\n`);
process.stdout.write(`  ${"phase".padEnd(30)} ${names.map((n) => n.padStart(15)).join(" ")}${names.length === 2 ? "   ratio" : ""}\n`);
for (const phase of allPhases) {
  const cells = names.map((n) => sec(byImage[n]![phase]).padStart(15)).join(" ");
  const [a, b] = names.map((n) => byImage[n]![phase]);
  const ratio = names.length === 2 && a?.length && b?.length && median(a) > 0 ? `   ${(median(b) / median(a)).toFixed(2)}` : "";
  process.stdout.write(`  ${phase.padEnd(30)} ${cells}${ratio}\n`);
}
