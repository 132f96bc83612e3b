import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import { dmName, expectNothingLeft, lvsTable, removeSnapshot, takeSnapshot } from "../src/procedures/lvm-snapshot.ts";
import { expectDirectMountFails, mountAtOffset, partition, readPartitionTable } from "../src/procedures/offset-mount.ts";
import { expectTree, treeSums, type TreeSums } from "../src/procedures/tree.ts";

/*
 * The VM disk lives in the guest's own VG `sys` (on /dev/sda3, all free in
 * the image), the way a KVM host keeps each VM's disk as an LV of its system
 * VG, so the snapshot and the offset mount go through the same device-mapper
 * stack as on such a host; no loop file is needed for the LV itself.
 */
const VG = "sys";
const LV = "vm01";
const SNAP = "vm01-snap";
const VM_ROOT = "/mnt/vm01";
const SNAP_MOUNT = "/mnt/vm01-snap";

/**
 * Back up a running VM whose disk is an LV: snapshot the LV, read the
 * partition table inside the snapshot in sectors, and mount partition 1 read-
 * only at its byte offset (start × 512). Mounting the snapshot itself fails,
 * because it starts with a partition table, not a filesystem.
 */
export default scenario({
  name: "lv-snapshot-offset-mount",
  description: "snapshot an LV holding a partitioned VM disk and mount partition 1 by byte offset; the direct mount fails",
  image: "debian12-bios",
  expect: { final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  tags: ["lvm", "snapshot", "dr", "offset"],
  runbook: "lv-snapshot-offset-mount.es.txt",
  async run(ctx) {
    const { vm, step, record, log, data } = ctx;
    let vmLoop = "";
    let before: TreeSums = {};

    await step(`LV ${VG}/${LV} 64M holding a VM disk: msdos table, p1 ext4 (boot), p2 swap`, async () => {
      await vm.succeed(`lvcreate -y -n ${LV} -L 64M ${VG}`);
      // A device-mapper device is not partitioned by the kernel: don't ask it to re-read the table.
      await vm.succeed(`sfdisk --quiet --no-reread --no-tell-kernel /dev/${VG}/${LV}`, { input: "label: dos\nstart=2048, size=40M, type=83, bootable\ntype=82\n" });
    });
    await step("the running VM: its disk partitioned through a loop device, ext4 on p1, files", async () => {
      // What the VM sees as /dev/vda: a loop device over the LV with its partitions scanned (-P).
      vmLoop = (await vm.succeed(`losetup --find --show -P /dev/${VG}/${LV}`)).trim();
      await vm.succeed(`udevadm settle; mkfs.ext4 -q -L vm01-root ${vmLoop}p1 && mkswap -L vm01-swap ${vmLoop}p2 >/dev/null && mkdir -p ${VM_ROOT} && mount ${vmLoop}p1 ${VM_ROOT}`);
      await vm.succeed(`set -e; cd ${VM_ROOT}
mkdir -p etc var/www var/lib/db
echo vm01 > etc/hostname
printf '<h1>vm01</h1>\\n' > var/www/index.html
head -c 1M /dev/urandom > var/lib/db/users.db
echo 'a name with spaces' > 'var/www/about us.txt'
sync`);
      before = await treeSums(vm, VM_ROOT);
      record("filesAtSnapshot", before);
    });
    await step(`snapshot the live disk: fsfreeze, lvcreate -s ${VG}/${SNAP} 32M, thaw`, async () => {
      // The VM's filesystem sits on a loop device above the LV, out of reach of LVM's own freeze:
      // freeze it by hand, so the snapshot holds a clean filesystem that mounts read-only.
      await vm.succeed(`fsfreeze -f ${VM_ROOT} && { lvcreate -y --monitor n -s -n ${SNAP} -L 32M /dev/${VG}/${LV}; rc=$?; fsfreeze -u ${VM_ROOT}; exit $rc; }`, {
        hint: `is there 32M free in VG ${VG}? \`vgs ${VG}\``,
      });
      // The VM keeps working: these changes must not show in the snapshot.
      await vm.succeed(`cd ${VM_ROOT} && echo after > var/www/written-after-snapshot && echo '<h1>vm01 v2</h1>' > var/www/index.html && sync`);
      record("lvs", await lvsTable(vm, VG));
    });

    const snapDev = `/dev/${VG}/${SNAP}`;
    const table = await step("read the snapshot's partition table in sectors (sfdisk --json, fdisk -l -u)", async () => {
      const t = await readPartitionTable(vm, snapDev);
      const p1 = partition(t, 1);
      log(t.fdisk);
      log(`partition 1 starts at sector ${p1.start}: offset ${p1.start} × ${t.sectorSize} = ${p1.offsetBytes} bytes`);
      record("partitionTable", { label: t.label, sectorSize: t.sectorSize, partitions: t.partitions, fdisk: t.fdisk });
      return t;
    });

    await step("mounting the snapshot directly fails", async () => {
      const direct = await expectDirectMountFails(vm, snapDev, SNAP_MOUNT);
      log(`${direct.command}: exit ${direct.exitCode}: ${direct.error}`);
      record("directMount", direct);
    });

    await step("mount partition 1 of the snapshot by offset, read-only, and verify every file", async () => {
      const p1 = partition(table, 1);
      const command = await mountAtOffset(vm, snapDev, p1, SNAP_MOUNT);
      const mount = (await vm.succeed(`findmnt -n -o SOURCE,FSTYPE,OPTIONS ${SNAP_MOUNT}`)).trim();
      if (!/\bro\b/.test(mount)) throw new VmlabError(`${SNAP_MOUNT} is not mounted read-only`, { output: mount, hint: "mount the backup source with -o ro" });
      const after = await expectTree(vm, SNAP_MOUNT, before, "the snapshot mounted by offset", "the offset must be the partition's start sector × the sector size");
      const live = await treeSums(vm, VM_ROOT);
      record("offsetMount", { command, offsetBytes: p1.offsetBytes, sizeBytes: p1.sizeBytes, mount, files: after, liveVmFiles: live });
      log(`${command}: ${Object.keys(after).length} files match; the VM's later writes are not in it`);
    });

    await step("the machine's own data set is intact", async () => record("data", await data.expectIntact(vm)));
    await step("tear down: unmount, remove the snapshot, stop the VM's loop device", async () => {
      // mount -o loop detaches its loop device at umount (autoclear).
      await vm.succeed(`umount ${SNAP_MOUNT}`);
      await removeSnapshot(vm, VG, SNAP);
      await vm.succeed(`umount ${VM_ROOT} && losetup -d ${vmLoop}`);
      record("leftBehind", await expectNothingLeft(vm, [dmName(VG, SNAP)]));
      record("lvsAfter", await lvsTable(vm, VG));
    });
  },
});
