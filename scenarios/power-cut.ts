import { scenario } from "../src/scenario/types.ts";
import flagship from "./root-to-lvm.ts";

/**
 * The power goes out in the middle of the root → LVM copy: QEMU quits (QMP
 * quit) once the `dd` of the old root into the new LV has put 16 MiB on the
 * disk. The cut is counted in bytes the guest wrote, not in seconds, so it
 * falls at the same point of the copy on a fast host and a slow one. The lab
 * powers the machine on through the firmware and checks what a sysadmin
 * would ask first: does it boot, from which root, and is the data there.
 *
 * The copy starts with the superblock, so from its first second two
 * filesystems carry the root's UUID and LABEL, and the next boot takes
 * whichever the kernel finds first. Either is a correct observation, and the
 * lab must tell them apart: the old root `/dev/sda2` (untouched, it was
 * read-only) with the data set intact, the LV if the copy had finished, or the
 * half-made copy in the LV, which the initramfs' fsck stops at. What must
 * never pass is a boot that reached SSH with data lost, or a failure the lab
 * cannot classify. `vmlab sweep root-to-lvm --fault power-cut` maps the other
 * moments.
 */
export default scenario({
  name: "power-cut",
  description: "power cut (QMP quit) once the dd of / into LVM has written 16 MiB: old root with data intact, or the half copy stopped by fsck",
  image: "debian12-bios",
  expect: {
    failure: [
      {
        says: "the cut fell inside the copy and stopped it; the old root /dev/sda2 booted with the data intact, and the LV holds a half copy",
        fault: { name: "power-cut", stoppedProcedure: true, writtenBelowFact: "copyBytes" },
        boot: { outcome: "ssh" },
        root: { which: "old", device: "/dev/sda2" },
        data: "intact",
        facts: [{ path: "copyAfterCut.complete", equals: false }],
      },
      {
        says: "the cut fell inside the copy and stopped it; the half copy in the LV answered to the root's UUID and its fsck stopped the boot",
        fault: { name: "power-cut", stoppedProcedure: true, writtenBelowFact: "copyBytes" },
        boot: { outcome: "initramfs-shell", detail: "fsck", evidence: "sys-root|dm-[0-9]" },
      },
    ],
  },
  tags: ["fault", "power-cut", "lvm"],
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  kind: "twin",
  fault: {
    inject: { fault: "power-cut", at: 3, afterWrittenBytes: 16 * 2 ** 20 },
    /**
     * The state after the cut must differ from a finished copy: when the old
     * root came up, the LV must hold a half copy that fsck rejects. (When the
     * boot stopped at the half copy's fsck, the boot's evidence shows it.)
     */
    async observe(p, { vm, record }) {
      record("afterPowerCut", p);
      if (p.boot.outcome !== "ssh") return;
      const r = await vm.run("e2fsck -fn /dev/mapper/sys-root >/dev/null 2>&1; echo $?");
      const exit = Number(r.stdout.trim());
      record("copyAfterCut", { fsckExit: exit, complete: exit === 0 });
    },
  },
  run: flagship.run,
});
