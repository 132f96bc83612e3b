/**
 * `vmlab doctor`: is this host ready to run the lab? Lists every host tool
 * (found or not, with its version), the accelerator choice and why, and the
 * install command when something is missing.
 */
import { alignColumns } from "../util/table.ts";
import { execa } from "execa";
import { chooseAccel, type AccelChoice } from "./kvm.ts";
import { findTool, installCommand, TOOLS } from "./tools.ts";

export interface ToolStatus {
  name: string;
  package: string;
  purpose: string;
  required: boolean;
  /** Where it was found, or null when missing. */
  path: string | null;
  /** First line of its version output, or null (missing, or no version worth showing). */
  version: string | null;
}

export interface DoctorReport {
  /** True when every required tool is present. */
  ready: boolean;
  tools: ToolStatus[];
  accel: AccelChoice;
  /** Packages of the missing tools (required or not), each once. */
  missingPackages: string[];
  /** The command that installs missingPackages, or null when nothing is missing. */
  installCommand: string | null;
}

async function versionLine(path: string, args: string[]): Promise<string | null> {
  // Some tools print the version on stderr (ssh -V, mkfs -V); some exit non-zero after printing it.
  const r = await execa(path, args, { reject: false, stdin: "ignore", timeout: 10_000, forceKillAfterDelay: 1_000 });
  const line = `${r.stdout}\n${r.stderr}`.split("\n").map((l) => l.trim()).find((l) => l !== "");
  return line ?? null;
}

export async function doctor(): Promise<DoctorReport> {
  const [tools, accel] = await Promise.all([
    Promise.all(
      TOOLS.map(async (t): Promise<ToolStatus> => {
        const path = findTool(t.name);
        const version = path && t.versionArgs ? await versionLine(path, t.versionArgs) : null;
        return { name: t.name, package: t.package, purpose: t.purpose, required: t.required, path, version };
      }),
    ),
    chooseAccel(),
  ]);
  const missingPackages = [...new Set(tools.filter((t) => !t.path).map((t) => t.package))];
  return {
    ready: tools.every((t) => t.path || !t.required),
    tools,
    accel,
    missingPackages,
    installCommand: missingPackages.length ? installCommand(missingPackages) : null,
  };
}

/** The report as a text table for the terminal. */
export function formatDoctor(report: DoctorReport): string {
  const rows = report.tools.map((t) => [
    t.path ? "ok" : t.required ? "MISSING" : "missing",
    t.name,
    t.package,
    t.path ? (t.version ?? t.path) : t.purpose,
  ]);
  const head = ["", "tool", "package", "version / path"];
  const out = [...alignColumns([head, ...rows]), ""];
  out.push(`accelerator: ${report.accel.accel} (-cpu ${report.accel.cpu})`);
  out.push(`  ${report.accel.reason}`);
  // A failed KVM check is not a failure of the host: vmlab falls back to TCG.
  for (const c of report.accel.checks) out.push(`  ${c.ok ? "ok" : "no"}  ${c.name}: ${c.detail}`);
  out.push("");
  if (report.ready) {
    out.push(report.installCommand ? "ready (optional tools are missing)" : "ready");
  } else {
    out.push(`NOT ready: missing ${report.tools.filter((t) => !t.path && t.required).map((t) => t.name).join(", ")}`);
  }
  if (report.installCommand) out.push(`install as root: ${report.installCommand}`);
  return out.join("\n");
}
