# A block-for-block copy of the root filesystem, taken with / frozen so that it is whole.
set -eu
lvcreate -q -y -n rootcopy -L 2G sys
sync
fsfreeze -f /
dd if=/dev/sda2 of=/dev/sys/rootcopy bs=4M status=none || { fsfreeze -u /; exit 1; }
fsfreeze -u /
sync
