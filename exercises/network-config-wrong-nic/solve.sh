# Typed on the serial console, at the login prompt.
root
vmlab
sed -i 's/^Name=eth1$/Name=eth0 en*/' /etc/systemd/network/10-lab.network
networkctl reload
sync
