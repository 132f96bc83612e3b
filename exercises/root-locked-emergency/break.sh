# An archive LV in fstab with the wrong filesystem type, and root's password locked:
# emergency mode comes, and refuses its shell.
set -eu
lvcreate -q -y -n archive -L 64M sys
mkfs.ext4 -q -L archive /dev/sys/archive
mkdir -p /srv/archive
echo 'LABEL=archive /srv/archive xfs defaults 0 2' >> /etc/fstab
passwd -l root
sync
