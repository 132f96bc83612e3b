# /boot's fstab entry names a UUID no filesystem has, the way a hand edit after
# a mkfs leaves it.
set -eu
# Wait 15 s for a device that never comes, not 90 s: the failure is the same.
mkdir -p /etc/systemd/system.conf.d
printf '[Manager]\nDefaultDeviceTimeoutSec=15s\n' > /etc/systemd/system.conf.d/vmlab-device-timeout.conf
awk '$2 == "/boot" { $1 = "UUID=3f1c9b0e-5b7a-4f0e-9a57-1d0c2b7e9e41" } { print }' /etc/fstab > /etc/fstab.new
mv /etc/fstab.new /etc/fstab
grep -q '^UUID=3f1c9b0e-5b7a-4f0e-9a57-1d0c2b7e9e41 /boot ' /etc/fstab
sync
