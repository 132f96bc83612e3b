import { scenario } from "../src/scenario/types.ts";
import type { Machine } from "../src/vm/machine.ts";
import { VmlabError } from "../src/errors.ts";
import { dmName, expectNothingLeft, lvsTable, removeSnapshot, takeSnapshot } from "../src/procedures/lvm-snapshot.ts";
import { attachAtOffset, partition, readPartitionTable } from "../src/procedures/offset-mount.ts";
import { expectTree, treeSums, type TreeSums } from "../src/procedures/tree.ts";

const HOST_VG = "sys";
/** The VM was installed from the same template as the host: its VG is called `sys` too. */
const NESTED_VG = "sys";
const NESTED_LV = "root";
/** The name the snapshot's copy of the nested VG gets on the host. */
const CLONE_VG = "vm02sys";
const LV = "vm02";
const SNAP = "vm02-snap";
const IMAGE = "/var/lib/vmlab/vm02.raw";
const VM_ROOT = "/mnt/vm02";
const SNAP_MOUNT = "/mnt/vm02-snap";

/** `vgs` rows, with the warnings LVM prints about them. */
async function vgsWithUuids(vm: Machine): Promise<{ rows: { name: string; uuid: string; pv: string }[]; warnings: string }> {
  const r = await vm.run("vgs --noheadings -o vg_name,vg_uuid,pv_name");
  const rows = r.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3)
    .map(([name, uuid, pv]) => ({ name: name!, uuid: uuid!, pv: pv! }));
  return { rows, warnings: r.stderr.trim() };
}

/**
 * A VM disk on LV sys/vm02 whose partition 1 is itself an LVM PV, with the
 * VM's own VG inside, and that VG is called `sys` like the host's. Reach it
 * from a snapshot through a loop device at partition 1's offset: LVM then
 * sees two VGs named `sys` and refuses to activate either by name, the host's
 * own included. Rename the snapshot's copy with `vgimportclone` (it writes
 * only to the snapshot, never to the VM's disk), activate it, mount its LV
 * read-only and verify every file; then detach everything.
 */
export default scenario({
  name: "lv-snapshot-nested-lvm",
  description: "a VM disk on an LV holding its own VG named like the host's: reach it by offset, resolve the name clash with vgimportclone",
  image: "debian12-bios",
  expect: { final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  tags: ["lvm", "snapshot", "dr", "offset", "nested"],
  runbook: "lv-snapshot-offset-mount.es.txt",
  async run(ctx) {
    const { vm, step, record, log, data } = ctx;
    let before: TreeSums = {};

    await step(`the VM's disk image: msdos table, p1 an LVM PV in VG ${NESTED_VG}, LV ${NESTED_LV} ext4 with files`, async () => {
      // The VM's installer saw only its own disk. LVM is restricted to the image's partition
      // (--devices) to do the same, before the host VG has any active LV: vgcreate refuses a
      // name whose /dev/NAME directory already exists.
      await vm.succeed(`test ! -e /dev/${NESTED_VG}`, { hint: `VG ${HOST_VG} already has active LVs; build the VM image before creating any` });
      const loop = (
        await vm.succeed(`mkdir -p $(dirname ${IMAGE}) && truncate -s 96M ${IMAGE} && sfdisk --quiet ${IMAGE} >/dev/null && losetup --find --show -P ${IMAGE}`, {
          input: "label: dos\nstart=2048, type=8e\n",
        })
      ).trim();
      const pv = `${loop}p1`;
      await vm.succeed(`set -e; udevadm settle
pvcreate -y --devices ${pv} ${pv}
vgcreate --devices ${pv} ${NESTED_VG} ${pv}
lvcreate -y --devices ${pv} -n ${NESTED_LV} -L 48M ${NESTED_VG}
mkfs.ext4 -q -L vm02-root /dev/${NESTED_VG}/${NESTED_LV}
mkdir -p ${VM_ROOT} && mount /dev/${NESTED_VG}/${NESTED_LV} ${VM_ROOT}
cd ${VM_ROOT} && mkdir -p etc var/lib/db && echo vm02 > etc/hostname && head -c 1M /dev/urandom > var/lib/db/orders.db && sync`);
      before = await treeSums(vm, VM_ROOT);
      record("nestedFiles", before);
      await vm.succeed(`umount ${VM_ROOT} && vgchange --devices ${pv} -an ${NESTED_VG} && losetup -d ${loop}`);
    });
    let vmDiskSum = "";
    await step(`import the image onto LV ${HOST_VG}/${LV}`, async () => {
      await vm.succeed(`lvcreate -y -n ${LV} -L 96M ${HOST_VG} && dd if=${IMAGE} of=/dev/${HOST_VG}/${LV} bs=4M conv=fsync status=none && rm ${IMAGE}`);
      vmDiskSum = (await vm.succeed(`sha256sum /dev/${HOST_VG}/${LV}`)).split(" ")[0]!;
    });
    await step(`snapshot ${HOST_VG}/${SNAP} 32M`, () => takeSnapshot(vm, { vg: HOST_VG, origin: LV, name: SNAP, size: "32M" }));

    const snapDev = `/dev/${HOST_VG}/${SNAP}`;
    let loop = "";
    await step("loop device at partition 1's offset in the snapshot", async () => {
      const t = await readPartitionTable(vm, snapDev);
      const p1 = partition(t, 1);
      record("partitionTable", { label: t.label, sectorSize: t.sectorSize, partitions: t.partitions });
      // Writable on purpose: vgimportclone rewrites the PV and VG metadata, and on a snapshot
      // those writes land in the copy-on-write space, never on the VM's disk.
      loop = await attachAtOffset(vm, snapDev, p1);
      log(`${loop}: ${snapDev} from byte ${p1.offsetBytes} (sector ${p1.start} × ${t.sectorSize}), type ${p1.type}`);
    });

    await step(`pvscan/vgscan: two VGs called ${NESTED_VG}, and LVM refuses the name`, async () => {
      await vm.succeed("pvscan --cache >/dev/null 2>&1; vgscan");
      const vgs = await vgsWithUuids(vm);
      const same = vgs.rows.filter((r) => r.name === NESTED_VG);
      const activate = await vm.run(`vgchange -ay ${HOST_VG}`);
      log(vgs.warnings);
      log(`vgchange -ay ${HOST_VG}: exit ${activate.exitCode}: ${activate.stderr.trim().split("\n").at(-2) ?? ""}`);
      if (same.length !== 2 || !same.some((r) => r.pv === loop) || activate.exitCode === 0) {
        throw new VmlabError(`the lab did not see the VG name clash on ${NESTED_VG}`, {
          output: `vgs:\n${vgs.rows.map((r) => `${r.name} ${r.uuid} ${r.pv}`).join("\n")}\n${vgs.warnings}\nvgchange -ay ${HOST_VG}: exit ${activate.exitCode}\n${activate.stderr}`,
          hint: `the nested PV on ${loop} must carry a VG named ${NESTED_VG}; check the image step`,
        });
      }
      record("nameClash", { vgs: same, warnings: vgs.warnings, vgchange: { command: `vgchange -ay ${HOST_VG}`, exitCode: activate.exitCode, stderr: activate.stderr.trim() } });
    });

    await step(`resolve: vgimportclone --basevgname ${CLONE_VG} on the loop device, activate, mount read-only, verify`, async () => {
      const hostUuid = (await vgsWithUuids(vm)).rows.find((r) => r.name === HOST_VG && r.pv !== loop)?.uuid;
      await vm.succeed(`vgimportclone --basevgname ${CLONE_VG} ${loop}`, { hint: "vgimportclone needs a writable device: the loop device must not be --read-only" });
      const vgs = await vgsWithUuids(vm);
      const clone = vgs.rows.find((r) => r.name === CLONE_VG);
      const host = vgs.rows.filter((r) => r.name === HOST_VG);
      if (!clone || clone.pv !== loop || host.length !== 1 || host[0]!.uuid !== hostUuid || /WARNING: VG name/.test(vgs.warnings)) {
        throw new VmlabError("after vgimportclone the VG names still clash", {
          output: `${vgs.rows.map((r) => `${r.name} ${r.uuid} ${r.pv}`).join("\n")}\n${vgs.warnings}`,
          hint: `expected ${CLONE_VG} on ${loop} and the host's ${HOST_VG} unchanged`,
        });
      }
      await vm.succeed(`vgchange -ay ${CLONE_VG} && mkdir -p ${SNAP_MOUNT} && mount -o ro /dev/${CLONE_VG}/${NESTED_LV} ${SNAP_MOUNT}`);
      const files = await expectTree(vm, SNAP_MOUNT, before, `the nested LV ${CLONE_VG}/${NESTED_LV}`, "the snapshot must hold the VM disk as imported");
      record("resolved", { clone, host: host[0], hostVgActivates: (await vm.run(`vgchange -ay ${HOST_VG}`)).exitCode === 0, files, lvs: await lvsTable(vm, CLONE_VG) });
    });

    await step("the machine's own data set is intact", async () => record("data", await data.expectIntact(vm)));
    await step("tear down: unmount, deactivate the nested VG, detach the loop device, remove the snapshot", async () => {
      await vm.succeed(`umount ${SNAP_MOUNT} && vgchange -an ${CLONE_VG} && losetup -d ${loop}`);
      await removeSnapshot(vm, HOST_VG, SNAP);
      const left = await expectNothingLeft(vm, [dmName(CLONE_VG), dmName(HOST_VG, SNAP)]);
      const vgs = await vgsWithUuids(vm);
      if (vgs.rows.some((r) => r.name === CLONE_VG)) throw new VmlabError(`VG ${CLONE_VG} is still visible after its loop device was detached`, { output: vgs.rows.map((r) => r.name).join("\n"), hint: "`pvscan --cache` refreshes LVM's view" });
      const sumAfter = (await vm.succeed(`sha256sum /dev/${HOST_VG}/${LV}`)).split(" ")[0]!;
      if (sumAfter !== vmDiskSum) throw new VmlabError(`the VM's disk ${HOST_VG}/${LV} changed`, { output: `${vmDiskSum} before\n${sumAfter} after`, hint: "vgimportclone must run on the snapshot's loop device, never on the VM's disk" });
      record("leftBehind", { ...left, vgs: vgs.rows.map((r) => r.name) });
      record("vmDisk", { lv: `${HOST_VG}/${LV}`, sha256Before: vmDiskSum, sha256After: sumAfter });
    });
  },
});
