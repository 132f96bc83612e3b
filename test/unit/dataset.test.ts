import { describe, expect, it } from "vitest";
import { compareManifests, describeCheck, parseManifest } from "../../src/scenario/dataset.ts";

const before = parseManifest(`file 1111111111111111111111111111111111111111111111111111111111111111  ./big.bin
file 2222222222222222222222222222222222222222222222222222222222222222  ./with space/file one.txt
link small/f1  ./link-to-f1
nlink 2  ./big.bin
xattr kept  ./xattr.txt
`);

describe("data set manifest", () => {
  it("parses files, names with spaces, links, link counts and xattrs", () => {
    expect(before["file ./with space/file one.txt"]).toBe("2".repeat(64));
    expect(before["link ./link-to-f1"]).toBe("small/f1");
    expect(before["nlink ./big.bin"]).toBe("2");
    expect(before["xattr ./xattr.txt"]).toBe("kept");
  });

  it("is intact only when every entry matches", () => {
    expect(compareManifests(before, { ...before }).intact).toBe(true);
  });

  it("reports a changed checksum, a lost hard link, a dropped xattr and a missing file", () => {
    const after = { ...before };
    after["file ./big.bin"] = "3".repeat(64);
    after["nlink ./big.bin"] = "1";
    after["xattr ./xattr.txt"] = "";
    delete after["link ./link-to-f1"];
    const c = compareManifests(before, after);
    expect(c.intact).toBe(false);
    expect(c.changed.sort()).toEqual(["file ./big.bin", "nlink ./big.bin", "xattr ./xattr.txt"]);
    expect(c.missing).toEqual(["link ./link-to-f1"]);
    expect(describeCheck(c)).toContain("missing: link ./link-to-f1");
  });
});
