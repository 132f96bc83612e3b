import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import flagship from "./root-to-lvm.ts";

/**
 * The power goes out in the middle of the root → LVM copy: QEMU quits (QMP
 * quit) four seconds into the `dd` of the old root into the new LV. The lab
 * powers the machine on through the firmware and checks what a sysadmin
 * would ask first: does it boot, from which root, and is the data there.
 * Until the pivot the old root is untouched (it was read-only during the
 * copy), so the machine must come up on /dev/sda2 with the data set intact.
 * `vmlab sweep root-to-lvm --fault power-cut` maps every other moment.
 */
export default scenario({
  name: "power-cut",
  description: "power cut (QMP quit) 4 s into the dd of / into LVM: boots the old root, data set intact",
  image: "debian12-bios",
  tags: ["fault", "power-cut", "lvm"],
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  kind: "twin",
  fault: {
    inject: { fault: "power-cut", at: 3, afterMs: 4000 },
    expect(p, { record }) {
      record("afterPowerCut", p);
      if (p.procedure !== "stopped") throw new VmlabError(`the procedure was not stopped by the power cut: ${p.procedure}`);
      if (p.boot.outcome !== "ssh") throw new VmlabError(`after the power cut the machine did not boot: ${p.boot.outcome}${p.boot.detail ? ` (${p.boot.detail})` : ""}`, { hint: "a cut before the pivot must leave the old root bootable" });
      if (p.root.which !== "old" || p.root.device !== "/dev/sda2") throw new VmlabError(`after the power cut / is ${p.root.device ?? "unknown"}, expected the old root /dev/sda2`);
      if (p.data.state !== "intact") throw new VmlabError(`after the power cut the data set is ${p.data.state}`, { output: p.data.summary });
    },
  },
  run: flagship.run,
});
