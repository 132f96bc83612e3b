/**
 * The one table printer: rows as aligned columns, two spaces apart, the last
 * column left free (it may run long). Used by every command that prints a
 * table (`vmlab list`, `ps`, `doctor`, the sweep's table).
 */
export function columnWidths(rows: string[][]): number[] {
  return (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
}

export function alignColumns(rows: string[][], widths = columnWidths(rows)): string[] {
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd());
}
