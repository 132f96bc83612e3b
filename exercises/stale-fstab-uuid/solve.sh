# Typed on the serial console, at emergency mode's password prompt.
vmlab
mount -o remount,rw /
sed -i 's|^UUID=3f1c9b0e-5b7a-4f0e-9a57-1d0c2b7e9e41 |LABEL=boot |' /etc/fstab
mount /boot
sync
