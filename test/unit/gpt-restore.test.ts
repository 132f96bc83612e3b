/**
 * The GPT restore's parsing, on sgdisk's own output (GPT fdisk 1.0.9, the
 * version in Debian 12's guests): debian12-uefi's table written by sfdisk on
 * an 8 GiB file, dd'ed onto a 12 GiB one, then read (`-p`, `-v`, `-i 4`),
 * grown without `sgdisk -e` (refused) and read again after `sgdisk -e`.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseSgdiskInfo, parseSgdiskPrint } from "../../src/procedures/gpt-restore.ts";

const fixture = (f: string) => readFileSync(new URL(`../fixtures/gpt/${f}`, import.meta.url), "utf8");

describe("a GPT restored onto a larger disk", () => {
  it("still ends at the old disk's end: last usable sector 16777182 of 25165824", () => {
    expect(parseSgdiskPrint(fixture("sgdisk-p-restored-12g.txt"))).toEqual({ diskSectors: 25165824, firstUsable: 2048, lastUsable: 16777182 });
    expect(fixture("sgdisk-v-restored-12g.txt")).toMatch(/secondary header's self-pointer indicates that it doesn't reside\s+at the end of the disk/);
  });

  it("after sgdisk -e the usable range reaches the new end (less sgdisk's 2048-sector alignment)", () => {
    expect(parseSgdiskPrint(fixture("sgdisk-p-after-e-12g.txt"))).toEqual({ diskSectors: 25165824, firstUsable: 2048, lastUsable: 25163776 });
  });

  it("reads the LVM partition's type, GUID, range and name, which a grown partition keeps", () => {
    const p = parseSgdiskInfo(fixture("sgdisk-i4-restored-12g.txt"));
    expect(p.typeGuid).toBe("E6D6D379-F507-44C2-A23C-238F2A3DF928");
    expect(p.guid).toMatch(/^[0-9A-F-]{36}$/);
    expect([p.first, p.last, p.name]).toEqual([4737024, 16777182, "sys"]);
    // The grown end the procedure asks for: the old end plus the 4 GiB added, less 1 MiB; past 16777182 until sgdisk -e.
    const end = p.last + (25165824 - 16777216) - 2048;
    expect(end).toBe(25163742);
    expect(end).toBeLessThanOrEqual(25163776);
    expect(fixture("sgdisk-grow-refused.txt")).toContain(`Could not create partition 4 from 4737024 to ${end}`);
    expect(fixture("sgdisk-grow-refused.txt")).toMatch(/exit 4/);
  });

  it("says so when sgdisk prints no table", () => {
    expect(() => parseSgdiskPrint("Problem opening /dev/sdz for reading!")).toThrow(/no disk size/);
  });
});
