/**
 * A GPT disk's image restored onto a larger disk, the way an admin does it
 * with dd and gdisk: the copy holds the old disk's primary GPT, whose backup
 * header and "last usable sector" still name the old disk's end. Until
 * `sgdisk -e` moves the backup structures to the new end, no partition can
 * grow into the added space: sgdisk refuses with "Could not create
 * partition N from START to END".
 */
import { VmlabError } from "../errors.ts";
import type { ScenarioContext } from "../scenario/types.ts";
import type { Machine } from "../vm/machine.ts";

/** What `sgdisk -p` says about a disk's GPT. Pure. */
export interface GptGeometry {
  diskSectors: number;
  firstUsable: number;
  lastUsable: number;
}

export function parseSgdiskPrint(text: string): GptGeometry {
  const disk = /^Disk \S+: (\d+) sectors/m.exec(text);
  const usable = /First usable sector is (\d+), last usable sector is (\d+)/.exec(text);
  if (!disk || !usable) throw new VmlabError("sgdisk -p printed no disk size or usable range", { output: text });
  return { diskSectors: Number(disk[1]), firstUsable: Number(usable[1]), lastUsable: Number(usable[2]) };
}

/** One partition as `sgdisk -i N` prints it. Pure. */
export function parseSgdiskInfo(text: string): { typeGuid: string; guid: string; first: number; last: number; name: string } {
  const get = (re: RegExp) => re.exec(text)?.[1];
  const typeGuid = get(/^Partition GUID code: ([0-9A-F-]{36})/m);
  const guid = get(/^Partition unique GUID: ([0-9A-F-]{36})/m);
  const first = get(/^First sector: (\d+)/m);
  const last = get(/^Last sector: (\d+)/m);
  if (!typeGuid || !guid || !first || !last) throw new VmlabError("sgdisk -i printed no partition", { output: text });
  return { typeGuid, guid, first: Number(first), last: Number(last), name: get(/^Partition name: '(.*)'$/m) ?? "" };
}

export async function gptGeometry(vm: Machine, disk: string): Promise<GptGeometry> {
  return parseSgdiskPrint(await vm.succeed(`sgdisk -p ${disk}`));
}

/**
 * Copy `from` onto `to` with dd while the machine runs: / and /boot frozen
 * (fsfreeze) for the copy so their filesystems are consistent on it, the
 * ESP (vfat, which cannot be frozen) unmounted. Zero blocks are skipped.
 */
export async function cloneFrozen(vm: Machine, from: string, to: string): Promise<string> {
  const cmd = `dd if=${from} of=${to} bs=4M conv=sparse,fsync status=none`;
  await vm.succeed(
    `sync && umount /boot/efi && fsfreeze -f /boot && fsfreeze -f / && { ${cmd}; rc=$?; fsfreeze -u /; fsfreeze -u /boot; mount /boot/efi; exit $rc; }`,
    { timeoutMs: 20 * 60_000 },
  );
  return cmd;
}

/**
 * Grow partition `part` of `disk` by the space the larger disk added, with
 * sgdisk: delete it and make it again from the same start, with its type,
 * name and GUID. The end is the old end plus the added sectors, less 1 MiB
 * for the backup table and sgdisk's alignment at the end. Throws sgdisk's
 * own words when it refuses.
 */
export async function growPartition(ctx: ScenarioContext, o: { disk: string; part: number; oldDiskSectors: number }): Promise<{ command: string; fromSectors: number; toSectors: number }> {
  const { vm, log } = ctx;
  const info = parseSgdiskInfo(await vm.succeed(`sgdisk -i ${o.part} ${o.disk}`));
  const diskSectors = Number((await vm.succeed(`blockdev --getsz ${o.disk}`)).trim());
  const end = info.last + (diskSectors - o.oldDiskSectors) - 2048;
  const command = `sgdisk -d ${o.part} -n ${o.part}:${info.first}:${end} -t ${o.part}:${info.typeGuid} -c ${o.part}:${info.name} -u ${o.part}:${info.guid} ${o.disk}`;
  log(command);
  await vm.succeed(command, { hint: "sgdisk cannot place a partition beyond the GPT's last usable sector; `sgdisk -p` shows it" });
  await vm.succeed(`partx -u ${o.disk} || true; udevadm settle`);
  const after = parseSgdiskInfo(await vm.succeed(`sgdisk -i ${o.part} ${o.disk}`));
  if (after.last !== end || after.guid !== info.guid) throw new VmlabError(`partition ${o.part} of ${o.disk} was not made as asked`, { output: JSON.stringify(after) });
  return { command, fromSectors: info.last - info.first + 1, toSectors: after.last - after.first + 1 };
}

/**
 * The restore's first part, shared by the rehearsal and its twin (whose
 * fork replays it): read the source's GPT, restore the disk onto the larger
 * one with dd, read the copy's GPT. Returns the source's geometry.
 */
export async function restoreOntoLarger(ctx: ScenarioContext, source: string, target: string): Promise<GptGeometry> {
  const { vm, step, record } = ctx;
  const old = await step("read the disk's GPT", async () => {
    const g = await gptGeometry(vm, source);
    record("sourceGpt", g);
    return g;
  });
  await step("restore the disk's image onto the larger disk with dd, / and /boot frozen", async () => record("restoreCommand", await cloneFrozen(vm, source, target)));
  await step("read the restored GPT: its backup header is still at the old disk's end", async () => {
    const g = await gptGeometry(vm, target);
    const verify = await vm.run(`sgdisk -v ${target}`);
    record("restoredGpt", { ...g, verify: verify.stdout.trim().split("\n").filter((l) => /Problem|end of the disk/.test(l)) });
    if (g.lastUsable !== old.lastUsable) throw new VmlabError(`the restored GPT's last usable sector is ${g.lastUsable}, not the old disk's ${old.lastUsable}`);
    if (!/doesn't reside\s+at the end of the disk/.test(verify.stdout)) throw new VmlabError("sgdisk -v does not report the misplaced backup header", { output: verify.stdout });
  });
  return old;
}
