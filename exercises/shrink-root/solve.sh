# In the rescue system, as root. The machine's disk has the serial "sda".
set -eu
disk=$(lsblk -dno PATH,SERIAL | awk '$2 == "sda" { print $1 }')
part=${disk}2
e2fsck -fy "$part" || [ $? -le 1 ]
resize2fs "$part" 1400M
echo ',1536MiB' | sfdisk --no-reread -N 2 "$disk"
blockdev --rereadpt "$disk"
resize2fs "$part"
e2fsck -fn "$part"
