import { describe, expect, it } from "vitest";
import { formatSize, parseSize, toBytes } from "../../src/disk/size.ts";
import { UsageError } from "../../src/errors.ts";

describe("parseSize", () => {
  it.each([
    ["8G", 8 * 1024 ** 3],
    ["200M", 200 * 1024 ** 2],
    ["512K", 512 * 1024],
    ["2T", 2 * 1024 ** 4],
    ["4GiB", 4 * 1024 ** 3],
    ["16MiB", 16 * 1024 ** 2],
    ["1KiB", 1024],
    ["1TiB", 1024 ** 4],
    ["8g", 8 * 1024 ** 3],
    ["1048576", 1048576],
    ["  8G\n", 8 * 1024 ** 3],
  ])("%j is %d bytes", (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it.each(["8Gb", "8GB", "-1G", "", "   ", "0", "0G", "1.5G", ".5G", "1.5", "G", "8 G", "8X", "1e9", "0x10", "9999999999T"])(
    "rejects %j with a UsageError",
    (input) => {
      expect(() => parseSize(input)).toThrow(UsageError);
    },
  );

  it("quotes the input and lists the accepted forms", () => {
    expect(() => parseSize("8Gb")).toThrow('bad size "8Gb": use a whole number with K, M, G or T (powers of 1024), e.g. 8G or 200M');
    expect(() => parseSize("8Gb", "disk size")).toThrow(/^bad disk size "8Gb"/);
  });

  it("says decimals are not accepted and suggests a whole number", () => {
    expect(() => parseSize("1.5G")).toThrow(/decimals are not accepted.*1536M/);
    expect(() => parseSize("1.5")).toThrow(/decimals are not accepted/);
  });

  it("says why for negative, zero and empty", () => {
    expect(() => parseSize("-1G")).toThrow(/must be positive/);
    expect(() => parseSize("0")).toThrow(/greater than zero/);
    expect(() => parseSize("")).toThrow(/empty/);
  });

  it("exits with code 2", () => {
    try {
      parseSize("nope");
      expect.unreachable();
    } catch (e) {
      expect((e as UsageError).exitCode).toBe(2);
    }
  });
});

describe("toBytes", () => {
  it("takes text or positive whole numbers", () => {
    expect(toBytes("1M")).toBe(1048576);
    expect(toBytes(4096)).toBe(4096);
    for (const bad of [0, -1, 1.5, Number.NaN, Infinity]) expect(() => toBytes(bad)).toThrow(UsageError);
  });
});

describe("formatSize", () => {
  it.each([
    [8589934592, "8G"],
    [209715200, "200M"],
    [1024, "1K"],
    [1536 * 1024, "1536K"],
    [1024 ** 4 * 3, "3T"],
    [1000, "1000"],
    [0, "0"],
  ])("%d is %s", (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it("round-trips through parseSize", () => {
    for (const n of [1, 512, 1000, 4096, 209715200, 8589934592, 123456789]) expect(parseSize(formatSize(n))).toBe(n);
  });

  it("refuses negative or fractional bytes", () => {
    expect(() => formatSize(-1)).toThrow(RangeError);
    expect(() => formatSize(1.5)).toThrow(RangeError);
  });
});
