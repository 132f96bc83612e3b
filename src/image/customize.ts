/**
 * Everything that shapes an image beyond its recipe: the files written into
 * the tree, the script of the provisioning boot, GRUB's defaults and how the
 * disks are assembled. The image cache key covers this file's text
 * (`shapingSource`), so editing any of it builds the images again.
 */
import { readFileSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../util/proc.ts";
import { CONSOLE_ROOT_PASSWORD } from "./keys.ts";
import { planPartitions, sfdiskScript, SECTOR, type PlannedPartition } from "./layout.ts";
import { guestDevice, recipeDisks, type ImageRecipe } from "./recipe.ts";

/** The text of the files that shape an image: this one and the partition planner. */
export function shapingSource(): string {
  return ["./customize.ts", "./layout.ts"].map((f) => readFileSync(fileURLToPath(new URL(f, import.meta.url)), "utf8")).join("\n");
}

/** The script that runs as init in the provisioning boot: LVM, GRUB, power off. */
export function provisionScript(recipe: ImageRecipe): string {
  const lvm = recipeDisks(recipe)
    .flatMap((d, di) =>
      planPartitions(d)
        .partitions.filter((p) => p.lvm)
        .map((p) => `pvcreate -ff -y ${guestDevice(di, p.index)}\nvgcreate ${p.lvm!.vg} ${guestDevice(di, p.index)}`),
    )
    .join("\n");
  const uefi = recipe.firmware === "uefi";
  // The ESP is made here, empty: grub-install fills it.
  const esps = recipeDisks(recipe).flatMap((d, di) =>
    planPartitions(d).partitions.filter((p) => p.fs?.type === "vfat").map((p) => `mkfs.vfat -n ${p.fs!.label} ${guestDevice(di, p.index)}`),
  );
  // GRUB for the firmware: in the MBR and the gap after it, or on the ESP
  // with a boot entry in NVRAM (efibootmgr, through efivarfs). No copy at the
  // removable-media path \EFI\BOOT\BOOTX64.EFI: Debian does not make one,
  // and a machine that loses its NVRAM then has nothing to boot.
  const grub = uefi
    ? `mount -t efivarfs efivarfs /sys/firmware/efi/efivars
grub-install --target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=debian
efibootmgr -v`
    : "grub-install --target=i386-pc /dev/sda";
  return `#!/bin/sh
# vmlab provisioning: runs once as init in a direct kernel boot of the new image.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# No udev runs here: tell LVM not to wait for it.
export DM_DISABLE_UDEV=1
# Run from a copy in /run so the image keeps no trace of provisioning and
# nothing holds a file open on / when it is remounted read-only at the end.
if [ "$0" != /run/vmlab-provision ]; then
  mount -t tmpfs tmpfs /run 2>/dev/null || true
  cp "$0" /run/vmlab-provision
  exec /bin/sh /run/vmlab-provision
fi
finish() {
  set +e
  sync
${uefi ? "  umount /boot/efi 2>/dev/null\n" : ""}  umount /boot 2>/dev/null
  mount -o remount,ro / 2>/dev/null
  echo "$1"
  echo o > /proc/sysrq-trigger
  sleep 30
}
trap 'finish VMLAB-PROVISION-FAILED' EXIT
set -ex
mount -t proc proc /proc || true
mount -t sysfs sysfs /sys || true
mount -t devtmpfs devtmpfs /dev || true
mount -o remount,rw /
mount /boot
${[...esps, ...(uefi ? ["mount /boot/efi"] : [])].join("\n")}
${lvm}
# The initramfs is built here, on the guest's own hardware: MODULES=dep
# needs to see the real root device, which a build chroot cannot.
update-initramfs -u -k all
${grub}
update-grub
rm -f /usr/local/sbin/vmlab-provision
trap - EXIT
finish VMLAB-PROVISION-OK
`;
}

export function grubDefaults(recipe: ImageRecipe): string {
  return `# Written by vmlab: GRUB and the kernel talk on the serial console.
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_TIMEOUT_STYLE=hidden
GRUB_DISTRIBUTOR=\`lsb_release -i -s 2> /dev/null || echo Debian\`
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="${recipe.kernelCmdline}"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB_DISABLE_RECOVERY=true
`;
}

export async function customizeTree(tree: string, recipe: ImageRecipe, publicKey: string, parts: PlannedPartition[]): Promise<void> {
  const fstab = ["# Written by vmlab. <file system> <mount point> <type> <options> <dump> <pass>"];
  for (const p of parts) {
    if (!p.fs) continue;
    const root = p.fs.mount === "/";
    const options = root ? "errors=remount-ro" : p.fs.type === "vfat" ? "umask=0077" : "defaults";
    fstab.push(`LABEL=${p.fs.label}\t${p.fs.mount}\t${p.fs.type}\t${options}\t0\t${root ? 1 : 2}`);
  }
  // A swap area that is gone costs 20 s of boot instead of systemd's default 90 s.
  for (const p of parts) if (p.swap) fstab.push(`LABEL=${p.swap.label}\tnone\tswap\tsw,x-systemd.device-timeout=20s\t0\t0`);
  await writeFile(join(tree, "etc/fstab"), fstab.join("\n") + "\n");
  await writeFile(join(tree, "etc/hostname"), `${recipe.hostname}\n`);
  await writeFile(join(tree, "etc/hosts"), `127.0.0.1\tlocalhost\n127.0.1.1\t${recipe.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
  await mkdir(join(tree, "root/.ssh"), { recursive: true, mode: 0o700 });
  await writeFile(join(tree, "root/.ssh/authorized_keys"), `${publicKey}\n`, { mode: 0o600 });
  await writeFile(join(tree, "etc/default/grub"), grubDefaults(recipe));
  await mkdir(join(tree, "etc/systemd/network"), { recursive: true });
  await writeFile(join(tree, "etc/systemd/network/10-lab.network"), "[Match]\nName=eth0 en*\n\n[Network]\nDHCP=ipv4\n");
  // The same as the kernel's norandmaps (src/image/debian12.ts), for a kernel booted without it.
  await writeFile(join(tree, "etc/sysctl.d/50-vmlab.conf"), "# Written by vmlab: no address-space randomisation; under TCG it costs a retranslation per exec.\nkernel.randomize_va_space = 0\n");
  await writeFile(join(tree, "etc/ssh/sshd_config.d/vmlab.conf"), "PermitRootLogin prohibit-password\nUseDNS no\n");
  await writeFile(join(tree, "usr/local/sbin/vmlab-provision"), provisionScript(recipe), { mode: 0o755 });
  for (const [k, v] of Object.entries(recipe.initramfs)) {
    await run("sed", ["-i", `s/^${k}=.*/${k}=${v}/`, join(tree, "etc/initramfs-tools/initramfs.conf")]);
  }
  if (recipe.deviceTimeout) {
    await mkdir(join(tree, "etc/systemd/system.conf.d"), { recursive: true });
    await writeFile(join(tree, "etc/systemd/system.conf.d/vmlab.conf"), `# Written by vmlab: how long a boot waits for a device in fstab before emergency mode.\n[Manager]\nDefaultDeviceTimeoutSec=${recipe.deviceTimeout}\n`);
  }
  if (recipe.blacklistModules.length) {
    await writeFile(join(tree, "etc/modprobe.d/vmlab.conf"), recipe.blacklistModules.map((m) => `blacklist ${m}\n`).join(""));
  }
  await run("chroot", [tree, "sh", "-c", `echo 'root:${CONSOLE_ROOT_PASSWORD}' | chpasswd`]);
  await run("systemctl", ["--root", tree, "enable", "systemd-networkd.service"]);
  if (recipe.maskUnits.length) await run("systemctl", ["--root", tree, "mask", ...recipe.maskUnits]);
}


/** One planned disk of a recipe (0 = sda). */
export type PlannedDisk = ReturnType<typeof planPartitions> & { spec: ReturnType<typeof recipeDisks>[number]; di: number };
/** A planned partition tagged with its disk and a key for work files. */
export type TaggedPartition = PlannedPartition & { di: number; key: string };

/** Every disk's partitions, each tagged with its disk (0 = sda) and a key for work files. */
export function planDisks(recipe: ImageRecipe): { planned: PlannedDisk[]; allParts: TaggedPartition[] } {
  const planned = recipeDisks(recipe).map((spec, di) => ({ spec, di, ...planPartitions(spec) }));
  const allParts = planned.flatMap((d) => d.partitions.map((p) => ({ ...p, di: d.di, key: `${d.di}-${p.index}` })));
  return { planned, allParts };
}

/**
 * Raw disks from the tree, without loop devices or root mounts: `sfdisk` on
 * a plain file, `mke2fs -d` per filesystem (deepest mount point first, each
 * moved out of its parent into work/fs-<key>), `mkswap`, and `dd` into place.
 */
export async function assembleDisks(work: string, tree: string, planned: PlannedDisk[], allParts: TaggedPartition[], raws: string[]): Promise<void>
{
  for (const d of planned) {
    await run("truncate", ["-s", String(d.diskBytes), raws[d.di]!]);
    if (d.spec.label !== "none") await run("sfdisk", ["--quiet", raws[d.di]!], { input: sfdiskScript(d.partitions, d.spec.label) });
  }
  const place = async (p: TaggedPartition, img: string) => {
    await run("dd", [`if=${img}`, `of=${raws[p.di]!}`, "bs=1M", `seek=${(p.startSector * SECTOR) / (1 << 20)}`, "conv=notrunc,sparse", "status=none"]);
    await rm(img);
  };
  const fsParts = allParts.filter((p) => p.fs).sort((a, b) => b.fs!.mount.length - a.fs!.mount.length);
  for (const p of fsParts) {
    // An ESP is made in the provisioning boot; here its mount point only has to exist.
    if (p.fs!.type === "vfat") {
      await mkdir(join(tree, p.fs!.mount), { recursive: true });
      continue;
    }
    const src = join(work, `fs-${p.key}`);
    if (p.fs!.mount === "/") {
      await rename(tree, src);
    } else {
      await rename(join(tree, p.fs!.mount), src);
      await mkdir(join(tree, p.fs!.mount));
    }
    const img = join(work, `part-${p.key}.img`);
    await run("truncate", ["-s", String(p.sizeSectors * SECTOR), img]);
    await run("mke2fs", ["-q", "-F", "-t", p.fs!.type, "-L", p.fs!.label, "-d", src, img]);
    await place(p, img);
  }
  for (const p of allParts.filter((x) => x.swap)) {
    const img = join(work, `part-${p.key}.img`);
    await run("truncate", ["-s", String(p.sizeSectors * SECTOR), img]);
    await run("mkswap", ["-L", p.swap!.label, img]);
    await place(p, img);
  }
}
