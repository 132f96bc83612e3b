# In the rescue system, as root. The machine's disk has the serial "sda".
set -eu
disk=$(lsblk -dno PATH,SERIAL | awk '$2 == "sda" { print $1 }')
mkdir -p /mnt/old
mount -o ro,offset=$((411648 * 512)) "$disk" /mnt/old
dd if=/mnt/old/root/mbr-sda.bin of="$disk" bs=512 count=1 conv=fsync
umount /mnt/old
# The offset mount's loop device lets go of the disk a moment after the umount: then the kernel reads the table again.
udevadm settle
for try in 1 2 3 4 5; do blockdev --rereadpt "$disk" && break; sleep 1; done
sfdisk -d "$disk"
