import { describe, expect, it } from "vitest";
import { planPartitions, sfdiskScript } from "../../src/image/layout.ts";
import recipe from "../../images/debian12-bios.ts";
import { UsageError } from "../../src/errors.ts";

describe("planPartitions", () => {
  it("lays out debian12-bios like the runbook's server: 200M /boot, 2G /, the rest LVM", () => {
    const { diskBytes, partitions } = planPartitions(recipe.disk);
    expect(diskBytes).toBe(8 * 2 ** 30);
    expect(partitions.map((p) => [p.index, p.startSector, p.sizeSectors, p.type])).toEqual([
      [1, 2048, 409600, "83"],
      [2, 411648, 4194304, "83"],
      [3, 4605952, 16777216 - 4605952, "8e"],
    ]);
    expect(partitions[0]!.fs).toMatchObject({ type: "ext2", mount: "/boot" });
    expect(partitions[1]!.fs).toMatchObject({ type: "ext3", mount: "/", label: "root" });
    expect(partitions[2]!.lvm).toEqual({ vg: "sys" });
  });

  it("writes an sfdisk script sfdisk understands", () => {
    const s = sfdiskScript(planPartitions(recipe.disk).partitions);
    expect(s).toContain("label: dos");
    expect(s).toContain("start=2048, size=409600, type=83, bootable");
    expect(s).toContain("start=4605952, size=12171264, type=8e");
  });

  it("refuses layouts that do not fit, with a clear error", () => {
    expect(() =>
      planPartitions({ size: "1G", label: "msdos", partitions: [{ name: "big", size: "2G", type: "83" }] }),
    ).toThrow(UsageError);
    expect(() =>
      planPartitions({ size: "1G", label: "msdos", partitions: [{ name: "a", type: "83" }, { name: "b", size: "1M", type: "83" }] }),
    ).toThrow(/only the last partition may omit its size/);
    expect(() => planPartitions({ size: "8Gb", label: "msdos", partitions: [] })).toThrow(/8Gb/);
  });
});
