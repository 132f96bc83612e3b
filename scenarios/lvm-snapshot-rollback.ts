import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import {
  createExt4Lv,
  createLoopVg,
  dmName,
  expectNothingLeft,
  expectValidSnapshot,
  lvsTable,
  removeSnapshot,
  rollbackByCopy,
  rollbackByMerge,
  snapshotAutoextendThreshold,
  takeSnapshot,
  teardownLoopVg,
} from "../src/procedures/lvm-snapshot.ts";
import { diffTrees, expectTree, treeSums, type TreeSums } from "../src/procedures/tree.ts";
import { addUsers, expectNewSchema, FIRST_USERS, readDatabase, seedWebsite, upgradeWebsite, WEBSITE_DISK } from "../src/procedures/website.ts";

const { vg: VG, lv: LV, snapshot: SNAP, mount: SITE, snapshotMount: SNAP_MOUNT } = WEBSITE_DISK;

/**
 * The upgrade safety net: a website on LV datadisks/website (a fake disk from
 * a loop file), a snapshot before the upgrade, the runbook's broken upgrade,
 * and the rollback done both ways: the runbook's (mount the snapshot, rsync
 * it back) and the modern one (lvconvert --merge). After each rollback the
 * site equals the pre-upgrade site byte for byte. Then the corrected upgrade
 * is applied and the snapshot removed, and the site stays correct.
 */
export default scenario({
  name: "lvm-snapshot-rollback",
  description: "LVM snapshot before a broken upgrade, rolled back by rsync and by lvconvert --merge; then the fixed upgrade",
  image: "debian12-bios",
  expect: { final: { boot: "no-reboot", root: "/dev/sda2", fstype: "ext3", data: "intact" } },
  tags: ["lvm", "snapshot", "dr"],
  runbook: "lvm-snapshot-safety-net.txt",
  async run(ctx) {
    const { vm, step, record, log, data } = ctx;
    const disk = await step(`fake disk: 96M loop file, PV, VG ${VG}`, () => createLoopVg(vm, { file: "/var/lib/vmlab/datadisks.raw", size: "96M", vg: VG }));
    record("fakeDisk", disk);

    let before: TreeSums = {};
    await step(`LV ${VG}/${LV} 32M with ext4 and the website`, async () => {
      await createExt4Lv(vm, { vg: VG, lv: LV, size: "32M", mountpoint: SITE });
      await seedWebsite(vm, SITE);
      before = await treeSums(vm, SITE);
      record("websiteBefore", before);
      log(`${Object.keys(before).length} files; database: ${(await readDatabase(vm, SITE)).join(" | ")}`);
    });
    record("snapshotAutoextendThreshold", await snapshotAutoextendThreshold(vm));

    /** transaction, the broken upgrade, and proof that it changed the site: otherwise a rollback proves nothing. */
    const brokenUpgrade = async (): Promise<{ database: string[]; sums: TreeSums }> => {
      await step(`transaction: snapshot ${VG}/${SNAP} 32M`, async () => {
        const s = await takeSnapshot(vm, { vg: VG, origin: LV, name: SNAP, size: "32M" });
        log(`${s.name} ${s.attr}`);
      });
      return step("upgrade with the if:/id: bug", async () => {
        await upgradeWebsite(vm, SITE, { bug: true });
        const database = await readDatabase(vm, SITE);
        const sums = await treeSums(vm, SITE);
        const d = diffTrees(before, sums);
        if (d.equal || !database.every((l) => l.startsWith("if:"))) {
          throw new VmlabError("the broken upgrade did not corrupt the database as the runbook describes", {
            output: database.join("\n"),
            hint: "the rollback would then prove nothing; check upgradeWebsite",
          });
        }
        log(`database now: ${database.join(" | ")}; added ${d.added.join(", ")}`);
        return { database, sums };
      });
    };

    const rollbacks: Record<string, unknown> = {};

    // The runbook's abort: mount the snapshot read-only and copy it back.
    const broken1 = await brokenUpgrade();
    await step("abort the runbook's way: mount the snapshot read-only, rsync --del back", async () => {
      const itemized = await rollbackByCopy(vm, { vg: VG, snapshot: SNAP, mountpoint: SITE, snapshotMount: SNAP_MOUNT });
      const after = await expectTree(vm, SITE, before, "after the rsync rollback", "rsync must run with --del from the snapshot's mount point, with a trailing slash");
      rollbacks.rsync = { brokenDatabase: broken1.database, broken: broken1.sums, after, itemized: itemized.trim().split("\n") };
      await removeSnapshot(vm, VG, SNAP);
    });

    // The modern abort: merge the snapshot into the origin.
    const broken2 = await brokenUpgrade();
    await step("abort the modern way: unmount, lvconvert --merge", async () => {
      const lvsBeforeMerge = await lvsTable(vm, VG);
      const merge = await rollbackByMerge(vm, { vg: VG, snapshot: SNAP, origin: LV, mountpoint: SITE });
      log(merge.output);
      const after = await expectTree(vm, SITE, before, "after lvconvert --merge", "the merge must finish before the origin is mounted again: `lvs -a`");
      rollbacks.merge = { brokenDatabase: broken2.database, broken: broken2.sums, after, lvsBeforeMerge, lvsAfterMerge: await lvsTable(vm, VG), deferred: merge.deferred };
    });
    record("rollbacks", rollbacks);

    // Three weeks later: more users, then the corrected upgrade under a new safety net.
    const users: [string, number][] = [...FIRST_USERS, ["robwilco", 35], ["DuncanMacLeod", 539]];
    await step("new users, then transaction and the corrected upgrade", async () => {
      await addUsers(vm, SITE, users.slice(FIRST_USERS.length));
      await takeSnapshot(vm, { vg: VG, origin: LV, name: SNAP, size: "32M" });
      await upgradeWebsite(vm, SITE, { bug: false });
      await expectValidSnapshot(vm, VG, SNAP);
      record("lvsDuringUpgrade", await lvsTable(vm, VG));
    });
    await step("remove_snapshot: the upgrade is kept, the data stays correct", async () => {
      const database = await expectNewSchema(vm, SITE, users);
      const upgraded = await treeSums(vm, SITE);
      await removeSnapshot(vm, VG, SNAP);
      await vm.succeed(`umount ${SITE} && mount /dev/${VG}/${LV} ${SITE}`);
      const after = await expectTree(vm, SITE, upgraded, "after removing the snapshot", "removing a snapshot must not touch its origin");
      record("upgrade", { database, before: upgraded, afterRemovingSnapshot: after, lvs: await lvsTable(vm, VG) });
    });

    await step("the machine's own data set is intact", async () => record("data", await data.expectIntact(vm)));
    await step("tear down: unmount, deactivate, detach the loop device", async () => {
      await teardownLoopVg(vm, disk, [SITE]);
      record("leftBehind", await expectNothingLeft(vm, [dmName(VG)]));
    });
  },
});
