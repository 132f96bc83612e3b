import { alignColumns } from "../src/util/table.ts";
/** What the command line prints: lines on stdout, and rows as aligned columns. */
export function out(line = ""): void {
  process.stdout.write(line + "\n");
}

/** Rows as aligned columns; the last column runs free (src/util/table.ts). */
export function table(rows: string[][]): void {
  for (const l of alignColumns(rows)) out(l);
}

/** A line on stderr, for progress. */
export function note(line: string): void {
  process.stderr.write(line + "\n");
}
