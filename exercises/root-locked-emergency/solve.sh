# In the rescue system, as root.
set -eu
vgchange -ay sys
blkid /dev/sys/archive
mkdir -p /mnt/target
mount LABEL=root /mnt/target
sed -i -E 's|^(LABEL=archive[[:space:]]+/srv/archive[[:space:]]+)xfs|\1ext4|' /mnt/target/etc/fstab
grep archive /mnt/target/etc/fstab
chroot /mnt/target passwd -u root
umount /mnt/target
vgchange -an sys
