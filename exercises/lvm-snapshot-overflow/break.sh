# The application's LV, last night's backup, a 16 MiB snapshot, and an "upgrade" that writes 48 MiB.
set -eu
lvcreate -q -y -n app -L 256M sys
mkfs.ext4 -q -L app /dev/sys/app
mkdir -p /srv/app
echo 'LABEL=app /srv/app ext4 defaults 0 2' >> /etc/fstab
mount /srv/app
head -c 24M /dev/urandom > /srv/app/store.db
mkdir -p /srv/app/conf && echo "version=1" > /srv/app/conf/app.conf
(cd /srv/app && find . -type f ! -path './lost+found/*' -print0 | sort -z | xargs -0 sha256sum) > /root/app-backup.sha256
tar -C /srv/app -cf /root/app-backup.tar --exclude=./lost+found .
sync
lvcreate -q -y -s -n app-before-upgrade -L 16M sys/app
# The upgrade: the store rewritten twice over, and a new configuration.
head -c 48M /dev/urandom > /srv/app/store.db
echo "version=2" > /srv/app/conf/app.conf
sync
sleep 2
lvs sys
