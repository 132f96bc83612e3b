/**
 * UEFI boot entries and the ESP, as an admin handles them with efibootmgr
 * and grub-install: read the firmware's boot entries, put GRUB at the
 * removable-media path, and make an entry again after the NVRAM was lost.
 */
import { VmlabError } from "../errors.ts";
import type { Machine } from "../vm/machine.ts";
import { sh } from "../vm/guest-sh.ts";

export interface BootEntry {
  /** Four hex digits: Boot0004 → "0004". */
  num: string;
  active: boolean;
  label: string;
  /** The device path, as efibootmgr -v prints it. */
  path: string;
}

export interface BootEntries {
  current?: string;
  order: string[];
  entries: BootEntry[];
}

/** `efibootmgr -v` parsed. Pure. */
export function parseEfibootmgr(text: string): BootEntries {
  const out: BootEntries = { order: [], entries: [] };
  for (const line of text.split("\n")) {
    const cur = /^BootCurrent:\s*([0-9A-Fa-f]{4})/.exec(line);
    if (cur) out.current = cur[1]!.toUpperCase();
    const order = /^BootOrder:\s*([0-9A-Fa-f,]+)/.exec(line);
    if (order) out.order = order[1]!.split(",").filter(Boolean).map((n) => n.toUpperCase());
    // "Boot0004* debian\tHD(1,GPT,...)/File(\EFI\debian\grubx64.efi)"; older efibootmgr puts spaces instead of a tab.
    const e = /^Boot([0-9A-Fa-f]{4})(\*?)\s+(.*)$/.exec(line);
    if (e) {
      const rest = e[3]!;
      const tab = rest.indexOf("\t");
      const [label, path] = tab >= 0 ? [rest.slice(0, tab), rest.slice(tab + 1)] : splitAtDevicePath(rest);
      out.entries.push({ num: e[1]!.toUpperCase(), active: e[2] === "*", label: label.trim(), path: path.trim() });
    }
  }
  return out;
}

function splitAtDevicePath(rest: string): [string, string] {
  const m = /\s(HD\(|PciRoot\(|FvVol\(|Fv\(|VenHw\(|VenMedia\(|MemoryMapped\()/.exec(rest);
  return m ? [rest.slice(0, m.index), rest.slice(m.index + 1)] : [rest, ""];
}

/** The firmware's boot entries, read in the guest. */
export async function bootEntries(vm: Machine): Promise<BootEntries> {
  return parseEfibootmgr(await vm.succeed("efibootmgr -v", { hint: "efibootmgr needs a UEFI boot and efivarfs" }));
}

/** The removable-media path every UEFI firmware tries on a disk that has no boot entry of its own. */
export const FALLBACK_PATH = "/EFI/BOOT/BOOTX64.EFI";

/** The entries that load a file from a disk's partition (HD(...)/File(...)), by label. */
export function diskEntries(b: BootEntries): BootEntry[] {
  return b.entries.filter((e) => /HD\([^)]*\)\/File\(/i.test(e.path));
}

/**
 * GRUB at the removable-media path of the ESP mounted at `espMount`:
 * `grub-install --removable` writes \EFI\BOOT\BOOTX64.EFI and leaves the
 * NVRAM alone. What Debian does on its own with
 * `grub-efi-amd64/force_extra_removable=true`.
 */
export async function installRemovable(vm: Machine, espMount = "/boot/efi"): Promise<void> {
  await vm.succeed(`grub-install --target=x86_64-efi --efi-directory=${espMount} --removable`, { timeoutMs: 10 * 60_000 });
  await vm.succeed(`test -s ${espMount}${FALLBACK_PATH}`, { hint: `grub-install --removable wrote nothing at ${FALLBACK_PATH}` });
}

/** A boot entry for GRUB on partition `part` of `disk`; returns the new entry. */
export async function addEntry(vm: Machine, o: { disk: string; part: number; label: string; loader?: string }): Promise<BootEntry> {
  const loader = o.loader ?? "\\EFI\\debian\\grubx64.efi";
  const before = new Set((await bootEntries(vm)).entries.map((e) => e.num));
  await vm.succeed(sh`efibootmgr -q -c -d ${o.disk} -p ${o.part} -L ${o.label} -l ${loader}`);
  const made = (await bootEntries(vm)).entries.find((e) => !before.has(e.num) && e.label === o.label);
  if (!made) throw new VmlabError(`efibootmgr made no entry "${o.label}"`, { output: (await vm.run("efibootmgr -v")).stdout });
  return made;
}

/**
 * The boot options OVMF tried in one boot's console, in order, from its
 * BdsDxe lines (`BdsDxe: loading Boot0004 "debian" from HD(...)`, then
 * `starting` or `failed to load ...: Not Found`). Pure.
 */
export function optionsTried(consoleText: string): { num: string; label: string; result: "started" | "failed" }[] {
  const out: { num: string; label: string; result: "started" | "failed" }[] = [];
  for (const line of consoleText.replace(/\r/g, "").split("\n")) {
    const m = /BdsDxe: (starting|failed to load|failed to start) Boot([0-9A-Fa-f]{4}) "([^"]*)"/.exec(line);
    if (m) out.push({ num: m[2]!.toUpperCase(), label: m[3]!.trim(), result: m[1] === "starting" ? "started" : "failed" });
  }
  return out;
}

/** The boot option OVMF started last in this boot's slice of the console, with the line that says so. */
export async function startedOption(vm: Machine, boot: { log: { from: number; to: number } }): Promise<{ num: string; label: string } | undefined> {
  const text = await vm.consoleSince(boot.log.from);
  return optionsTried(text.slice(0, boot.log.to - boot.log.from)).filter((o) => o.result === "started").at(-1);
}

/**
 * The UEFI image as installed: one boot entry named debian and nothing at
 * the removable-media path. A step of its own, shared by a rehearsal and its
 * twin (whose fork replays it).
 */
export async function expectInstalledEntries(ctx: Pick<import("../scenario/types.ts").ScenarioContext, "vm" | "step" | "record">): Promise<void> {
  const { vm, step, record } = ctx;
  await step("read the boot entries: debian's GRUB on the ESP, nothing at the removable-media path", async () => {
    const b = await bootEntries(vm);
    const debian = diskEntries(b).filter((e) => e.label === "debian");
    if (debian.length !== 1) throw new VmlabError("the image should boot through one entry named debian", { output: JSON.stringify(b, null, 2) });
    record("entriesBefore", diskEntries(b).map((e) => `Boot${e.num} ${e.label}: ${e.path}`));
    if ((await vm.run(`test -e /boot/efi${FALLBACK_PATH}`)).exitCode === 0) throw new VmlabError(`the image already has ${FALLBACK_PATH}`);
  });
}
