# GRUB on the first disk only, as the installer left it: the second disk's boot code goes.
set -eu
second=$(lsblk -dno PATH,SERIAL | awk '$2 == "sdb" { print $1 }')
test -b "$second"
dd if=/dev/zero of="$second" bs=440 count=1 conv=fsync status=none
sync
# Then the first disk dies: the lab pulls it (the pulled-disk fault).
