/** What the command line prints: lines on stdout, and rows as aligned columns. */
export function out(line = ""): void {
  process.stdout.write(line + "\n");
}

/** Rows as aligned columns; the last column runs free. */
export function table(rows: string[][]): void {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
}

/** A line on stderr, for progress. */
export function note(line: string): void {
  process.stderr.write(line + "\n");
}
