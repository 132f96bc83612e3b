# On the machine, as root. The copy is not mounted.
set -eu
e2fsck -fy /dev/sys/rootcopy || [ $? -le 1 ]
tune2fs -U random -L rootcopy /dev/sys/rootcopy
blkid /dev/sda2 /dev/sys/rootcopy
