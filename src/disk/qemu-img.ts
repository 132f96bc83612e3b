/**
 * A typed wrapper of the real `qemu-img` binary.
 *
 * Argument building is pure (the *Args functions) so it can be tested without
 * running anything; the async functions validate their input first (sizes,
 * existing files), then run qemu-img. Nothing runs or is written when the
 * input is bad.
 */
import { access, constants } from "node:fs/promises";
import { resolve } from "node:path";
import { execa } from "execa";
import { UsageError, VmlabError } from "../errors.ts";
import { commandLine, requireTool } from "../host/tools.ts";
import { toBytes } from "./size.ts";

export type ImageFormat = "raw" | "qcow2";

export interface Snapshot {
  id: string;
  name: string;
  /** Bytes of saved VM state (0 for a disk-only snapshot). */
  vmStateSize: number;
  /** When the snapshot was taken. */
  date: Date;
  /** Guest clock at the snapshot, in seconds (fractional). */
  vmClock: number;
}

export interface ImageInfo {
  filename: string;
  /** The format qemu-img found ("raw", "qcow2", ...); a string because other formats can show up. */
  format: string;
  /** Size the guest sees, in bytes. */
  virtualSize: number;
  /** Bytes the image uses on the host disk. */
  actualSize: number;
  /** The backing file as recorded in the image (may be relative to the image). */
  backingFilename?: string;
  /** The backing file's path as qemu-img resolved it. */
  fullBackingFilename?: string;
  backingFormat?: string;
  clusterSize?: number;
  /** True when the image was not closed cleanly (qcow2 lazy refcounts). */
  dirty?: boolean;
  snapshots: Snapshot[];
  /** Only with `backingChain: true`: the backing image's info, recursively. */
  backing?: ImageInfo;
}

export interface CreateOptions {
  format: ImageFormat;
  /** "8G", "200M", ... or bytes. Must be a multiple of 512 bytes. */
  size: string | number;
  /** Replace an existing file. Without it, creating over a file is refused. */
  overwrite?: boolean;
}

export interface OverlayOptions {
  /** Format of the backing file; read from the file with qemu-img info when omitted. */
  backingFormat?: string;
  /** Size of the overlay; defaults to the backing file's size. */
  size?: string | number;
  overwrite?: boolean;
}

export interface ConvertOptions {
  format: ImageFormat;
  /** Format of the source. Give it for raw sources: probing a raw image's format is unsafe. */
  sourceFormat?: string;
  overwrite?: boolean;
}

export interface ResizeOptions {
  /** Allow making the image smaller (data past the new end is lost). */
  shrink?: boolean;
  /** Format of the image, to skip probing. */
  format?: string;
}

export interface InfoOptions {
  /** Also read the backing files, filling `backing` recursively. */
  backingChain?: boolean;
  /** Read the image even while a running VM holds its lock (-U). The answer may be stale. */
  forceShare?: boolean;
}

/** Disk sizes must be whole sectors: qemu-img silently rounds other sizes up. */
function diskBytes(size: string | number, what: string): number {
  const bytes = toBytes(size, what);
  if (bytes % 512 !== 0) {
    throw new UsageError(`bad ${what} ${JSON.stringify(size)}: ${bytes} bytes is not a multiple of 512 bytes (one sector)`, {
      hint: "use a size in K, M, G or T, e.g. 8G or 200M",
    });
  }
  return bytes;
}

function checkFormat(format: string, what: string): void {
  if (format !== "raw" && format !== "qcow2") {
    throw new UsageError(`bad ${what} "${format}": the lab makes raw or qcow2 images`, { hint: "use raw or qcow2" });
  }
}

// ---- pure argument builders -------------------------------------------------

/** `qemu-img create -f FORMAT PATH BYTES` */
export function createArgs(path: string, opts: Pick<CreateOptions, "format" | "size">): string[] {
  checkFormat(opts.format, "image format");
  return ["create", "-q", "-f", opts.format, path, String(diskBytes(opts.size, "image size"))];
}

/** `qemu-img create -f qcow2 -b ABS_BACKING -F FMT PATH [BYTES]`; the backing path is made absolute so the overlay works from any directory. */
export function overlayArgs(path: string, backingPath: string, opts: { backingFormat: string; size?: string | number }): string[] {
  const args = ["create", "-q", "-f", "qcow2", "-b", resolve(backingPath), "-F", opts.backingFormat, path];
  if (opts.size !== undefined) args.push(String(diskBytes(opts.size, "overlay size")));
  return args;
}

/** `qemu-img convert [-f SRC_FMT] -O FORMAT SRC DST` */
export function convertArgs(src: string, dst: string, opts: Pick<ConvertOptions, "format" | "sourceFormat">): string[] {
  checkFormat(opts.format, "target format");
  const args = ["convert", "-q"];
  if (opts.sourceFormat) args.push("-f", opts.sourceFormat);
  args.push("-O", opts.format, src, dst);
  return args;
}

/** `qemu-img resize [--shrink] [-f FORMAT] PATH BYTES` */
export function resizeArgs(path: string, size: string | number, opts: ResizeOptions = {}): string[] {
  const args = ["resize", "-q"];
  if (opts.shrink) args.push("--shrink");
  if (opts.format) args.push("-f", opts.format);
  args.push(path, String(diskBytes(size, "new image size")));
  return args;
}

/** `qemu-img info --output=json [--backing-chain] [-U] PATH` */
export function infoArgs(path: string, opts: InfoOptions = {}): string[] {
  const args = ["info", "--output=json"];
  if (opts.backingChain) args.push("--backing-chain");
  if (opts.forceShare) args.push("-U");
  args.push(path);
  return args;
}

// ---- running qemu-img -------------------------------------------------------

/** A hint for the usual qemu-img failures. */
function hintFor(stderr: string): string {
  if (/lock/i.test(stderr)) return "the image is in use (a VM is probably running on it): stop that VM first, or read it with forceShare";
  if (/is not in \S+ format/i.test(stderr)) return "the image is not in the format given: check it with qemu-img info and pass the right format";
  if (/No such file|Could not open/i.test(stderr)) return "check that the path exists and is a disk image";
  if (/No space left/i.test(stderr)) return "free space on the host disk, or use a sparse qcow2 image";
  if (/shrink/i.test(stderr)) return "pass { shrink: true } if you really mean to cut the image (data past the new end is lost)";
  return "run the command line above by hand to see the whole error";
}

/** Runs qemu-img; stdout on success, VmlabError (command, exit code, stderr) on failure, HostError when it is not installed. */
export async function runQemuImg(args: string[]): Promise<string> {
  const bin = requireTool("qemu-img");
  const where = commandLine(bin, args);
  const result = await execa(bin, args, { reject: false, stdin: "ignore" });
  if (!result.failed) return result.stdout;
  const status = result.exitCode !== undefined ? `exit code ${result.exitCode}` : result.signal ? `killed by ${result.signal}` : (result.shortMessage ?? "");
  const output = result.stderr || result.stdout || (result.shortMessage ?? "");
  throw new VmlabError(`qemu-img ${args[0]} failed (${status})`, { where, output, hint: hintFor(output) });
}

async function exists(path: string): Promise<boolean> {
  return access(path, constants.F_OK).then(() => true, () => false);
}

async function refuseExisting(path: string, overwrite: boolean | undefined): Promise<void> {
  if (!overwrite && (await exists(path))) {
    throw new UsageError(`refusing to create "${path}": the file already exists`, {
      where: path,
      hint: "remove it, choose another path, or pass { overwrite: true }",
    });
  }
}

async function requireImage(path: string, what: string, args: string[]): Promise<void> {
  if (!(await exists(path))) {
    throw new VmlabError(`${what} not found: "${path}"`, {
      where: commandLine("qemu-img", args),
      hint: "check the path; build or copy the image first",
    });
  }
}

export async function createImage(path: string, opts: CreateOptions): Promise<void> {
  const args = createArgs(path, opts);
  await refuseExisting(path, opts.overwrite);
  await runQemuImg(args);
}

/** Creates a qcow2 overlay at `path` whose reads fall through to `backingPath`, which is never written. */
export async function createOverlay(path: string, backingPath: string, opts: OverlayOptions = {}): Promise<void> {
  // Validate the size before touching anything.
  if (opts.size !== undefined) diskBytes(opts.size, "overlay size");
  await refuseExisting(path, opts.overwrite);
  await requireImage(backingPath, "backing image", ["create", "-b", backingPath, path]);
  const backingFormat = opts.backingFormat ?? (await imageInfo(backingPath)).format;
  await runQemuImg(overlayArgs(path, backingPath, { backingFormat, size: opts.size }));
}

export async function imageInfo(path: string, opts: InfoOptions = {}): Promise<ImageInfo> {
  const args = infoArgs(path, opts);
  await requireImage(path, "image", args);
  const json: unknown = JSON.parse(await runQemuImg(args));
  // With --backing-chain qemu-img prints an array: the image, then its backing files in order.
  const chain = (Array.isArray(json) ? json : [json]).map((j) => parseInfo(j as RawInfo));
  for (let i = 0; i + 1 < chain.length; i++) chain[i]!.backing = chain[i + 1];
  return chain[0]!;
}

export async function convertImage(src: string, dst: string, opts: ConvertOptions): Promise<void> {
  const args = convertArgs(src, dst, opts);
  await requireImage(src, "source image", args);
  await refuseExisting(dst, opts.overwrite);
  await runQemuImg(args);
}

export async function resizeImage(path: string, size: string | number, opts: ResizeOptions = {}): Promise<void> {
  const args = resizeArgs(path, size, opts);
  await requireImage(path, "image", args);
  await runQemuImg(args);
}

/** The internal snapshots of a (qcow2) image; [] when it has none or cannot hold any (raw). */
export async function listSnapshots(path: string): Promise<Snapshot[]> {
  return (await imageInfo(path)).snapshots;
}

// ---- parsing `qemu-img info --output=json` ----------------------------------

export interface RawSnapshot {
  id: string;
  name: string;
  "vm-state-size": number;
  "date-sec": number;
  "date-nsec": number;
  "vm-clock-sec": number;
  "vm-clock-nsec": number;
}

/** One object of `qemu-img info --output=json` (the fields the lab reads). */
export interface RawInfo {
  filename: string;
  format: string;
  "virtual-size": number;
  "actual-size"?: number;
  "backing-filename"?: string;
  "full-backing-filename"?: string;
  "backing-filename-format"?: string;
  "cluster-size"?: number;
  "dirty-flag"?: boolean;
  snapshots?: RawSnapshot[];
}

/** Turns one JSON object of `qemu-img info --output=json` into an ImageInfo. Exported for tests. */
export function parseInfo(raw: RawInfo): ImageInfo {
  const info: ImageInfo = {
    filename: raw.filename,
    format: raw.format,
    virtualSize: raw["virtual-size"],
    actualSize: raw["actual-size"] ?? 0,
    snapshots: (raw.snapshots ?? []).map((s) => ({
      id: s.id,
      name: s.name,
      vmStateSize: s["vm-state-size"],
      date: new Date(s["date-sec"] * 1000 + Math.floor(s["date-nsec"] / 1e6)),
      vmClock: s["vm-clock-sec"] + s["vm-clock-nsec"] / 1e9,
    })),
  };
  if (raw["backing-filename"] !== undefined) info.backingFilename = raw["backing-filename"];
  if (raw["full-backing-filename"] !== undefined) info.fullBackingFilename = raw["full-backing-filename"];
  if (raw["backing-filename-format"] !== undefined) info.backingFormat = raw["backing-filename-format"];
  if (raw["cluster-size"] !== undefined) info.clusterSize = raw["cluster-size"];
  if (raw["dirty-flag"] !== undefined) info.dirty = raw["dirty-flag"];
  return info;
}
