/**
 * Disk sizes as people write them: "8G", "200M", "512K", "4TiB", "1048576".
 *
 * Only whole numbers and binary units (powers of 1024) are accepted, so a size
 * always means exactly one number of bytes. "8GB", "8Gb", "1.5G" and "8 G" are
 * refused rather than guessed at.
 */
import { UsageError } from "../errors.ts";

const UNITS = ["K", "M", "G", "T"] as const;
type Unit = (typeof UNITS)[number];

/** Bytes in one unit: K = 1024, M = 1024², G = 1024³, T = 1024⁴. */
const FACTOR: Record<Unit, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

const ACCEPTED = "use a whole number with K, M, G or T (powers of 1024), e.g. 8G or 200M";

/**
 * Parses a size into bytes. Accepted: a plain number of bytes ("1048576"), or a
 * whole number followed by K, M, G, T or KiB, MiB, GiB, TiB (case-insensitive).
 * Surrounding whitespace is ignored; whitespace between number and unit is not.
 * `what` names the value in the error ("disk size", "--size", ...).
 * Throws UsageError for anything else, including zero.
 */
export function parseSize(input: string, what = "size"): number {
  const text = input.trim();
  const bad = (why: string, hint?: string) =>
    new UsageError(`bad ${what} "${input}": ${why}`, { hint: hint ?? "write it like 8G, 200M, 512K or a plain number of bytes" });

  if (text === "") throw bad(`it is empty; ${ACCEPTED}`);
  if (text.startsWith("-")) throw bad(`it must be positive; ${ACCEPTED}`);

  const decimal = /^(\d*\.\d+)\s*([KMGT])(?:i?B)?$/i.exec(text);
  if (decimal) {
    // Suggest the same amount in the next smaller unit when it is whole (1.5G -> 1536M).
    const unit = decimal[2]!.toUpperCase() as Unit;
    const i = UNITS.indexOf(unit);
    const smaller = Number(decimal[1]) * 1024;
    const suggestion = i > 0 && Number.isInteger(smaller) ? `, e.g. ${smaller}${UNITS[i - 1]}` : "";
    throw bad(`decimals are not accepted; use a whole number of a smaller unit${suggestion}`);
  }
  if (/^\d*\.\d+$/.test(text)) throw bad(`decimals are not accepted; ${ACCEPTED}`);

  const m = /^(\d+)(?:([KMGT])(iB)?)?$/i.exec(text);
  if (!m) throw bad(ACCEPTED);

  const count = Number(m[1]);
  const unit = m[2]?.toUpperCase() as Unit | undefined;
  const bytes = unit ? count * FACTOR[unit] : count;
  if (bytes === 0) throw bad(`it must be greater than zero; ${ACCEPTED}`);
  if (!Number.isSafeInteger(bytes)) throw bad(`it is too large (more than ${Number.MAX_SAFE_INTEGER} bytes)`);
  return bytes;
}

/** A size given either as text (parsed with parseSize) or as a number of bytes (must be a positive whole number). */
export function toBytes(size: string | number, what = "size"): number {
  if (typeof size === "string") return parseSize(size, what);
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new UsageError(`bad ${what} ${size}: a size in bytes must be a positive whole number`, {
      hint: "pass a whole number of bytes, or a text size like 8G or 200M",
    });
  }
  return size;
}

/**
 * Formats bytes so that parseSize reads back the same number: the largest unit
 * that divides it exactly ("8G", "200M", "1536K"), else the plain byte count
 * ("1000"). There is deliberately no rounded "1.5G" form: sizes end up in
 * command lines and must stay exact.
 */
export function formatSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new RangeError(`formatSize: expected a whole number of bytes >= 0, got ${bytes}`);
  }
  if (bytes === 0) return "0";
  for (const unit of [...UNITS].reverse()) {
    if (bytes % FACTOR[unit] === 0) return `${bytes / FACTOR[unit]}${unit}`;
  }
  return String(bytes);
}
