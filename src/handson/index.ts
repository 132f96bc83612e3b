/**
 * Hands-on primitives, for rehearsing by hand and for trainers: a kept
 * machine started from an image's warm state with the data set seeded
 * (`vmlab up`), rebooted through its firmware with the boot classified
 * (`vmlab reboot`), looked at (`vmlab check`), and repaired from the rescue
 * system with its disks (`vmlab rescue`, then `vmlab rescue --done` to boot
 * it from its own disk again).
 *
 * A kept machine runs on after the process that started it; these commands
 * take it over by its entry (src/vm/kept.ts): its serial log is a file QEMU
 * writes itself, so a boot is classified from any process.
 */
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createOverlay } from "../disk/qemu-img.ts";
import { parseSize } from "../disk/size.ts";
import { UsageError, VmlabError } from "../errors.ts";
import { chooseAccel, type AccelChoice } from "../host/kvm.ts";
import { ensureImage } from "../image/build.ts";
import { labKey } from "../image/keys.ts";
import { loadRecipe, recipeNames } from "../image/recipes.ts";
import { RESCUE_DISK_ID, RESCUE_IMAGE } from "../rescue/index.ts";
import { DataSet, DATASET_FILE, describeCheck, type DataCheck, type Manifest } from "../scenario/dataset.ts";
import { runScenario } from "../scenario/runner.ts";
import { scenario, type RunEvent, type ScenarioReport } from "../scenario/types.ts";
import { dropEntry, findKept, keepMachine, liveness, requireAlive, saveKept, waitDead, type KeptStatus, type KeptVm } from "../vm/kept.ts";
import { Machine, type BootRecord } from "../vm/machine.ts";
import { QmpClient } from "../vm/qmp.ts";
import { sshRun } from "../vm/ssh.ts";

export interface UpOptions {
  image?: string;
  /** A captured layout's layout.json: the machine is built on it (`layout:PATH` as the image). */
  layout?: string;
  disks?: string[];
  memory?: string;
  reportDir?: string;
  onEvent?: (e: RunEvent) => void;
}

/** Check `vmlab up`'s input before anything starts: exit 2 on a bad image or size. */
export async function checkUp(o: UpOptions): Promise<{ image: string; disks: string[]; memoryMiB?: number }> {
  if (o.layout !== undefined && o.image !== undefined) throw new UsageError("give an image or --layout, not both");
  const image = o.layout !== undefined ? `layout:${resolve(o.layout)}` : (o.image ?? "debian12-bios");
  const names = await recipeNames();
  if (image.startsWith("layout:")) await loadRecipe(image);
  else if (!names.includes(image) || image === RESCUE_IMAGE) {
    throw new UsageError(`unknown image "${image}"`, { hint: `images a machine boots from: ${names.filter((n) => n !== RESCUE_IMAGE).join(", ")}` });
  }
  const disks = (o.disks ?? []).filter(Boolean);
  for (const d of disks) parseSize(d, "disk size in --disks");
  const memoryMiB = o.memory === undefined ? undefined : Math.round(parseSize(o.memory, "--memory") / 2 ** 20);
  if (memoryMiB !== undefined && memoryMiB < 256) throw new UsageError(`--memory ${o.memory} is too little for a Debian guest`, { hint: "give 512M or more" });
  return { image, disks, memoryMiB };
}

/** Start a machine from the image's warm state, seed the data set, and keep it. */
export async function up(o: UpOptions, accel?: AccelChoice): Promise<{ report: ScenarioReport; kept: KeptVm }> {
  const { image, disks, memoryMiB } = await checkUp(o);
  const recipe = await loadRecipe(image);
  await ensureImage(recipe);
  const s = scenario({
    name: `up-${recipe.name}`,
    description: `a machine of ${image}${disks.length ? ` with blank disks ${disks.join(", ")}` : ""}, kept for hands-on work`,
    image,
    tags: ["hands-on"],
    expect: { final: { boot: "no-reboot", data: "intact" } },
    ...(disks.length || memoryMiB ? { hardware: { ...(disks.length ? { extraDisks: disks } : {}), ...(memoryMiB ? { memoryMiB } : {}) } } : {}),
    async run() {
      // Nothing to do: the machine is up, the data set seeded; the person takes it from here.
    },
  });
  const report = await runScenario(s, { reportDir: o.reportDir, keep: "always", accel, onEvent: o.onEvent });
  const kept = report.kept?.[0];
  if (!kept) throw new VmlabError("the machine did not come up", { output: report.error ? `${report.error.message}\n${report.error.output ?? ""}` : undefined, where: report.runDir, hint: report.error?.hint });
  return { report, kept };
}

/** Take over a kept, running machine from this process: its console log, SSH and QMP. */
export async function adopt(e: KeptVm): Promise<Machine> {
  const m = new Machine({
    name: e.machine,
    runDir: e.reportDir,
    disks: e.disks ?? [],
    accel: e.accel ?? (await chooseAccel()),
    sshKey: e.sshKey || (await labKey()).privateKey,
    ...(e.memoryMiB ? { memoryMiB: e.memoryMiB } : {}),
    ...(e.efiVars ? { uefi: { varsFrom: e.efiVars } } : {}),
  });
  m.adopt(e.pid, e.sshPort, () => liveness(e).alive);
  const id = await sshRun(m.ssh, "cat /proc/sys/kernel/random/boot_id", { timeoutMs: 30_000, connectTimeoutS: 10 });
  if (id.exitCode === 0) m.bootId = id.stdout.trim();
  return m;
}

/** `vmlab reboot ID`: reboot through the firmware, and classify how the boot ended. */
export async function rebootKept(id: string): Promise<{ entry: KeptStatus; boot: BootRecord }> {
  const e = await requireAlive(id);
  const m = await adopt(e);
  const boot = m.bootId === undefined
    ? // No SSH (a machine stuck in an emergency shell): what a careful person does at the keyboard,
      // Alt-SysRq-S and -U (sync, remount read-only: a repair typed there is kept), then the reset button.
      await m.bootAfter(
        async () => {
          await sysrq(e, "s");
          await sysrq(e, "u");
          await qmp(e, "system_reset");
        },
        { via: "firmware", reason: "reset", singleBoot: true },
      )
    : await m.reboot();
  return { entry: e, boot };
}

export interface CheckResult {
  root?: { device: string; fstype: string };
  data?: DataCheck & { summary: string };
  /** Why something could not be looked at. */
  unobserved?: string;
  ok: boolean;
  reasons: string[];
}

/** `vmlab check ID [--root DEV]`: where `/` is, and whether the data set seeded at `up` is intact. */
export async function checkKept(id: string, want: { root?: string } = {}): Promise<{ entry: KeptStatus; result: CheckResult }> {
  if (want.root !== undefined && !want.root.startsWith("/dev/")) throw new UsageError(`--root ${want.root} is not a device path`, { hint: "like --root /dev/mapper/sys-root" });
  const e = await requireAlive(id);
  const m = await adopt(e);
  const reasons: string[] = [];
  if (m.bootId === undefined) return { entry: e, result: { ok: false, unobserved: "the machine does not answer on SSH", reasons: ["the machine does not answer on SSH: `vmlab console` shows what it does"] } };
  const r = await m.run("findmnt -no SOURCE,FSTYPE /", { timeoutMs: 60_000 });
  const [device = "", fstype = ""] = r.stdout.trim().split(/\s+/);
  const result: CheckResult = { ok: true, reasons, root: { device: device.replace(/\[.*\]$/, ""), fstype } };
  if (want.root && result.root!.device !== want.root) reasons.push(`/ is on ${result.root!.device}, not ${want.root}`);
  const manifestFile = join(e.reportDir, DATASET_FILE);
  if (existsSync(manifestFile)) {
    const manifest = JSON.parse(await readFile(manifestFile, "utf8")) as Manifest;
    const c = await DataSet.fromManifest(manifest).check(m);
    result.data = { ...c, summary: describeCheck(c) };
    if (!c.intact) reasons.push(`the data set is not intact: ${describeCheck(c).split("\n")[0]}`);
  } else reasons.push(`no seeded data set to compare with (${manifestFile} is missing)`);
  result.ok = reasons.length === 0;
  return { entry: e, result };
}

async function qmp(e: Pick<KeptVm, "qmpSocket">, command: string): Promise<void> {
  const q = await QmpClient.connect(e.qmpSocket, { timeoutMs: 5000, commandTimeoutMs: 10_000 });
  try {
    await q.execute(command);
  } catch {
    /* quit closes the socket under the answer */
  } finally {
    q.close();
  }
}

/**
 * What a rescue system is switched off with: what its shell wrote reaches the
 * disks (sync), and what it mounted of the machine's disks is unmounted,
 * deepest first, so the machine's filesystems are clean at its next boot.
 */
export const RESCUE_SWITCH_OFF = "sync; findmnt -rno TARGET | grep -E '^/(mnt|media)(/|$)' | sort -r | while read -r m; do umount \"$m\" || umount -l \"$m\"; done; sync";

/** One magic SysRq key on the machine's keyboard (Debian's kernel.sysrq allows sync and remount read-only), then a moment for it to act. */
async function sysrq(e: Pick<KeptVm, "qmpSocket">, key: "s" | "u"): Promise<void> {
  const q = await QmpClient.connect(e.qmpSocket, { timeoutMs: 5000, commandTimeoutMs: 10_000 });
  try {
    await q.execute("send-key", { keys: ["alt", "sysrq", key].map((data) => ({ type: "qcode", data })) });
  } finally {
    q.close();
  }
  await new Promise((r) => setTimeout(r, 1500));
}

/**
 * Power a kept machine off: a clean poweroff over SSH, else QMP quit, else
 * SIGKILL. Its disks stay. A rescue system (`switchOff`) is not shut down
 * but synced, its mounts of the machine's disks undone, and switched off: its
 * own disk is thrown away, and a poweroff under TCG takes half a minute.
 */
async function powerOff(e: KeptVm, o: { switchOff?: boolean } = {}): Promise<void> {
  if (!liveness(e).alive) return;
  const target = { host: "127.0.0.1", port: e.sshPort, user: "root", keyPath: e.sshKey };
  if (o.switchOff && (await sshRun(target, RESCUE_SWITCH_OFF, { timeoutMs: 60_000, connectTimeoutS: 5 })).exitCode === 0) {
    await qmp(e, "quit").catch(() => undefined);
    if (await waitDead(e, 10_000)) return;
  }
  // A machine that answers is shut down cleanly; one that does not (a panic, an emergency shell) is switched off.
  if (!o.switchOff && (await sshRun(target, "true", { timeoutMs: 20_000, connectTimeoutS: 5 })).exitCode === 0) {
    await sshRun(target, "systemctl poweroff", { timeoutMs: 15_000, connectTimeoutS: 5 });
    if (await waitDead(e, 90_000)) return;
  }
  await qmp(e, "quit").catch(() => undefined);
  if (await waitDead(e, 10_000)) return;
  if (liveness(e).alive) process.kill(e.pid, "SIGKILL");
  await waitDead(e, 5000);
}

/**
 * `vmlab rescue ID`: power the machine off, boot the rescue system with its
 * disks (they come after the rescue system's own in the rescue system), and
 * keep it. The machine's entry stays, parked, until `rescue --done`.
 */
export async function rescueKept(id: string, accel?: AccelChoice): Promise<{ target: KeptVm; rescue: KeptVm; boot: BootRecord }> {
  const e = await requireAlive(id);
  if (e.rescueOf) throw new UsageError(`${e.id} is itself a rescue system (of ${e.rescueOf})`);
  if (!e.disks?.length) throw new UsageError(`${e.id} was kept by an older vmlab that did not record its disks`, { hint: "start a new one with `vmlab up` or `vmlab run --keep`" });
  const recipe = await loadRecipe(RESCUE_IMAGE);
  const image = await ensureImage(recipe);
  await powerOff(e);
  const overlay = join(e.reportDir, `rescue-disk-${Date.now().toString(36)}.qcow2`);
  await createOverlay(overlay, image.disk, { backingFormat: "qcow2" });
  const used = new Set(e.disks.map((d, i) => d.scsiId ?? i));
  let scsiId = 0;
  while (used.has(scsiId)) scsiId++;
  const r = new Machine({
    name: "rescue",
    runDir: e.reportDir,
    accel: e.accel ?? accel ?? (await chooseAccel()),
    sshKey: e.sshKey,
    disks: [...e.disks.map((d) => ({ ...d })), { path: overlay, format: "qcow2", id: RESCUE_DISK_ID, scsiId }],
    kernel: { path: join(image.dir, "vmlinuz"), initrd: join(image.dir, "initrd.img"), append: recipe.directBoot!.append },
    keepable: true,
  });
  let boot: BootRecord;
  try {
    boot = await r.boot({ reason: "rescue" });
    if (boot.outcome !== "ssh") throw new VmlabError(`the rescue system's boot ended as ${boot.outcome}`, { output: boot.evidence.join("\n"), hint: `its console log is ${r.serialLog}` });
  } catch (err) {
    await r.kill();
    throw err;
  }
  const kept = await keepMachine(r, { scenario: `rescue of ${e.id}`, verdict: "pass", runDir: e.reportDir, startedAt: new Date().toISOString(), id: `${e.id}-rescue` });
  // The rescue entry owns only its own disk: the target's stay with the target.
  const rescue: KeptVm = { ...kept, overlays: [overlay], disks: kept.disks, rescueOf: e.id };
  await saveKept(rescue);
  const target: KeptVm = { ...stripStatus(e), parked: { rescue: rescue.id, since: new Date().toISOString() } };
  await saveKept(target);
  return { target, rescue, boot };
}

/**
 * `vmlab rescue ID --done`: power the rescue system off and boot the machine
 * from its own disk through the firmware; it is kept again, under its id.
 */
export async function rescueDone(id: string, accel?: AccelChoice): Promise<{ entry: KeptVm; boot: BootRecord }> {
  const e = await findKept(id);
  if (!e.parked) throw new UsageError(`${e.id} is not in rescue`, { hint: `\`vmlab rescue ${e.id}\` boots the rescue system with its disks` });
  const r = await findKept(e.parked.rescue).catch(() => undefined);
  if (r) {
    await powerOff(r, { switchOff: true });
    await dropEntry(r.id);
    for (const f of r.overlays) await rm(f, { force: true });
  }
  const m = new Machine({
    name: e.machine,
    runDir: e.reportDir,
    disks: (e.disks ?? []).map((d) => ({ ...d })),
    accel: e.accel ?? accel ?? (await chooseAccel()),
    sshKey: e.sshKey,
    ...(e.memoryMiB ? { memoryMiB: e.memoryMiB } : {}),
    // Its own NVRAM, as the machine left it.
    ...(e.efiVars ? { uefi: { varsFrom: e.efiVars } } : {}),
    keepable: true,
  });
  let boot: BootRecord;
  try {
    boot = await m.boot({ via: "firmware", reason: "boot after rescue" });
  } catch (err) {
    await m.kill();
    throw err;
  }
  await dropEntry(e.id);
  const kept = await keepMachine(m, { scenario: e.scenario, verdict: e.verdict, runDir: e.reportDir, startedAt: e.startedAt, id: e.id });
  return { entry: kept, boot };
}

function stripStatus(e: KeptStatus): KeptVm {
  const { alive: _a, why: _w, ...rest } = e;
  return rest;
}
