import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
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
  tags: ["fault", "power-cut", "lvm"],
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  kind: "twin",
  fault: {
    inject: { fault: "power-cut", at: 3, afterWrittenBytes: 16 * 2 ** 20 },
    expect(p, { vm, record }) {
      record("afterPowerCut", p);
      if (p.procedure !== "stopped") throw new VmlabError(`the procedure was not stopped by the power cut: ${p.procedure}`);
      const boot = vm.boots.at(-1)!;
      if (p.boot.outcome === "ssh") {
        if (p.data.state !== "intact") throw new VmlabError(`after the power cut the machine booted ${p.root.device} with the data set ${p.data.state}`, { output: p.data.summary });
        const expected = p.root.which === "old" ? "/dev/sda2" : "/dev/mapper/sys-root";
        if (p.root.device !== expected) throw new VmlabError(`after the power cut / is ${p.root.device}, neither the old root nor the LV`);
        record("tookRoot", p.root.which === "old" ? "the old root /dev/sda2" : "the finished copy in the LV (same UUID)");
        return;
      }
      // The half-made copy answered to the root's UUID: its fsck must be what stopped the boot.
      const evidence = boot.evidence.join("\n");
      if ((p.boot.outcome === "initramfs-shell" || p.boot.outcome === "emergency-mode") && /sys-root|dm-\d/.test(evidence)) {
        record("tookRoot", "the half-made copy in the LV (same UUID): the boot stopped at its fsck");
        return;
      }
      throw new VmlabError(`after the power cut the boot ended as ${p.boot.outcome}${p.boot.detail ? ` (${p.boot.detail})` : ""}, not on the old root nor at the half copy's fsck`, { output: evidence });
    },
  },
  run: flagship.run,
});
