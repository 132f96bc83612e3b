import { writeFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { dir, type DirectoryResult } from "tmp-promise";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  convertArgs,
  convertImage,
  createArgs,
  createImage,
  createOverlay,
  imageInfo,
  infoArgs,
  listSnapshots,
  overlayArgs,
  parseInfo,
  resizeArgs,
  resizeImage,
} from "../../src/disk/qemu-img.ts";
import { HostError, UsageError, VmlabError } from "../../src/errors.ts";

const G = 1024 ** 3;
const M = 1024 ** 2;

describe("argument builders", () => {
  it("createArgs passes the size in bytes", () => {
    expect(createArgs("/x/a.qcow2", { format: "qcow2", size: "8G" })).toEqual(["create", "-q", "-f", "qcow2", "/x/a.qcow2", String(8 * G)]);
    expect(createArgs("a.raw", { format: "raw", size: 4096 })).toEqual(["create", "-q", "-f", "raw", "a.raw", "4096"]);
  });

  it("createArgs rejects bad sizes and formats before anything runs", () => {
    expect(() => createArgs("a", { format: "raw", size: "8Gb" })).toThrow(UsageError);
    expect(() => createArgs("a", { format: "raw", size: 1000 })).toThrow(/multiple of 512/);
    expect(() => createArgs("a", { format: "vmdk" as "raw", size: "1G" })).toThrow(/raw or qcow2/);
  });

  it("overlayArgs makes the backing path absolute and passes -F", () => {
    const args = overlayArgs("over.qcow2", "base.raw", { backingFormat: "raw" });
    expect(args).toEqual(["create", "-q", "-f", "qcow2", "-b", join(process.cwd(), "base.raw"), "-F", "raw", "over.qcow2"]);
    expect(overlayArgs("o", "/b", { backingFormat: "qcow2", size: "2G" }).at(-1)).toBe(String(2 * G));
  });

  it("convertArgs", () => {
    expect(convertArgs("a.raw", "b.qcow2", { format: "qcow2", sourceFormat: "raw" })).toEqual(["convert", "-q", "-f", "raw", "-O", "qcow2", "a.raw", "b.qcow2"]);
    expect(convertArgs("a", "b", { format: "raw" })).toEqual(["convert", "-q", "-O", "raw", "a", "b"]);
  });

  it("resizeArgs", () => {
    expect(resizeArgs("a.qcow2", "2G")).toEqual(["resize", "-q", "a.qcow2", String(2 * G)]);
    expect(resizeArgs("a.raw", "1M", { shrink: true, format: "raw" })).toEqual(["resize", "-q", "--shrink", "-f", "raw", "a.raw", String(M)]);
    expect(() => resizeArgs("a", "+1G")).toThrow(UsageError);
  });

  it("infoArgs", () => {
    expect(infoArgs("a")).toEqual(["info", "--output=json", "a"]);
    expect(infoArgs("a", { backingChain: true, forceShare: true })).toEqual(["info", "--output=json", "--backing-chain", "-U", "a"]);
  });

  it("parseInfo maps the JSON fields", () => {
    const info = parseInfo({
      filename: "a.qcow2",
      format: "qcow2",
      "virtual-size": 10,
      "actual-size": 20,
      "cluster-size": 65536,
      "dirty-flag": false,
      "backing-filename": "b.raw",
      "backing-filename-format": "raw",
      snapshots: [{ id: "1", name: "s", "vm-state-size": 0, "date-sec": 100, "date-nsec": 5e8, "vm-clock-sec": 2, "vm-clock-nsec": 5e8 }],
    });
    expect(info).toMatchObject({ filename: "a.qcow2", virtualSize: 10, actualSize: 20, clusterSize: 65536, dirty: false, backingFilename: "b.raw", backingFormat: "raw" });
    expect(info.snapshots[0]).toEqual({ id: "1", name: "s", vmStateSize: 0, date: new Date(100_500), vmClock: 2.5 });
  });
});

describe("with the real qemu-img", () => {
  let tmp: DirectoryResult;
  const p = (name: string) => join(tmp.path, name);

  beforeEach(async () => {
    tmp = await dir({ unsafeCleanup: true, prefix: "vmlab-qemu-img-" });
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it("creates raw and qcow2 images and reads their info", async () => {
    await createImage(p("a.raw"), { format: "raw", size: "16M" });
    await createImage(p("a.qcow2"), { format: "qcow2", size: "1G" });
    const raw = await imageInfo(p("a.raw"));
    expect(raw).toMatchObject({ format: "raw", virtualSize: 16 * M, snapshots: [] });
    expect(raw.backingFilename).toBeUndefined();
    const q = await imageInfo(p("a.qcow2"));
    expect(q).toMatchObject({ filename: p("a.qcow2"), format: "qcow2", virtualSize: G, clusterSize: 65536, dirty: false, snapshots: [] });
    expect(q.actualSize).toBeGreaterThan(0);
    expect(q.actualSize).toBeLessThan(M); // sparse
  });

  it("refuses to create over an existing file unless overwrite", async () => {
    await createImage(p("a.raw"), { format: "raw", size: "1M" });
    await expect(createImage(p("a.raw"), { format: "raw", size: "2M" })).rejects.toThrow(/already exists/);
    expect((await imageInfo(p("a.raw"))).virtualSize).toBe(M);
    await createImage(p("a.raw"), { format: "raw", size: "2M", overwrite: true });
    expect((await imageInfo(p("a.raw"))).virtualSize).toBe(2 * M);
  });

  it("a bad size fails before anything is written", async () => {
    await expect(createImage(p("x.raw"), { format: "raw", size: "8Gb" })).rejects.toThrow(UsageError);
    await expect(stat(p("x.raw"))).rejects.toThrow();
  });

  it("creates an overlay whose info shows the backing file", async () => {
    await createImage(p("base.raw"), { format: "raw", size: "8M" });
    await createOverlay(p("over.qcow2"), p("base.raw")); // backing format read from the file
    const info = await imageInfo(p("over.qcow2"), { backingChain: true });
    expect(info).toMatchObject({ format: "qcow2", virtualSize: 8 * M, backingFilename: p("base.raw"), backingFormat: "raw" });
    expect(info.backing).toMatchObject({ filename: p("base.raw"), format: "raw" });
    await expect(createOverlay(p("over.qcow2"), p("base.raw"))).rejects.toThrow(UsageError);
    await expect(createOverlay(p("o2.qcow2"), p("missing.raw"), { backingFormat: "raw" })).rejects.toThrow(/backing image not found/);
  });

  it("converts raw to qcow2", async () => {
    await createImage(p("a.raw"), { format: "raw", size: "4M" });
    await execa("dd", ["if=/dev/urandom", `of=${p("a.raw")}`, "bs=64K", "count=1", "conv=notrunc", "status=none"]);
    await convertImage(p("a.raw"), p("a.qcow2"), { format: "qcow2", sourceFormat: "raw" });
    expect(await imageInfo(p("a.qcow2"))).toMatchObject({ format: "qcow2", virtualSize: 4 * M });
    const cmp = await execa("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", p("a.raw"), p("a.qcow2")], { reject: false });
    expect(cmp.exitCode).toBe(0);
    await expect(convertImage(p("a.raw"), p("a.qcow2"), { format: "qcow2" })).rejects.toThrow(/already exists/);
  });

  it("resizes, and refuses to shrink without shrink: true", async () => {
    await createImage(p("a.qcow2"), { format: "qcow2", size: "64M" });
    await resizeImage(p("a.qcow2"), "128M");
    expect((await imageInfo(p("a.qcow2"))).virtualSize).toBe(128 * M);
    const err = await resizeImage(p("a.qcow2"), "32M").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmlabError);
    expect((err as VmlabError).hint).toMatch(/shrink: true/);
    await resizeImage(p("a.qcow2"), "32M", { shrink: true });
    expect((await imageInfo(p("a.qcow2"))).virtualSize).toBe(32 * M);
  });

  it("lists snapshots", async () => {
    await createImage(p("a.qcow2"), { format: "qcow2", size: "8M" });
    expect(await listSnapshots(p("a.qcow2"))).toEqual([]);
    await execa("qemu-img", ["snapshot", "-c", "before-migration", p("a.qcow2")]);
    const snaps = await listSnapshots(p("a.qcow2"));
    expect(snaps).toHaveLength(1);
    expect(snaps[0]).toMatchObject({ id: "1", name: "before-migration", vmStateSize: 0, vmClock: 0 });
    expect(Math.abs(snaps[0]!.date.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it("info on a non-image file reports raw", async () => {
    await writeFile(p("notes.txt"), "hello\n");
    // qemu-img reports whole sectors: 6 bytes show up as 512.
    expect(await imageInfo(p("notes.txt"))).toMatchObject({ format: "raw", virtualSize: 512 });
  });

  it("info on a missing file is a clear error", async () => {
    const err = await imageInfo(p("nope.qcow2")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmlabError);
    expect((err as VmlabError).message).toBe(`image not found: "${p("nope.qcow2")}"`);
    expect((err as VmlabError).where).toContain("qemu-img info");
  });

  it("a qemu-img failure shows the command line, exit code and stderr", async () => {
    await writeFile(p("bad.qcow2"), "not a qcow2 image at all");
    // Read as qcow2, the text file fails inside qemu-img (probing would just call it raw).
    const e2 = (await convertImage(p("bad.qcow2"), p("out.raw"), { format: "raw", sourceFormat: "qcow2" }).catch((e: unknown) => e)) as VmlabError;
    expect(e2).toBeInstanceOf(VmlabError);
    expect(e2.message).toMatch(/^qemu-img convert failed \(exit code 1\)$/);
    expect(e2.where).toMatch(/qemu-img convert -q -f qcow2 -O raw .*bad\.qcow2 .*out\.raw$/);
    expect(e2.output).toMatch(/qcow2/i);
    expect(e2.describe()).toContain("try:");
  });

  it("a missing qemu-img is a HostError naming qemu-utils", async () => {
    const saved = process.env.PATH;
    process.env.PATH = tmp.path; // nothing in it, and qemu-img is not in /usr/sbin or /sbin
    try {
      const err = await createImage(p("a.raw"), { format: "raw", size: "1M" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HostError);
      expect((err as HostError).message).toMatch(/qemu-img is missing.*qemu-utils/);
      expect((err as HostError).hint).toContain("apt-get install -y --no-install-recommends qemu-utils");
    } finally {
      process.env.PATH = saved;
    }
  });
});
