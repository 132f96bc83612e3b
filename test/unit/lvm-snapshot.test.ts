import { describe, expect, it } from "vitest";
import { dmName, parseLvAttr, parseLvsJson } from "../../src/procedures/lvm-snapshot.ts";
import { diffTrees, parseSha256sum } from "../../src/procedures/tree.ts";

// Recorded from lvm2 2.03.16 on Debian 12: a 4M snapshot after 12M of writes to its origin.
const OVERFLOWED = `  {
      "report": [
          {
              "lv": [
                  {"lv_name":"backup", "lv_attr":"swi-I-s---", "origin":"website", "snap_percent":"100.00", "lv_size":"4194304"},
                  {"lv_name":"website", "lv_attr":"owi-aos---", "origin":"", "snap_percent":"", "lv_size":"33554432"}
              ]
          }
      ]
  }
`;

describe("lvs attributes", () => {
  it("reads a valid snapshot and its open origin", () => {
    expect(parseLvAttr("swi-a-s---")).toMatchObject({ snapshot: true, active: true, invalidSnapshot: false, open: false });
    expect(parseLvAttr("owi-aos---")).toMatchObject({ origin: true, snapshot: false, active: true, open: true, invalidSnapshot: false });
  });

  it("sees an invalidated snapshot, suspended or not, and a failed merge", () => {
    expect(parseLvAttr("swi-I-s---")).toMatchObject({ snapshot: true, invalidSnapshot: true, active: false });
    expect(parseLvAttr("swi-S-s---").invalidSnapshot).toBe(true);
    expect(parseLvAttr("Swi-m-s---")).toMatchObject({ snapshot: true, mergeFailed: true, invalidSnapshot: false });
  });

  it("a plain LV is neither snapshot nor origin", () => {
    expect(parseLvAttr("-wi-ao----")).toMatchObject({ snapshot: false, origin: false, invalidSnapshot: false, open: true });
  });

  it("rejects what is not an lv_attr string", () => {
    expect(() => parseLvAttr("swi-I")).toThrow(/not an lv_attr/);
    expect(() => parseLvAttr("")).toThrow(/not an lv_attr/);
  });
});

describe("lvs --reportformat json", () => {
  it("parses rows with sizes and snapshot usage", () => {
    const rows = parseLvsJson(OVERFLOWED);
    expect(rows).toEqual([
      { name: "backup", attr: "swi-I-s---", origin: "website", snapPercent: 100, sizeBytes: 4194304 },
      { name: "website", attr: "owi-aos---", origin: "", snapPercent: null, sizeBytes: 33554432 },
    ]);
    expect(parseLvAttr(rows[0]!.attr).invalidSnapshot).toBe(true);
  });

  it("says so when lvs printed an error instead of JSON", () => {
    expect(() => parseLvsJson('  Volume group "datadisks" not found')).toThrow(/did not print JSON/);
  });
});

describe("device-mapper names", () => {
  it("doubles dashes in VG and LV names", () => {
    expect(dmName("sys", "vm01-snap")).toBe("sys-vm01--snap");
    expect(dmName("my-vg")).toBe("my--vg-");
  });
});

describe("tree checksums", () => {
  const a = "a".repeat(64);
  const b = "b".repeat(64);
  const before = parseSha256sum(`${a}  ./database\n${b}  ./img/logo.png\n${a}  ./about us.txt\n`);

  it("parses sha256sum lines, names with spaces included", () => {
    expect(before).toEqual({ database: a, "img/logo.png": b, "about us.txt": a });
  });

  it("is equal only with the same files and contents, nothing missing or extra", () => {
    expect(diffTrees(before, { ...before }).equal).toBe(true);
    expect(diffTrees(before, { ...before, database: b })).toMatchObject({ equal: false, changed: ["database"] });
    expect(diffTrees(before, { ...before, "ponies.js": a })).toMatchObject({ equal: false, added: ["ponies.js"] });
    const { database: _, ...rest } = before;
    expect(diffTrees(before, rest)).toMatchObject({ equal: false, missing: ["database"] });
  });
});
