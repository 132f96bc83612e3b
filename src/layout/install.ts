/**
 * The script that lays a layout out on blank disks and installs the Debian
 * tree onto it, the way an installer does: partition tables, md arrays,
 * LVM, filesystems with their UUIDs and labels, the tree copied in, fstab in
 * the layout's own style, mdadm.conf, then the initramfs and GRUB from a
 * chroot. It runs as root in the rescue system, booted directly with the
 * lab machine's blank disks and a payload disk that holds the tree. Pure:
 * layout in, bash text out; the names, UUIDs and labels from the layout go
 * into it through `sh` (src/vm/guest-sh.ts), quoted with zx's quote.
 */
import { sh } from "../vm/guest-sh.ts";
import { UsageError } from "../errors.ts";
import { labName } from "./scale.ts";
import type { Layout, LayoutFilesystem } from "./types.ts";

/** The serial (lab disk id) of each layout disk, in order: the script finds the disks by it. */
export function layoutDiskIds(layout: Layout): string[] {
  return layout.disks.map((_, i) => `layout${i}`);
}

export const PAYLOAD_DISK_ID = "payload";
export const TARGET = "/mnt/target";

/** A device of the layout as the script names it: a shell expression. */
function devExpr(layout: Layout, device: string): string {
  const di = layout.disks.findIndex((d) => d.name === device);
  if (di >= 0) return `"$D${di}"`;
  for (const [i, d] of layout.disks.entries()) {
    const p = d.partitions.find((x) => x.name === device);
    if (p) return `"$(part "$D${i}" ${p.number})"`;
  }
  if (layout.raids.some((r) => r.name === device)) return `/dev/${device}`;
  if (device.includes("/")) return `/dev/${device}`;
  throw new UsageError(`the layout names ${device}, which it does not define`);
}

/** An fstab line in the layout's own style, with device names moved to the lab's. */
export function fstabLine(layout: Layout, f: LayoutFilesystem): string {
  const e = f.fstab;
  const mount = f.type === "swap" ? "none" : f.mount!;
  let spec: string;
  if (!e) spec = f.uuid ? `UUID=${f.uuid}` : `/dev/${labName(layout, f.device)}`;
  else if (e.by === "device" && /^\/dev\/(sd|vd|hd|xvd|nvme)/.test(e.spec)) spec = `/dev/${labName(layout, f.device)}`;
  else spec = e.spec;
  const type = e?.type ?? f.type;
  const options = e?.options ?? (f.type === "swap" ? "sw" : "defaults");
  const pass = e?.pass ?? (f.mount === "/" ? 1 : 2);
  return `${spec}\t${mount}\t${type}\t${options}\t${e?.dump ?? 0}\t${f.type === "swap" ? 0 : pass}`;
}

function mkfs(layout: Layout, f: LayoutFilesystem): string {
  const dev = devExpr(layout, f.device);
  const u = f.uuid;
  const l = f.label;
  switch (f.type) {
    case "ext2":
    case "ext3":
    case "ext4":
      return `mkfs.${f.type} -q -F${u ? sh` -U ${u}` : ""}${l ? sh` -L ${l}` : ""} ${dev}`;
    case "xfs":
      return `mkfs.xfs -q -f${u ? sh` -m uuid=${u}` : ""}${l ? sh` -L ${l}` : ""} ${dev}`;
    case "btrfs":
      return `mkfs.btrfs -q -f${u ? sh` -U ${u}` : ""}${l ? sh` -L ${l}` : ""} ${dev}`;
    case "vfat":
      return `mkfs.vfat${u ? sh` -i ${u.replace("-", "")}` : ""}${l ? sh` -n ${l}` : ""} ${dev}`;
    case "swap":
      return `mkswap${u ? sh` -U ${u}` : ""}${l ? sh` -L ${l}` : ""} ${dev}`;
  }
}

/** sfdisk's input for one disk of the layout; `device(n)` names partition n (a shell expression in the script). */
export function sfdiskInput(layout: Layout, di: number, device: (n: number) => string): string {
  const d = layout.disks[di]!;
  const lines = [`label: ${d.table === "msdos" ? "dos" : "gpt"}`, "unit: sectors", ""];
  for (const p of [...d.partitions].sort((a, b) => a.number - b.number)) {
    const fields = [`start=${p.start}`, `size=${p.size / 512}`, `type=${p.type}`];
    if (p.partName && d.table === "gpt") fields.push(`name=${JSON.stringify(p.partName)}`);
    if (p.bootable && d.table === "msdos") fields.push("bootable");
    lines.push(`${device(p.number)} : ${fields.join(", ")}`);
  }
  return lines.join("\n") + "\n";
}

/** The whole script. */
export function installScript(layout: Layout): string {
  const ids = layoutDiskIds(layout);
  const out: string[] = [
    "set -euo pipefail",
    "export LC_ALL=C DEBIAN_FRONTEND=noninteractive",
    "exec 2>&1",
    "set -x",
    // A disk by its serial (the lab disk id), waiting for the kernel to list it.
    `bydisk() { for i in $(seq 60); do d=$(lsblk -dno NAME,SERIAL | awk -v s="$1" '$2 == s { print $1 }'); if [ -n "$d" ]; then echo "/dev/$d"; return 0; fi; sleep 1; done; echo "no disk with serial $1" >&2; return 1; }`,
    // Partition N of a disk: sda1, nvme0n1p1.
    `part() { case "$1" in *[0-9]) echo "$1p$2" ;; *) echo "$1$2" ;; esac; }`,
    ...ids.map((id, i) => `D${i}=$(bydisk ${id})`),
    `P=$(bydisk ${PAYLOAD_DISK_ID})`,
    "mdadm --stop --scan || true",
  ];
  // Partition tables.
  layout.disks.forEach((d, i) => {
    out.push(`wipefs -a -q "$D${i}"`);
    if (d.table === "none") return;
    const input = sfdiskInput(layout, i, (n) => `$(part "$D${i}" ${n})`);
    out.push(`sfdisk -q --no-reread --wipe always --wipe-partitions always "$D${i}" <<EOF\n${input}EOF`);
  });
  out.push("partprobe 2>/dev/null || true; udevadm settle");
  // Arrays.
  for (const r of layout.raids) {
    const [home, name] = r.mdName?.includes(":") ? r.mdName.split(":") : [undefined, r.mdName];
    const clean = r.level === "raid1" || r.level === "raid10" ? " --assume-clean" : "";
    out.push(
      `mdadm --create /dev/${r.name} --run${clean} --level=${r.level} --raid-devices=${r.devices.length}${r.metadata ? sh` --metadata=${r.metadata}` : ""}${r.uuid ? sh` --uuid=${r.uuid}` : ""}${name ? sh` --name=${name}` : ""}${home ? sh` --homehost=${home}` : ""} ${r.devices.map((m) => devExpr(layout, m)).join(" ")}`,
    );
  }
  if (layout.raids.length) out.push("udevadm settle");
  // LVM.
  for (const v of layout.vgs) {
    for (const pv of v.pvs) out.push(`pvcreate -ff -y${pv.uuid ? sh` --uuid ${pv.uuid} --norestorefile` : ""} ${devExpr(layout, pv.device)}`);
    out.push(`${sh`vgcreate -y -s ${v.extentSize}b ${v.name}`} ${v.pvs.map((p) => devExpr(layout, p.device)).join(" ")}`);
    for (const lv of v.lvs.filter((x) => x.type === "thin-pool")) out.push(sh`lvcreate -y -W y -Z y --type thin-pool -L ${lv.size}b -n ${lv.name} ${v.name}`);
    for (const lv of v.lvs.filter((x) => x.type === "linear" || x.type === "striped")) out.push(sh`lvcreate -y -W y -Z y -L ${lv.size}b -n ${lv.name} ${v.name}`);
    for (const lv of v.lvs.filter((x) => x.type === "thin")) out.push(sh`lvcreate -y -V ${lv.size}b -T ${`${v.name}/${lv.pool ?? ""}`} -n ${lv.name}`);
  }
  if (layout.vgs.length) out.push("udevadm settle");
  // Filesystems, then mounted in order of their mount points.
  for (const f of layout.filesystems) out.push(mkfs(layout, f));
  const mounted = layout.filesystems.filter((f) => f.mount && f.type !== "swap").sort((a, b) => a.mount!.split("/").filter(Boolean).length - b.mount!.split("/").filter(Boolean).length);
  for (const f of mounted) {
    const dir = `${TARGET}${f.mount === "/" ? "" : f.mount}`;
    out.push(`${sh`mkdir -p ${dir}`} && mount ${devExpr(layout, f.device)} ${sh`${dir}`}`);
  }
  // The tree, from the payload disk.
  out.push("mkdir -p /mnt/payload && mount -o ro \"$P\" /mnt/payload", `cp -a /mnt/payload/. ${TARGET}/`, "umount /mnt/payload");
  // fstab in the layout's style; mdadm.conf as the installer writes it.
  const fstab = ["# /etc/fstab: written by vmlab from the layout (the production machine's own style).", ...layout.filesystems.filter((f) => f.mount || f.type === "swap").map((f) => fstabLine(layout, f))];
  out.push(`cat > ${TARGET}/etc/fstab <<'EOF'\n${fstab.join("\n")}\nEOF`);
  if (layout.raids.length) {
    out.push(`mkdir -p ${TARGET}/etc/mdadm && { echo 'HOMEHOST <system>'; echo 'MAILADDR root'; mdadm --detail --scan; } > ${TARGET}/etc/mdadm/mdadm.conf`);
  }
  // The initramfs (MODULES=dep sees the real devices from here) and GRUB, from a chroot.
  const grubDisks = layout.disks.map((d, i) => (d.grub ? `"$D${i}"` : "")).filter(Boolean);
  if (layout.firmware === "uefi") throw new UsageError("a UEFI layout cannot be built yet: the layout builder installs GRUB for BIOS only", { hint: "import it for its disks, or rehearse on a BIOS layout" });
  if (!grubDisks.length) grubDisks.push('"$D0"');
  out.push(
    `for d in dev proc sys run; do mount --bind /$d ${TARGET}/$d; done`,
    `chroot ${TARGET} /bin/sh -ec 'for k in $(ls /lib/modules); do if [ -e /boot/initrd.img-$k ]; then update-initramfs -u -k $k; else update-initramfs -c -k $k; fi; done'`,
    ...grubDisks.map((d) => `chroot ${TARGET} grub-install --target=i386-pc ${d}`),
    `chroot ${TARGET} update-grub`,
    `for d in run sys proc dev; do umount -l ${TARGET}/$d; done`,
    `sync; umount -R ${TARGET}`,
    ...layout.vgs.map((v) => sh`vgchange -an ${v.name}`),
    layout.raids.length ? "mdadm --stop --scan" : "true",
    "sync",
    "echo VMLAB-LAYOUT-INSTALLED",
  );
  return out.join("\n") + "\n";
}
