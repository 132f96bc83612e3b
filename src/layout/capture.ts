/**
 * `vmlab layout capture`: the POSIX sh script a user runs as root on a
 * production machine to record its storage layout. Every command in it only
 * reads; it writes one directory of the commands' plain outputs (and, with
 * `--tar`, a .tar.gz of it), each file named after the command, which
 * `vmlab layout import` reads. It collects no file contents other than
 * /etc/fstab, mdadm.conf and /etc/crypttab.
 */

/** What the capture writes, file by file: the README's table and `vmlab layout capture --list` come from here. */
export const CAPTURED_FILES: { file: string; from: string }[] = [
  { file: "lsblk.json", from: "lsblk --json --bytes -O" },
  { file: "sfdisk-DISK.dump", from: "sfdisk -d /dev/DISK, for each disk lsblk lists (type disk)" },
  { file: "pvs.json", from: "pvs --reportformat json --units b --nosuffix -o pv_name,vg_name,pv_size,dev_size,pv_uuid" },
  { file: "vgs.json", from: "vgs --reportformat json --units b --nosuffix -o vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,pv_count,lv_count" },
  { file: "lvs.json", from: "lvs -a --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_size,lv_uuid,lv_attr,segtype,pool_lv,origin,stripes,devices" },
  { file: "mdadm-detail-scan.txt", from: "mdadm --detail --scan --verbose" },
  { file: "mdstat.txt", from: "cat /proc/mdstat" },
  { file: "fstab", from: "a copy of /etc/fstab" },
  { file: "mdadm.conf", from: "a copy of /etc/mdadm/mdadm.conf or /etc/mdadm.conf, where there is one" },
  { file: "crypttab", from: "a copy of /etc/crypttab, where there is one" },
  { file: "firmware.txt", from: "uefi when /sys/firmware/efi exists, else bios" },
  { file: "bootloader.txt", from: "for each disk, whether its first sector carries GRUB's boot code; efibootmgr -v where present" },
  { file: "capture.txt", from: "when, on which host (uname -n, uname -r), which commands were missing or failed" },
];

/** The capture script. Only reads; needs sh, lsblk, and what a Debian, Ubuntu or RHEL server has. */
export function captureScript(o: { tar?: boolean } = {}): string {
  return `#!/bin/sh
# vmlab layout capture: records this machine's storage layout for
# \`vmlab layout import\`. Run it as root. Every command here only reads;
# it writes one directory of the commands' outputs${o.tar ? " and a .tar.gz of it" : ""}, and collects
# no file contents other than /etc/fstab, mdadm.conf and /etc/crypttab.
#
#   sh vmlab-capture.sh [DIR]      (default: ./vmlab-layout-HOSTNAME)
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH LC_ALL=C
if [ "$(id -u)" != 0 ]; then
  echo "vmlab layout capture: run this as root (sfdisk -d and the LVM reports need it)" >&2
  exit 2
fi
host=$(uname -n)
out=\${1:-./vmlab-layout-$host}
if [ -e "$out" ]; then
  echo "vmlab layout capture: $out already exists; give another directory" >&2
  exit 2
fi
mkdir -p "$out" || exit 2
notes="$out/capture.txt"
{
  echo "vmlab-capture 1"
  echo "host $host"
  echo "kernel $(uname -r)"
  echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$notes"
have() { command -v "$1" >/dev/null 2>&1; }
# record FILE COMMAND...: the command's standard output into FILE; a missing
# command or a failure is written to capture.txt, never fatal.
record() {
  f=$1; shift
  if ! have "$1"; then echo "missing $1" >> "$notes"; return 0; fi
  if "$@" > "$out/$f" 2>> "$out/capture.err"; then return 0; fi
  echo "failed $f: $*" >> "$notes"
}
record lsblk.json lsblk --json --bytes -O
for d in $(lsblk -dnpo NAME,TYPE 2>/dev/null | awk '$2 == "disk" { print $1 }'); do
  case $d in /dev/zram*|/dev/loop*|/dev/sr*|/dev/fd*) continue ;; esac
  record "sfdisk-\${d#/dev/}.dump" sfdisk -d "$d"
done
if have lvm; then
  record pvs.json lvm pvs --reportformat json --units b --nosuffix -o pv_name,vg_name,pv_size,dev_size,pv_uuid
  record vgs.json lvm vgs --reportformat json --units b --nosuffix -o vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,pv_count,lv_count
  record lvs.json lvm lvs -a --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_size,lv_uuid,lv_attr,segtype,pool_lv,origin,stripes,devices
else
  echo "missing lvm" >> "$notes"
fi
if [ -r /proc/mdstat ]; then cat /proc/mdstat > "$out/mdstat.txt"; fi
if have mdadm && grep -q '^md' /proc/mdstat 2>/dev/null; then
  record mdadm-detail-scan.txt mdadm --detail --scan --verbose
fi
[ -r /etc/fstab ] && cat /etc/fstab > "$out/fstab"
for f in /etc/mdadm/mdadm.conf /etc/mdadm.conf; do
  if [ -r "$f" ]; then cat "$f" > "$out/mdadm.conf"; break; fi
done
[ -r /etc/crypttab ] && cat /etc/crypttab > "$out/crypttab"
if [ -d /sys/firmware/efi ]; then echo uefi > "$out/firmware.txt"; else echo bios > "$out/firmware.txt"; fi
{
  for d in $(lsblk -dnpo NAME,TYPE 2>/dev/null | awk '$2 == "disk" { print $1 }'); do
    case $d in /dev/zram*|/dev/loop*|/dev/sr*|/dev/fd*) continue ;; esac
    # GRUB's boot.img carries the string "GRUB" in the first sector.
    if dd if="$d" bs=512 count=1 2>/dev/null | tr -d '\\000' | grep -q GRUB; then
      echo "mbr \${d#/dev/} grub"
    else
      echo "mbr \${d#/dev/} none"
    fi
  done
  if [ -d /sys/firmware/efi ] && have efibootmgr; then
    efibootmgr -v 2>/dev/null | sed 's/^/efi /'
  fi
} > "$out/bootloader.txt"
[ -s "$out/capture.err" ] || rm -f "$out/capture.err"
${o.tar ? `tar -czf "$out.tar.gz" -C "$(dirname "$out")" "$(basename "$out")" || exit 1
echo "vmlab layout capture: wrote $out and $out.tar.gz; copy it to the lab and run: vmlab layout import $out.tar.gz"` : `echo "vmlab layout capture: wrote $out; copy it to the lab and run: vmlab layout import $out"`}
`;
}
