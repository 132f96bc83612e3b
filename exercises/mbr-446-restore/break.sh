# The runbook's backup of the first sector, the accident, and the 446-byte "restore".
set -eu
dd if=/dev/sda of=/root/mbr-sda.bin bs=512 count=1 status=none
sync
dd if=/dev/zero of=/dev/sda bs=512 count=1 conv=fsync status=none
dd if=/root/mbr-sda.bin of=/dev/sda bs=446 count=1 conv=fsync status=none
sync
