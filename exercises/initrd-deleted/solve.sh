# In the rescue system, as root.
set -eu
mkdir -p /mnt/target
mount LABEL=root /mnt/target
mount LABEL=boot /mnt/target/boot
for d in dev proc sys; do mount --bind /$d /mnt/target/$d; done
chroot /mnt/target update-initramfs -c -k all
ls -l /mnt/target/boot/initrd.img-*
umount -R /mnt/target
