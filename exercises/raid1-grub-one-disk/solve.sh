# In the rescue system, as root. The machine's remaining disk has the serial "sdb".
set -eu
disk=$(lsblk -dno PATH,SERIAL | awk '$2 == "sdb" { print $1 }')
test -b "$disk"
cat /proc/mdstat
# The rescue system may have found the arrays by itself (md126, md127, inactive
# with one member of two): stop them, then start both mirrors degraded, under
# their own names, from the one member each has left.
vgchange -an web01-vg 2>/dev/null || true
mdadm --stop --scan
mdadm --assemble --run /dev/md0 "${disk}1"
mdadm --assemble --run /dev/md1 "${disk}2"
vgchange -ay web01-vg
udevadm settle
mkdir -p /mnt/sys-root
mount /dev/web01-vg/root /mnt/sys-root
mount /dev/md0 /mnt/sys-root/boot
for d in dev proc sys; do mount --bind /$d /mnt/sys-root/$d; done
chroot /mnt/sys-root grub-install "$disk"
for d in sys proc dev boot; do umount /mnt/sys-root/$d; done
umount /mnt/sys-root
vgchange -an web01-vg
mdadm --stop /dev/md1 /dev/md0
dd if="$disk" bs=512 count=1 status=none | grep -aq GRUB
