import { XMLParser, XMLValidator } from "fast-xml-parser";
import { describe, expect, it } from "vitest";
import { junitXml } from "../../src/scenario/report.ts";
import { validateScenario } from "../../src/scenario/registry.ts";
import { scenario, type ScenarioReport } from "../../src/scenario/types.ts";
import { UsageError } from "../../src/errors.ts";

function report(over: Partial<ScenarioReport>): ScenarioReport {
  return {
    scenario: "root-to-lvm",
    description: "d",
    kind: "rehearsal",
    verdict: "pass",
    startedAt: "2026-01-01T00:00:00.000Z",
    durationMs: 1500,
    steps: [{ name: "create LV", status: "passed", durationMs: 1000, startedAtMs: 0, log: [] }],
    boots: [],
    facts: {},
    runDir: "/r",
    consoleLogs: [],
    machines: [],
    ...over,
  };
}

describe("junitXml", () => {
  it("writes one suite per scenario and one case per step plus the verdict", () => {
    const xml = junitXml([report({})]);
    expect(xml).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>/);
    expect(xml).toContain('<testsuite name="root-to-lvm" tests="2" failures="0"');
    expect(xml).toContain('<testcase classname="root-to-lvm" name="create LV" time="1.000">');
    expect(xml).not.toContain("<failure");
  });

  it("marks the failing step and the verdict, escaping what the guest printed", () => {
    const xml = junitXml([
      report({
        verdict: "fail",
        steps: [{ name: "dd <sda2>", status: "failed", durationMs: 5, startedAtMs: 0, error: 'exit "1" & <boom>', log: [] }],
        error: { message: "boom", consoleTail: "grub rescue> \u0007" },
      }),
    ]);
    expect(xml).toContain('failures="2"');
    expect(xml).toContain('name="dd &lt;sda2&gt;"');
    expect(xml).toContain("exit &quot;1&quot; &amp; &lt;boom&gt;");
    expect(xml).toContain("grub rescue&gt;");
    expect(xml).not.toContain("\u0007");
  });
});

describe("junitXml round trip", () => {
  it("gives back every name and text as written, without the characters XML cannot carry", () => {
    const hostile = `it's "quoted" <b> & \`ticks\` $HOME\nnext line`;
    const xml = junitXml([
      report({
        scenario: "x-y",
        verdict: "fail",
        steps: [
          { name: hostile, status: "failed", durationMs: 5, startedAtMs: 0, error: `${hostile}\u0001`, log: ["line\u001b[0m"] },
          { name: "after", status: "skipped", durationMs: 0, startedAtMs: 0, log: [] },
        ],
        error: { message: "boom" },
      }),
    ]);
    expect(XMLValidator.validate(xml)).toBe(true);
    expect(xml).toContain("<skipped/>");
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "", parseAttributeValue: false, parseTagValue: false, trimValues: false }).parse(xml);
    const [first, second, verdict] = doc.testsuites.testsuite.testcase;
    expect(first.name).toBe(hostile);
    expect(first.failure.message).toBe(`it's "quoted" <b> & \`ticks\` $HOME`);
    expect(first.failure["#text"]).toBe(`${hostile}\nline[0m`);
    expect(second.name).toBe("after");
    expect(verdict.name).toBe("verdict");
    expect(doc.testsuites).toMatchObject({ tests: "3", failures: "2", errors: "0" });
  });
});

describe("validateScenario", () => {
  const good = scenario({ name: "x-y", description: "d", image: "debian12-bios", expect: { final: { boot: "no-reboot", data: "intact" } }, run: async () => undefined });

  it("accepts a complete scenario and fills the defaults", () => {
    expect(validateScenario(good, "x").kind).toBe("rehearsal");
    expect(good.seedData).toBe(true);
  });

  it("names every problem of a bad one", () => {
    const bad = { name: "Bad Name", description: "", image: "", run: 3 } as unknown as typeof good;
    try {
      validateScenario(bad, "scenarios/bad.ts");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      const text = (e as UsageError).describe();
      expect(text).toContain("scenarios/bad.ts");
      for (const p of ["name must be", "description is missing", "image is missing", "run must be a function"]) expect(text).toContain(p);
    }
  });
});
