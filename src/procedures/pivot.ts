/**
 * The pivot dance from the root-replacement runbook, written once and shared
 * by every procedure that moves `/` while the machine runs: root → LVM,
 * root → mdraid, ext3 → btrfs by copy.
 */
import { VmlabError } from "../errors.ts";
import type { Machine } from "../vm/machine.ts";

export type Log = (message: string) => void;

/**
 * Where a procedure step's commands go: SSH (a Machine), or the serial
 * console (a ConsoleShell) when SSH is gone.
 */
export interface Shell {
  run(command: string, opts?: { timeoutMs?: number }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  succeed(command: string, opts?: { timeoutMs?: number; hint?: string }): Promise<string>;
}

export const NEW_ROOT = "/mnt/newroot";
export const OLD_ROOT = "/mnt/oldroot";

/** Units that must never be stopped to quiesce `/`: they carry the session doing the work. */
const KEEP_RUNNING = /^(ssh\.service|session-.*\.scope|user@.*\.service|init\.scope|-)$/;

/** PIDs holding files on `/` open for writing, or still mapping deleted files. */
export const WRITERS_CMD =
  "lsof -n -w / 2>/dev/null | awk 'NR>1 && ($4 ~ /^[0-9]+[uUwW]/ || $4 == \"DEL\" || / \\(deleted\\)$/) {print $2}' | sort -un";

export interface Quiesced {
  /** Units stopped so that `/` could go read-only; started again on the new root. */
  stopped: string[];
  /** journald was told to write to /run instead of /var/log/journal. */
  journalRelinquished?: boolean;
}

/**
 * Writers that are not stopped but asked to let go. journald is socket
 * activated and comes straight back when stopped; `journalctl --relinquish-var`
 * moves its writing to /run, as systemd itself does before shutdown.
 */
const LET_GO: Record<string, string> = {
  "systemd-journald.service": "journalctl --relinquish-var",
};

/**
 * Runbook step 3: find processes with write-open or deleted files on `/`
 * (lsof), stop the units they belong to, and check nothing is left.
 */
export async function stopRootWriters(vm: Machine, log: Log): Promise<Quiesced> {
  const stopped: string[] = [];
  let journalRelinquished = false;
  for (let round = 0; round < 3; round++) {
    const pids = (await vm.succeed(WRITERS_CMD)).split("\n").filter(Boolean);
    if (pids.length === 0) break;
    const units = new Set<string>();
    for (const pid of pids) {
      const unit = (await vm.run(`ps -o unit= -p ${pid}`)).stdout.trim();
      if (unit && !KEEP_RUNNING.test(unit)) units.add(unit);
    }
    for (const [unit, cmd] of Object.entries(LET_GO)) {
      if (!units.delete(unit)) continue;
      log(`${unit} writes on /: ${cmd}`);
      await vm.succeed(cmd);
      if (unit === "systemd-journald.service") journalRelinquished = true;
    }
    if (units.size === 0) continue;
    log(`stopping writers on /: ${[...units].join(", ")}`);
    await vm.succeed(`systemctl stop ${[...units].join(" ")}`);
    stopped.push(...units);
  }
  return { stopped, journalRelinquished };
}

/**
 * Runbook step 4: `mount -o remount,ro /`. If it is refused, the machine is
 * left as it was: stopped units are started again and the error shows who
 * holds `/`.
 */
export async function remountRootReadOnly(vm: Machine, q: Quiesced): Promise<void> {
  const r = await vm.run("mount -o remount,ro / 2>&1");
  if (r.exitCode === 0) return;
  const holders = (await vm.run("lsof -n -w / 2>/dev/null | awk 'NR==1 || $4 ~ /^[0-9]+[uUwW]/'")).stdout;
  if (q.stopped.length) await vm.run(`systemctl start ${q.stopped.join(" ")}`);
  if (q.journalRelinquished) await vm.run("journalctl --flush");
  throw new VmlabError("`/` could not be remounted read-only: it is busy", {
    output: `${r.stdout}${r.stderr}\nprocesses with files open for writing on /:\n${holders}`,
    hint: "stop the processes listed above (the runbook's step 3), then try again; nothing was changed",
  });
}

/**
 * Runbook steps 8-10: mount the new root, `pivot_root` into it, and move
 * /proc, /dev, /sys, /run and every other mount back into place.
 *
 * systemd makes `/` a shared mount, and pivot_root(2) refuses shared parents,
 * so the tree is made private first: a step the runbook's era did not need.
 */
export async function pivotInto(vm: Machine, device: string, log: Log, mountOpts = ""): Promise<void> {
  const script = `set -e
# A procedure that copied files into the new root has it mounted already.
mountpoint -q ${NEW_ROOT} || mount ${mountOpts ? `-o ${mountOpts} ` : ""}${device} ${NEW_ROOT}
mkdir -p ${NEW_ROOT}${OLD_ROOT} 2>/dev/null || true
mount --make-rprivate /
cd ${NEW_ROOT}
pivot_root . ${OLD_ROOT.slice(1)}
# /proc first: the loop below reads the mount table from it.
mount --move ${OLD_ROOT}/proc /proc
# Move every mount that came along under the old root back to its place,
# parents first (a prefix sorts before its children).
while m=$(awk '$5 ~ "^${OLD_ROOT}/" {print $5}' /proc/self/mountinfo | sort | head -n 1); [ -n "$m" ]; do
  mount --move "$m" "\${m#${OLD_ROOT}}"
done
# Back to systemd's propagation: services started from now on get namespaces
# that follow the host's mounts, so unmounting the old root reaches them too.
mount --make-rshared /
findmnt -no SOURCE /`;
  const out = await vm.succeed(script, { hint: "the console is the way back in if SSH is gone: `vmlab console`" });
  log(`/ is now ${out.trim()}`);
}

/**
 * Runbook step 11: re-execute init and restart daemons from the new root,
 * then prove a new SSH session works on it.
 */
export async function restartOnNewRoot(vm: Shell, q: Quiesced, log: Log): Promise<void> {
  await vm.succeed("systemctl daemon-reexec");
  await vm.succeed("systemctl restart ssh.service");
  const again = (await vm.succeed("findmnt -no SOURCE /")).trim();
  log(`new SSH session works; / is ${again}`);
  if (q.stopped.length) await vm.succeed(`systemctl start ${q.stopped.join(" ")}`);
  if (q.journalRelinquished) await vm.succeed("journalctl --flush");
  // Everything else still running from the old root gets restarted too, and so
  // does every service with a mount namespace of its own (PrivateTmp=,
  // ProtectSystem=...): its copy of the mount table still holds the old root,
  // which keeps the old root's device busy although nothing shows under OLD_ROOT.
  const units = [...new Set([...(await unitsUsing(vm, OLD_ROOT)), ...(await unitsSeeing(vm, await majMin(vm, OLD_ROOT)))])];
  if (units.length) {
    log(`restarting on the new root: ${units.join(", ")}`);
    await vm.succeed(`systemctl restart ${units.join(" ")}`);
    // A restarted systemd-networkd takes the link down and up again: new SSH connections fail until it is back.
    if (units.includes("systemd-networkd.service")) await untilAnswers(vm, log);
  }
}

/** Wait until a new session on `vm` runs a command again (up to a minute). */
async function untilAnswers(vm: Shell, log: Log): Promise<void> {
  for (let i = 1; i <= 30; i++) {
    if ((await vm.run("true", { timeoutMs: 20_000 })).exitCode === 0) return;
    if (i === 1) log("the network is coming back after systemd-networkd's restart; waiting");
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function unitsUsing(vm: Shell, path: string): Promise<string[]> {
  const pids = (await vm.run(`lsof -n -w ${path} 2>/dev/null | awk 'NR>1 {print $2}' | sort -un`)).stdout.split("\n").filter(Boolean);
  const units = new Set<string>();
  for (const pid of pids) {
    const unit = (await vm.run(`ps -o unit= -p ${pid}`)).stdout.trim();
    if (unit && unit.endsWith(".service") && !KEEP_RUNNING.test(unit)) units.add(unit);
  }
  return [...units];
}

/** The device number ("8:2") of the filesystem mounted at `mountpoint`. */
async function majMin(vm: Shell, mountpoint: string): Promise<string> {
  return (await vm.run(`findmnt -no MAJ:MIN ${mountpoint} | head -n 1`)).stdout.trim();
}

/** Services whose processes have device `dev` ("8:2") mounted in a mount namespace of their own. */
async function unitsSeeing(vm: Shell, dev: string): Promise<string[]> {
  if (!/^\d+:\d+$/.test(dev)) return [];
  const out = await vm.run(`init=$(readlink /proc/1/ns/mnt)
for p in /proc/[0-9]*; do
  [ "$(readlink $p/ns/mnt 2>/dev/null)" = "$init" ] && continue
  awk -v d="${dev}" '$3 == d {f = 1} END {exit !f}' $p/mountinfo 2>/dev/null && ps -o unit= -p \${p#/proc/}
done | sort -u`);
  return out.stdout.split("\n").map((u) => u.trim()).filter((u) => u.endsWith(".service") && !KEEP_RUNNING.test(u));
}

/** Runbook step 12.2: unmount the old root; lazily if something still holds it. */
export async function releaseOldRoot(vm: Shell, log: Log): Promise<"clean" | "lazy"> {
  const dev = await majMin(vm, OLD_ROOT);
  const r = await vm.run(`umount ${OLD_ROOT} 2>&1`);
  if (r.exitCode === 0) {
    // A service started while the old root was mounted has its own copy of that mount; restarted, it lets go.
    const units = await unitsSeeing(vm, dev);
    if (units.length) {
      log(`restarting services whose mount namespace still holds the old root: ${units.join(", ")}`);
      await vm.succeed(`systemctl restart ${units.join(" ")}`);
    }
    return "clean";
  }
  const holders = (await vm.run(`lsof -n -w ${OLD_ROOT} 2>/dev/null | awk 'NR>1 {print $1"("$2")"}' | sort -u | tr '\\n' ' '`)).stdout;
  log(`old root still held by ${holders.trim() || "the kernel"}; unmounting lazily`);
  await vm.succeed(`umount -l ${OLD_ROOT}`);
  return "lazy";
}

/** Where `/` lives now, as the kernel sees it. */
export interface RootInfo {
  device: string;
  fstype: string;
  sizeBytes: number;
}

export async function rootInfo(vm: Machine): Promise<RootInfo> {
  const out = (await vm.succeed("findmnt -no SOURCE,FSTYPE / && df -B1 --output=size / | tail -n 1")).trim().split(/\s+/);
  // btrfs shows the mounted subvolume after the device: /dev/sda2[/@].
  return { device: out[0]!.replace(/\[.*\]$/, ""), fstype: out[1]!, sizeBytes: Number(out[2]) };
}

/** Throw unless `/` is the expected device and filesystem type. */
export async function expectRoot(vm: Machine, device: string, fstype: string): Promise<RootInfo> {
  const info = await rootInfo(vm);
  if (info.device !== device || info.fstype !== fstype) {
    throw new VmlabError(`/ is ${info.device} (${info.fstype}), expected ${device} (${fstype})`, {
      output: (await vm.run("findmnt -no SOURCE,FSTYPE,OPTIONS /; cat /proc/cmdline; blkid")).stdout,
      hint: "the machine did not boot the root you migrated to",
    });
  }
  return info;
}

/** Other block devices that carry the same filesystem UUID or LABEL as `/`. */
export interface RootIdentity {
  device: string;
  uuid: string;
  label: string;
  /** Every device with the root's UUID (including the root itself). */
  sameUuid: string[];
  /** Every device with the root's LABEL (including the root itself). */
  sameLabel: string[];
}

/**
 * After `dd`, the copy and the original share UUID and LABEL until the old
 * one is relabelled: `root=UUID=...` and `LABEL=root` in fstab then name two
 * filesystems, and which one a boot mounts is up to device discovery order.
 */
export async function rootIdentity(vm: Machine): Promise<RootIdentity> {
  const out = await vm.succeed(`dev=$(findmnt -no SOURCE /)
uuid=$(blkid -s UUID -o value "$dev"); label=$(blkid -s LABEL -o value "$dev")
echo "$dev"; echo "$uuid"; echo "$label"
blkid -o device -t UUID="$uuid" | sort | tr '\\n' ' '; echo
[ -n "$label" ] && blkid -o device -t LABEL="$label" | sort | tr '\\n' ' '; echo`);
  const [device = "", uuid = "", label = "", sameUuid = "", sameLabel = ""] = out.split("\n");
  const list = (devs: string) => devs.trim().split(/\s+/).filter(Boolean);
  return { device, uuid, label, sameUuid: list(sameUuid), sameLabel: list(sameLabel) };
}

/** Throw unless `/` is the only filesystem with its UUID and LABEL. */
export async function expectUniqueRoot(vm: Machine): Promise<RootIdentity> {
  const id = await rootIdentity(vm);
  if (id.sameUuid.length > 1 || id.sameLabel.length > 1) {
    throw new VmlabError(`/ (${id.device}) shares its identity with another filesystem`, {
      output: `UUID=${id.uuid}: ${id.sameUuid.join(", ")}\nLABEL=${id.label}: ${id.sameLabel.join(", ")}`,
      hint: "relabel the old root with a new LABEL and UUID (tune2fs -L oldroot -U random), or the next boot may mount it",
    });
  }
  return id;
}
