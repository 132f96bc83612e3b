import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import {
  createExt4Lv,
  createLoopVg,
  dmName,
  expectNothingLeft,
  lvsTable,
  removeSnapshot,
  rollbackByCopy,
  rollbackByMerge,
  snapshotAutoextendThreshold,
  snapshotState,
  takeSnapshot,
  teardownLoopVg,
  type SnapshotState,
} from "../src/procedures/lvm-snapshot.ts";
import { expectTree, treeSums, type TreeSums } from "../src/procedures/tree.ts";
import { seedWebsite, upgradeWebsite, WEBSITE_DISK } from "../src/procedures/website.ts";

const { vg: VG, lv: LV, snapshot: SNAP, mount: SITE, snapshotMount: SNAP_MOUNT } = WEBSITE_DISK;
const MEDIA_BYTES = 16 * 2 ** 20;

/**
 * Twin of lvm-snapshot-rollback: the snapshot is sized without regard for
 * the change ("Make sure the snapshot partition is big enough", says the
 * runbook). A 4M snapshot meets an upgrade that writes 16M of new media; the
 * copy-on-write space fills, the kernel drops the snapshot, and there is no
 * way back. Autoextend is off (the snapshot is unmonitored, and the default
 * threshold is 100), so the overflow happens every time. The twin passes only
 * when the lab sees the snapshot invalid and both rollbacks refuse it, and
 * the site still holds the upgraded data: no partial, silent rollback.
 */
export default scenario({
  name: "lvm-snapshot-overflow",
  description: "twin of lvm-snapshot-rollback with a 4M snapshot for a 16M upgrade: the lab must see it invalid and refuse to roll back",
  image: "debian12-bios",
  expect: {
    failure: [
      {
        says: "the 4M snapshot fills up and the kernel drops it (invalid), and every rollback refuses it",
        facts: [{ path: "observedFailure.kind", equals: "snapshot-invalid" }, { path: "observedFailure.attr", matches: "^swi-I" }, { path: "rollbackRefused.rsync", matches: "is invalid" }, { path: "rollbackRefused.merge", matches: "is invalid" }, { path: "rollbackRefused.lvconvertMerge.stderr", matches: "[Ii]nvalid" }],
      },
    ],
    final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" },
  },
  tags: ["lvm", "snapshot", "dr", "twin"],
  kind: "twin",
  runbook: "lvm-snapshot-safety-net.txt",
  async run(ctx) {
    const { vm, step, record, log, data } = ctx;
    const disk = await step(`fake disk: 64M loop file, PV, VG ${VG}`, () => createLoopVg(vm, { file: "/var/lib/vmlab/datadisks.raw", size: "64M", vg: VG }));
    await step(`LV ${VG}/${LV} 32M with ext4 and the website`, async () => {
      await createExt4Lv(vm, { vg: VG, lv: LV, size: "32M", mountpoint: SITE });
      await seedWebsite(vm, SITE);
      record("websiteBefore", await treeSums(vm, SITE));
    });
    await step(`transaction: snapshot ${VG}/${SNAP} 4M, unmonitored, autoextend off`, async () => {
      const threshold = await snapshotAutoextendThreshold(vm);
      record("snapshotAutoextendThreshold", threshold);
      const s = await takeSnapshot(vm, { vg: VG, origin: LV, name: SNAP, size: "4M" });
      log(`${s.name} ${s.attr}, ${s.sizeBytes} bytes; snapshot_autoextend_threshold=${threshold}`);
    });

    let upgraded: TreeSums = {};
    let state: SnapshotState | undefined;
    await step("upgrade that writes 16M of new media", async () => {
      await upgradeWebsite(vm, SITE, { bug: true, mediaBytes: MEDIA_BYTES });
      upgraded = await treeSums(vm, SITE);
      state = await snapshotState(vm, VG, SNAP);
      log(`snapshot ${state.attr}, ${state.percent ?? "?"}% used; dmsetup: ${state.dmStatus}`);
    });

    await step("observe the overflowed snapshot", async () => {
      const table = await lvsTable(vm, VG);
      log(table);
      if (!state?.invalid) {
        throw new VmlabError("the lab saw nothing wrong although the snapshot was far too small for the change", {
          output: `${table}\ndmsetup status: ${state?.dmStatus}`,
          hint: "the twin expects a 4M snapshot to be invalidated by 16M of writes; is the snapshot monitored and autoextended? `lvmconfig activation/snapshot_autoextend_threshold`",
        });
      }
      record("observedFailure", { kind: "snapshot-invalid", snapshot: `${VG}/${SNAP}`, attr: state.attr, percent: state.percent, dmStatus: state.dmStatus, lvs: table });
    });

    // Both rollbacks must refuse: the lab's guard first, then LVM and the kernel themselves.
    const refusals: Record<string, unknown> = {};
    await step("rollback from the invalid snapshot is refused, both ways", async () => {
      for (const [way, attempt] of [
        ["rsync", () => rollbackByCopy(vm, { vg: VG, snapshot: SNAP, mountpoint: SITE, snapshotMount: SNAP_MOUNT })],
        ["merge", () => rollbackByMerge(vm, { vg: VG, snapshot: SNAP, origin: LV, mountpoint: SITE })],
      ] as const) {
        const refused = await attempt().then(
          () => undefined,
          (err: unknown) => (err instanceof VmlabError ? err.message : String(err)),
        );
        if (!refused) throw new VmlabError(`the ${way} rollback went ahead from an invalid snapshot`, { hint: "rollbackBy* must check the snapshot first" });
        log(`${way}: ${refused}`);
        refusals[way] = refused;
      }
      // What an admin without the lab's check would meet: the kernel cannot read the snapshot, LVM will not merge it.
      const mount = await vm.run(`mkdir -p ${SNAP_MOUNT} && mount -o ro /dev/${VG}/${SNAP} ${SNAP_MOUNT}`);
      await vm.succeed(`umount ${SITE}`);
      const merge = await vm.run(`lvconvert --merge ${VG}/${SNAP}`);
      await vm.succeed(`mount /dev/${VG}/${LV} ${SITE}`);
      for (const [what, r] of [["mount", mount], ["lvconvert --merge", merge]] as const) {
        if (r.exitCode === 0) throw new VmlabError(`${what} of the invalid snapshot succeeded`, { output: r.stdout + r.stderr, hint: "an invalid snapshot must never be used for a rollback" });
      }
      refusals.mount = { exitCode: mount.exitCode, stderr: mount.stderr.trim() };
      refusals.lvconvertMerge = { exitCode: merge.exitCode, stderr: merge.stderr.trim() };
      record("rollbackRefused", refusals);
    });

    await step("the site still holds the upgraded data: nothing was half rolled back", async () => {
      record("websiteAfter", await expectTree(vm, SITE, upgraded, "after the refused rollbacks", "a refused rollback must leave the origin as it was"));
    });
    await step("the machine's own data set is intact", async () => record("data", await data.expectIntact(vm)));
    await step("tear down: remove the dead snapshot, deactivate, detach", async () => {
      await removeSnapshot(vm, VG, SNAP);
      await teardownLoopVg(vm, disk, [SITE]);
      record("leftBehind", await expectNothingLeft(vm, [dmName(VG)]));
    });
  },
});
