/**
 * Byte-for-byte proof for a directory tree on the guest: the sha256 of every
 * regular file, keyed by its path relative to the tree. Two trees are equal
 * when the same files exist with the same contents, nothing missing and
 * nothing extra (a rollback that leaves an upgrade's new file behind is not a
 * rollback).
 */
import { VmlabError } from "../errors.ts";
import type { Machine } from "../vm/machine.ts";
import { sh } from "../vm/guest-sh.ts";

/** Relative path -> sha256. */
export type TreeSums = Record<string, string>;

export interface TreeDiff {
  equal: boolean;
  missing: string[];
  changed: string[];
  added: string[];
}

/** Parse `sha256sum` output lines ("<64 hex>  ./path") into a map. */
export function parseSha256sum(text: string): TreeSums {
  const sums: TreeSums = {};
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) sums[m[2]!.replace(/^\.\//, "")] = m[1]!;
  }
  return sums;
}

export function diffTrees(expected: TreeSums, actual: TreeSums): TreeDiff {
  const missing = Object.keys(expected).filter((k) => !(k in actual));
  const changed = Object.keys(expected).filter((k) => k in actual && actual[k] !== expected[k]);
  const added = Object.keys(actual).filter((k) => !(k in expected));
  return { equal: !missing.length && !changed.length && !added.length, missing, changed, added };
}

export function describeDiff(d: TreeDiff): string {
  if (d.equal) return "equal";
  return [
    ...d.missing.map((p) => `missing: ${p}`),
    ...d.changed.map((p) => `changed: ${p}`),
    ...d.added.map((p) => `unexpected: ${p}`),
  ].join("\n");
}

/** sha256 of every regular file under `dir` on the guest. */
export async function treeSums(vm: Machine, dir: string): Promise<TreeSums> {
  const out = await vm.succeed(sh`cd ${dir} && find . -type f -print0 | sort -z | xargs -0r sha256sum`, {
    hint: `is ${dir} mounted?`,
  });
  return parseSha256sum(out);
}

/** Throw with the differences unless the tree under `dir` equals `expected`. */
export async function expectTree(vm: Machine, dir: string, expected: TreeSums, what: string, hint: string): Promise<TreeSums> {
  const actual = await treeSums(vm, dir);
  const d = diffTrees(expected, actual);
  if (!d.equal) throw new VmlabError(`${what}: ${dir} differs from the expected files`, { output: describeDiff(d), hint });
  return actual;
}
