# On the machine, as root.
set -eu
lvs sys
lvremove -y sys/app-before-upgrade
tar -C /srv/app -xf /root/app-backup.tar
(cd /srv/app && sha256sum -c /root/app-backup.sha256)
sync
