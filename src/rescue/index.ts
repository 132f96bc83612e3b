/**
 * The rescue route, as an admin with a rescue CD would walk it:
 *   1. boot the rescue system (images/rescue.ts) by direct kernel boot, with
 *      the broken machine's disks attached;
 *   2. assemble arrays and activate volume groups;
 *   3. find the target's root and /boot (from the root= of its grub.cfg),
 *      mount them, bind /dev, /proc, /sys and /run, and chroot in;
 *   4. repair: fstab entries that name no filesystem, the initramfs, GRUB;
 *   5. power the rescue system off and boot the target from its own disk,
 *      through the firmware.
 */
import { join } from "node:path";
import { createOverlay } from "../disk/qemu-img.ts";
import { VmlabError } from "../errors.ts";
import { ensureImage } from "../image/build.ts";
import { inChroot } from "../procedures/temp-root.ts";
import { loadRecipe } from "../image/recipes.ts";
import type { ScenarioContext } from "../scenario/types.ts";
import { expectBoot, type BootRecord, type Machine } from "../vm/machine.ts";

export const RESCUE_IMAGE = "rescue";
/** The rescue disk's serial: its partitions are never taken for the target's. */
export const RESCUE_DISK_ID = "rescue";
export const TARGET_MOUNT = "/mnt/target";

export type Repair = "fstab" | "initramfs" | "grub";

export interface RescueOptions {
  /** What to repair, in this order (default: all three). */
  repairs?: Repair[];
}

/** One filesystem the rescue system found on the target's disks. */
export interface Probe {
  device: string;
  fstype: string;
  uuid: string;
  label: string;
  /** `root=` of the first `linux` line in grub/grub.cfg or boot/grub/grub.cfg, if the filesystem has one. */
  grubRoot?: string;
  /** Where grub.cfg is: "grub" (a separate /boot) or "boot/grub" (inside a root). */
  grubDir?: "grub" | "boot/grub";
  hasFstab: boolean;
}

export interface RescueRecord {
  root: string;
  boot?: string;
  /** Disks GRUB was installed on. */
  grubDisks: string[];
  found: Probe[];
  fstab: { before: string[]; after: string[]; fixed: string[] };
  repairs: Repair[];
  /** The target's firmware boot after the repair. */
  bootAfter?: { outcome: string; detail?: string };
}

/**
 * Pick the target's root and /boot from what the rescue system found: the
 * filesystem named by grub.cfg's root=, or else the only one with an
 * /etc/fstab. Pure, for tests.
 */
export function chooseTarget(found: Probe[]): { root: Probe; boot?: Probe; reason: string } {
  const bootFs = found.find((p) => p.grubDir === "grub") ?? found.find((p) => p.grubDir === "boot/grub");
  const byRef = (ref: string): Probe | undefined => {
    const [k, v] = ref.includes("=") ? [ref.slice(0, ref.indexOf("=")), ref.slice(ref.indexOf("=") + 1)] : ["DEV", ref];
    return found.find((p) => p.hasFstab && ((k === "UUID" && p.uuid === v) || (k === "LABEL" && p.label === v) || (k === "DEV" && p.device === v)));
  };
  const ref = bootFs?.grubRoot;
  const named = ref ? byRef(ref) : undefined;
  const boot = bootFs?.grubDir === "grub" ? bootFs : undefined;
  if (named) return { root: named, boot, reason: `grub.cfg on ${bootFs!.device} boots root=${ref}` };
  const roots = found.filter((p) => p.hasFstab);
  if (roots.length === 1) return { root: roots[0]!, boot, reason: ref ? `grub.cfg names root=${ref}, which no filesystem here has; ${roots[0]!.device} is the only root` : `${roots[0]!.device} is the only filesystem with an /etc/fstab` };
  throw new VmlabError(roots.length ? `the rescue system cannot tell which root to repair: ${roots.map((r) => r.device).join(", ")}` : "the rescue system found no root filesystem on the target's disks", {
    output: found.map((p) => `${p.device} ${p.fstype} UUID=${p.uuid} LABEL=${p.label}${p.grubRoot ? ` grub root=${p.grubRoot}` : ""}${p.hasFstab ? " has /etc/fstab" : ""}`).join("\n"),
    hint: "the target's disks hold no recognisable root: is a disk missing, or the filesystem damaged?",
  });
}

/** Parse the probe script's output: one tab-separated line per filesystem. */
export function parseProbes(text: string): Probe[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("FS\t"))
    .map((l) => {
      const [, device, fstype, uuid, label, grubDir, grubRoot, fstab] = l.split("\t");
      return {
        device: device!,
        fstype: fstype!,
        uuid: uuid ?? "",
        label: label ?? "",
        grubDir: grubDir === "grub" || grubDir === "boot/grub" ? grubDir : undefined,
        grubRoot: grubRoot || undefined,
        hasFstab: fstab === "1",
      };
    });
}

/**
 * fstab lines whose UUID= or LABEL= names none of `present`, rewritten to the
 * UUID of the filesystem now at that mount point (`mounted`: mount point ->
 * UUID). Lines with no replacement are kept. Pure, for tests.
 */
export function repairFstab(
  lines: string[],
  present: { uuids: Set<string>; labels: Set<string> },
  mounted: Record<string, string>,
): { lines: string[]; fixed: string[] } {
  const fixed: string[] = [];
  const out = lines.map((line) => {
    const f = line.trim().split(/\s+/);
    if (!f[0] || f[0].startsWith("#") || f.length < 2) return line;
    const [spec, mp] = [f[0], f[1]!];
    const stale = (spec.startsWith("UUID=") && !present.uuids.has(spec.slice(5))) || (spec.startsWith("LABEL=") && !present.labels.has(spec.slice(6)));
    const uuid = mounted[mp];
    if (!stale || !uuid) return line;
    const next = [`UUID=${uuid}`, ...f.slice(1)].join("\t");
    fixed.push(`${spec} -> UUID=${uuid} (${mp})`);
    return next;
  });
  return { lines: out, fixed };
}

const PROBE = `set -u
mkdir -p /mnt/probe
own=$(lsblk -lnpo NAME /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_${RESCUE_DISK_ID} 2>/dev/null)
lsblk -lnpo NAME,FSTYPE | while read -r dev fs; do
  case "$fs" in ext2|ext3|ext4|btrfs) ;; *) continue ;; esac
  echo "$own" | grep -qx "$dev" && continue
  mount -o ro "$dev" /mnt/probe 2>/dev/null || continue
  gd=; gr=
  for d in grub boot/grub; do
    if [ -f /mnt/probe/$d/grub.cfg ]; then gd=$d; gr=$(grep -m1 -oE '^[[:space:]]*linux[[:space:]].*' /mnt/probe/$d/grub.cfg | grep -oE 'root=[^ ]+' | head -n1 | cut -d= -f2-); break; fi
  done
  [ -f /mnt/probe/etc/fstab ] && ft=1 || ft=0
  umount /mnt/probe
  printf 'FS\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$dev" "$fs" "$(blkid -s UUID -o value "$dev")" "$(blkid -s LABEL -o value "$dev")" "$gd" "$gr" "$ft"
done`;

/**
 * Boot the rescue system with the target's disks, repair the target, and
 * boot it again from its own disk. The target must not be running (it is
 * stopped here if it is: a machine stuck at a panic or an emergency shell is
 * simply powered off). Returns what was found and done; the target's new boot
 * is in `target.boots`.
 */
export async function rescue(ctx: ScenarioContext, opts: RescueOptions = {}): Promise<{ record: RescueRecord; boot: BootRecord }> {
  const { vm: target, step, log } = ctx;
  const repairs = opts.repairs ?? ["fstab", "initramfs", "grub"];
  if (target.running) await target.powerCut();
  const recipe = await loadRecipe(RESCUE_IMAGE);
  const image = await step("rescue: the rescue image", () => ensureImage(recipe, { progress: log }));
  const overlay = join(ctx.runDir, "rescue-disk.qcow2");
  await createOverlay(overlay, image.disk, { backingFormat: "qcow2" });
  const used = new Set(target.disks.map((d) => d.scsiId));
  let scsiId = 0;
  while (used.has(scsiId)) scsiId++;
  const r = ctx.addMachine({
    name: "rescue",
    disks: [...target.disks.map((d) => ({ ...d })), { path: overlay, format: "qcow2", id: RESCUE_DISK_ID, scsiId }],
    kernel: { path: join(image.dir, "vmlinuz"), initrd: join(image.dir, "initrd.img"), append: recipe.directBoot!.append },
  });
  await step("rescue: direct kernel boot of the rescue system with the target's disks", async () => {
    const b = await r.boot();
    await expectBoot(r, b, "ssh");
    // The labels must be the rescue system's own: a LABEL=root here would be the target's.
    const own = (await r.succeed("findmnt -no SOURCE / | xargs blkid -s LABEL -o value")).trim();
    if (own !== "rescue-root") throw new VmlabError(`the rescue system booted ${own || "an unlabelled root"}, not rescue-root`);
  });
  const record: RescueRecord = { root: "", grubDisks: [], found: [], fstab: { before: [], after: [], fixed: [] }, repairs };
  await step("rescue: assemble arrays and activate volume groups", async () => {
    const out = await r.succeed("mdadm --assemble --scan 2>&1 || true; vgchange -ay 2>&1; udevadm settle; lsblk -o NAME,SIZE,FSTYPE,LABEL,MOUNTPOINT");
    for (const l of out.trim().split("\n")) log(l);
  });
  const chosen = await step("rescue: find the target's root and mount it", async () => {
    record.found = parseProbes(await r.succeed(PROBE));
    const c = chooseTarget(record.found);
    log(`root ${c.root.device}${c.boot ? `, /boot ${c.boot.device}` : ""}: ${c.reason}`);
    record.root = c.root.device;
    record.boot = c.boot?.device;
    await r.succeed(`mkdir -p ${TARGET_MOUNT} && mount ${c.root.device} ${TARGET_MOUNT}${c.boot ? ` && mount ${c.boot.device} ${TARGET_MOUNT}/boot` : ""}`);
    return c;
  });
  for (const what of repairs) {
    if (what === "fstab") {
      await step("rescue: fstab entries that name no filesystem", async () => {
        const before = (await r.succeed(`cat ${TARGET_MOUNT}/etc/fstab`)).split("\n");
        const uuids = new Set((await r.succeed("blkid -s UUID -o value")).split("\n").filter(Boolean));
        const labels = new Set((await r.succeed("blkid -s LABEL -o value")).split("\n").filter(Boolean));
        const mounted: Record<string, string> = { "/": chosen.root.uuid };
        if (chosen.boot) mounted["/boot"] = chosen.boot.uuid;
        const fx = repairFstab(before, { uuids, labels }, mounted);
        record.fstab = { before, after: fx.lines, fixed: fx.fixed };
        if (fx.fixed.length) {
          await r.succeed(`cp ${TARGET_MOUNT}/etc/fstab ${TARGET_MOUNT}/etc/fstab.vmlab-rescue && cat > ${TARGET_MOUNT}/etc/fstab`, { input: fx.lines.join("\n") });
          for (const f of fx.fixed) log(`fstab: ${f}`);
        } else log("fstab: every entry names a filesystem that exists");
      });
    } else if (what === "initramfs") {
      await step("rescue: rebuild the initramfs in a chroot", async () => {
        const out = await r.succeed(
          inChroot(TARGET_MOUNT, "for k in $(ls /lib/modules); do if [ -e /boot/initrd.img-$k ]; then update-initramfs -u -k $k; else update-initramfs -c -k $k; fi; done; ls -l /boot/initrd.img-*"),
          { timeoutMs: 20 * 60_000 },
        );
        log(out.trim().split("\n").at(-1) ?? "");
      });
    } else {
      await step("rescue: grub-install and update-grub in a chroot", async () => {
        const bootDev = chosen.boot?.device ?? chosen.root.device;
        // The disk(s) under /boot: through an md array to each member's disk.
        const disks = (await r.succeed(`lsblk -snlpo NAME,TYPE ${bootDev} | awk '$2 == "disk" {print $1}' | sort -u`)).split("\n").filter(Boolean);
        record.grubDisks = disks;
        await r.succeed(inChroot(TARGET_MOUNT, `${disks.map((d) => `grub-install ${d}`).join(" && ")} && update-grub`), { timeoutMs: 10 * 60_000 });
        log(`GRUB installed on ${disks.join(", ")}`);
      });
    }
  }
  await step("rescue: unmount, switch the rescue system off", async () => {
    await r.succeed(`sync; umount -R ${TARGET_MOUNT}; vgchange -an 2>&1 || true; mdadm --stop --scan 2>&1 || true; sync`);
    // The target's filesystems are unmounted and synced, and the rescue
    // system's own disk is a throwaway overlay: switching off loses nothing
    // (an ACPI shutdown of it takes about a minute under TCG).
    await r.powerCut();
  });
  const boot = await step("boot the target from its own disk through firmware", async () => {
    const b = await target.boot();
    record.bootAfter = { outcome: b.outcome, detail: b.detail };
    return b;
  });
  ctx.record("rescue", record);
  return { record, boot };
}
