/**
 * How the suite shares the host's two cores (test/sequencer.ts, test/slots.ts):
 * every VM test file declares the cores it keeps busy, unit files come first,
 * then the two-core VM files, then the one-core ones, longest first.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import UnitFirst, { coresOf, VM_FILES } from "../sequencer.ts";
import { projectRoot } from "../../src/paths.ts";

const spec = (moduleId: string) => ({ moduleId, project: { name: "" } }) as never;

describe("the suite's core slots", () => {
  it("every VM test file declares its cores and minutes, and nothing else is declared", () => {
    const files = readdirSync(join(projectRoot, "test", "vm")).filter((f) => f.endsWith(".test.ts")).map((f) => `test/vm/${f}`);
    expect(Object.keys(VM_FILES).sort()).toEqual(files.sort());
  });

  it("unit files take no core slot (the unit lock), VM files their declared cores, an undeclared VM file both", () => {
    expect(coresOf(join(projectRoot, "test/unit/size.test.ts"))).toBe(0);
    expect(coresOf(join(projectRoot, "test/vm/boot.test.ts"))).toBe(1);
    expect(coresOf(join(projectRoot, "test/vm/migrations.test.ts"))).toBe(2);
    expect(coresOf(join(projectRoot, "test/vm/new-one.test.ts"))).toBe(2);
  });

  it("order: unit files, then two-core VM files longest first, then one-core VM files longest first", async () => {
    const ids = ["test/vm/warm.test.ts", "test/unit/a.test.ts", "test/vm/boot.test.ts", "test/vm/faults.test.ts", "test/vm/dr-boot.test.ts", "test/vm/migrations.test.ts", "test/unit/b.test.ts"].map((f) => join(projectRoot, f));
    const seq = new UnitFirst({ cache: { getFileTestResults: () => undefined, getFileStats: () => undefined }, config: { root: projectRoot } } as never);
    const sorted = (await seq.sort(ids.map(spec))).map((s: { moduleId: string }) => s.moduleId.slice(projectRoot.length + 1));
    expect(sorted.slice(0, 2).sort()).toEqual(["test/unit/a.test.ts", "test/unit/b.test.ts"]);
    expect(sorted.slice(2)).toEqual(["test/vm/migrations.test.ts", "test/vm/faults.test.ts", "test/vm/dr-boot.test.ts", "test/vm/boot.test.ts", "test/vm/warm.test.ts"]);
  });
});
