# Nothing is broken: the task is written where the next admin looks.
set -eu
echo "sda2 is to shrink to 1.5 GiB before the disk is cloned" > /root/TODO
sync
