/**
 * UEFI boot entries and OVMF's boot-option lines, on recorded output:
 * test/fixtures/uefi/efibootmgr-after-grub-install.txt is `efibootmgr -v` in
 * debian12-uefi's provisioning boot right after grub-install; the console
 * logs are the boots recorded by `vmlab run uefi-nvram-lost
 * uefi-nvram-lost-no-fallback` (see test/unit/boot-classify.test.ts).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { diskEntries, optionsTried, parseEfibootmgr } from "../../src/procedures/uefi.ts";

const fixture = (p: string) => readFileSync(new URL(`../fixtures/${p}`, import.meta.url), "latin1");

describe("parseEfibootmgr", () => {
  it("reads the order and the entries grub-install left, with their device paths", () => {
    const b = parseEfibootmgr(fixture("uefi/efibootmgr-after-grub-install.txt"));
    expect(b.order).toEqual(["0001", "0000"]);
    expect(b.entries.map((e) => [e.num, e.active, e.label])).toEqual([
      ["0000", true, "UiApp"],
      ["0001", true, "debian"],
    ]);
    const [debian] = diskEntries(b);
    expect(debian!.label).toBe("debian");
    expect(debian!.path).toMatch(/^HD\(1,GPT,[0-9a-f-]{36},0x800,0x20000\)\/File\(\\EFI\\debian\\grubx64\.efi\)$/);
  });

  it("reads BootCurrent, inactive entries and the space-separated form of older efibootmgr", () => {
    const b = parseEfibootmgr("BootCurrent: 0003\nBootOrder: 0003,0001\nBoot0001  UEFI QEMU QEMU HARDDISK  PciRoot(0x0)/Pci(0x2,0x0)/Scsi(0x0,0x0)\n");
    expect(b.current).toBe("0003");
    expect(b.entries).toEqual([{ num: "0001", active: false, label: "UEFI QEMU QEMU HARDDISK", path: "PciRoot(0x0)/Pci(0x2,0x0)/Scsi(0x0,0x0)" }]);
    expect(diskEntries(b)).toEqual([]);
  });
});

describe("optionsTried", () => {
  it("a boot through the NVRAM entry starts it", () => {
    expect(optionsTried(fixture("console/login-prompt-debian12-uefi-boot-entry.log"))).toEqual([{ num: "0003", label: "debian", result: "started" }]);
  });
  it("with an empty NVRAM the firmware starts the disk's own option (its removable-media path)", () => {
    expect(optionsTried(fixture("console/login-prompt-debian12-uefi-removable-path.log"))).toEqual([{ num: "0001", label: "UEFI QEMU QEMU HARDDISK", result: "started" }]);
  });
  it("without a loader there, the disk fails and the shell starts", () => {
    expect(optionsTried(fixture("console/uefi-shell-debian12-nvram-lost.log"))).toEqual([
      { num: "0001", label: "UEFI QEMU QEMU HARDDISK", result: "failed" },
      { num: "0002", label: "EFI Internal Shell", result: "started" },
    ]);
  });
});
