/**
 * A layout as an image recipe: `layout:PATH` wherever an image name goes
 * (`vmlab up layout:web01.json`, a scenario's or runbook's `image:`), and
 * `vmlab image build --layout FILE`. The image is cached by the layout's
 * content like any recipe, and built by the rescue system: booted directly
 * with the machine's blank disks and a payload disk that holds the customised
 * Debian tree, it runs the install script (src/layout/install.ts).
 */
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { UsageError, VmlabError } from "../errors.ts";
import { createImage, createOverlay, convertImage } from "../disk/qemu-img.ts";
import { formatSize } from "../disk/size.ts";
import { chooseAccel } from "../host/kvm.ts";
import { customizeTree } from "../image/customize.ts";
import { DEBIAN12_BLACKLIST, DEBIAN12_DEVICE_TIMEOUT, DEBIAN12_INITRAMFS, DEBIAN12_KERNEL_CMDLINE, DEBIAN12_MASKED_UNITS, DEBIAN12_PACKAGES } from "../image/debian12.ts";
import type { ImageRecipe } from "../image/recipe.ts";
import { run } from "../util/proc.ts";
import { Machine } from "../vm/machine.ts";
import { captureScript } from "./capture.ts";
import { byLabNames, compareLayouts } from "./fidelity.ts";
import { checkLayout, importLayout } from "./import.ts";
import { installScript, layoutDiskIds, PAYLOAD_DISK_ID } from "./install.ts";
import type { Layout } from "./types.ts";

export const LAYOUT_PREFIX = "layout:";

/** Reads and checks a layout.json. */
export async function loadLayout(file: string): Promise<Layout> {
  if (!existsSync(file)) throw new UsageError(`${file}: no such layout file`, { hint: "write one with `vmlab layout import`" });
  let l: Layout;
  try {
    l = JSON.parse(await readFile(file, "utf8")) as Layout;
  } catch (e) {
    throw new UsageError(`${file}: not JSON (${(e as Error).message})`, { where: file, hint: "write it with `vmlab layout import`" });
  }
  if (l?.version !== 1 || !Array.isArray(l.disks) || !Array.isArray(l.filesystems)) {
    throw new UsageError(`${file}: not a vmlab layout (version 1 with disks and filesystems)`, { where: file, hint: "write it with `vmlab layout import`" });
  }
  return checkLayout(l, file);
}

/** The image recipe of a layout: Debian 12 with the lab's settings, on the layout's disks. */
export function recipeFromLayout(layout: Layout, file: string): ImageRecipe {
  // web01.json -> layout-web01; a file named layout.json takes its folder's name.
  const base = basename(file) === "layout.json" ? basename(dirname(resolve(file))) : basename(file).replace(/\.json$/, "");
  const name = `layout-${base.replace(/[^A-Za-z0-9_.-]/g, "-")}`;
  // Only the sizes count: the install script lays out the partitions.
  const disks = layout.disks.map((d) => ({ size: formatSize(d.size), label: "msdos" as const, partitions: [] }));
  return {
    name,
    description: `${layout.source.host ? `${layout.source.host}'s` : "a captured"} layout from ${basename(file)}: ${layout.disks.length} disk(s), ${layout.raids.length} array(s), ${layout.vgs.length} volume group(s)`,
    suite: "bookworm",
    packages: DEBIAN12_PACKAGES,
    hostname: (layout.source.host ?? "vmlab").replace(/[^A-Za-z0-9-]/g, "-").slice(0, 63) || "vmlab",
    disk: disks[0]!,
    moreDisks: disks.slice(1),
    kernelCmdline: DEBIAN12_KERNEL_CMDLINE,
    maskUnits: DEBIAN12_MASKED_UNITS,
    initramfs: DEBIAN12_INITRAMFS,
    blacklistModules: DEBIAN12_BLACKLIST,
    deviceTimeout: DEBIAN12_DEVICE_TIMEOUT,
    layout,
  };
}

/** `layout:PATH` -> the recipe of that layout file. */
export async function layoutRecipe(name: string): Promise<ImageRecipe> {
  const file = resolve(name.slice(LAYOUT_PREFIX.length));
  return recipeFromLayout(await loadLayout(file), file);
}

/**
 * Build a layout image in `work`: its disks as raw files (disk.raw,
 * disk-sdb.raw, ... as the image's disk files name them), from the tree in
 * `tree`. The rescue image's kernel, initramfs and disk do the work.
 */
export async function buildLayoutDisks(o: {
  recipe: ImageRecipe;
  work: string;
  tree: string;
  raws: string[];
  publicKey: string;
  privateKey: string;
  rescue: { dir: string; disk: string; append: string };
  progress: (m: string) => void;
  timed: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
}): Promise<void> {
  const layout = o.recipe.layout!;
  await o.timed("customize", () => customizeTree(o.tree, o.recipe, o.publicKey, []));
  // The tree has no provisioning to do: the install script does it.
  await run("rm", ["-f", join(o.tree, "usr/local/sbin/vmlab-provision")]);
  const payload = join(o.work, "payload.raw");
  await o.timed("payload disk (the tree, mke2fs -d)", async () => {
    const used = Number((await run("du", ["-sb", o.tree])).stdout.split(/\s/)[0]);
    const size = Math.ceil((used * 1.3 + 256 * 1024 * 1024) / (1024 * 1024)) * 1024 * 1024;
    await createImage(payload, { size, format: "raw" });
    await run("mke2fs", ["-q", "-F", "-t", "ext4", "-d", o.tree, payload]);
  });
  for (const [i, raw] of o.raws.entries()) await createImage(raw, { size: layout.disks[i]!.size, format: "raw" });
  const rescueOverlay = join(o.work, "rescue-disk.qcow2");
  await createOverlay(rescueOverlay, o.rescue.disk, { backingFormat: "qcow2" });
  const ids = layoutDiskIds(layout);
  const m = new Machine({
    name: "layout-install",
    runDir: o.work,
    disks: [
      ...o.raws.map((path, i) => ({ path, format: "raw" as const, id: ids[i]!, scsiId: i })),
      { path: payload, format: "raw" as const, id: PAYLOAD_DISK_ID, scsiId: o.raws.length },
      { path: rescueOverlay, format: "qcow2" as const, id: "rescue", scsiId: o.raws.length + 1 },
    ],
    accel: await chooseAccel(),
    sshKey: o.privateKey,
    kernel: { path: join(o.rescue.dir, "vmlinuz"), initrd: join(o.rescue.dir, "initrd.img"), append: o.rescue.append },
  });
  try {
    await o.timed("rescue system booted with the blank disks", async () => {
      const b = await m.boot();
      if (b.outcome !== "ssh") throw new VmlabError(`the rescue system did not boot to SSH (${b.outcome})`, { where: m.serialLog, output: b.evidence.join("\n") });
    });
    const script = installScript(layout);
    await writeFile(join(o.work, "install.sh"), script);
    await o.timed("install the layout: tables, arrays, LVM, filesystems, the tree, initramfs, GRUB", async () => {
      const r = await m.run("bash -s", { input: script, timeoutMs: 30 * 60_000 });
      await writeFile(join(o.work, "install.log"), `${r.stdout}\n${r.stderr}`);
      if (r.exitCode !== 0 || !/^VMLAB-LAYOUT-INSTALLED$/m.test(r.stdout)) {
        throw new VmlabError(`installing layout ${o.recipe.name} failed`, {
          where: `the rescue system, ${join(o.work, "install.sh")}`,
          output: `${r.stdout}\n${r.stderr}`.trim().split("\n").slice(-30).join("\n"),
          hint: "the failing command is the last one in the output; the layout may ask for what the lab cannot make",
        });
      }
    });
  } finally {
    await m.kill();
  }
  await run("rm", ["-f", payload, rescueOverlay]);
  await o.timed("first boot through the firmware, and the fidelity check", () => firstBootFidelity(o.work, layout, o.raws, ids, o.privateKey));
}

/**
 * Boot the new disks through SeaBIOS and GRUB, run the capture script on the
 * machine, import its capture and compare it with the layout. A machine that
 * does not boot, or differs from its layout, fails the build with what
 * differs; fidelity.json in the image directory keeps the comparison.
 */
async function firstBootFidelity(work: string, layout: Layout, raws: string[], ids: string[], privateKey: string): Promise<void> {
  const m = new Machine({
    name: "layout-first-boot",
    runDir: work,
    disks: raws.map((path, i) => ({ path, format: "raw" as const, id: ids[i]!, scsiId: i })),
    accel: await chooseAccel(),
    sshKey: privateKey,
  });
  try {
    const b = await m.boot();
    if (b.outcome !== "ssh") {
      throw new VmlabError(`the machine built from the layout does not boot: ${b.outcome}${b.detail ? ` (${b.detail})` : ""}`, {
        where: m.serialLog,
        output: b.evidence.join("\n"),
        hint: "the console log shows the boot; the layout's bootloader placement or initramfs may be what fails",
      });
    }
    await m.succeed("cat > /root/vmlab-capture.sh", { input: captureScript() });
    const b64 = await m.succeed("sh /root/vmlab-capture.sh /root/vmlab-fidelity >/dev/null && tar -C /root -czf - vmlab-fidelity | base64 -w0");
    await m.succeed("rm -rf /root/vmlab-capture.sh /root/vmlab-fidelity; sync");
    await m.shutdown();
    const tgz = join(work, "fidelity-capture.tar.gz");
    await writeFile(tgz, Buffer.from(b64.trim(), "base64"));
    const got = byLabNames(await importLayout(tgz), ids);
    const diffs = compareLayouts(layout, got);
    await writeFile(join(work, "fidelity.json"), JSON.stringify({ differences: diffs, capture: got }, null, 2) + "\n");
    if (diffs.length) {
      throw new VmlabError(`the machine built from the layout differs from it in ${diffs.length} place(s)`, {
        where: join(work, "fidelity.json"),
        output: diffs.join("\n"),
        hint: "each line names what the booted machine has and what the layout asks for",
      });
    }
  } finally {
    await m.kill();
  }
}

/** Converts the raw disks to the image's read-only qcow2 files. */
export async function convertLayoutDisks(raws: string[], files: string[]): Promise<void> {
  for (const [i, raw] of raws.entries()) {
    await convertImage(raw, files[i]!, { format: "qcow2", sourceFormat: "raw" });
    await run("rm", ["-f", raw]);
  }
}
