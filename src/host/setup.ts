/**
 * `vmlab setup`: installs the lab's host packages with apt when that is safe
 * to do automatically (root on Debian/Ubuntu); otherwise hands back the exact
 * command for a person to run.
 */
import { readFileSync } from "node:fs";
import { execa } from "execa";
import { VmlabError } from "../errors.ts";
import { installCommand, labPackages } from "./tools.ts";

export interface SetupPlan {
  /** True when setup will run apt-get itself. */
  run: boolean;
  /** The exact command line (run, or to run by hand). */
  command: string;
  /** Why it runs or does not. */
  reason: string;
  packages: string[];
}

export interface SetupResult extends SetupPlan {
  /** True when apt-get ran and succeeded. */
  ran: boolean;
}

/** True when /etc/os-release text says Debian, Ubuntu, or a derivative of either (ID or ID_LIKE). */
export function isDebianLike(osRelease: string): boolean {
  const ids: string[] = [];
  for (const line of osRelease.split("\n")) {
    const m = /^(ID|ID_LIKE)=(.*)$/.exec(line.trim());
    if (m) ids.push(...m[2]!.replace(/^["']|["']$/g, "").split(/\s+/));
  }
  return ids.some((id) => id === "debian" || id === "ubuntu");
}

/** Pure decision: what setup would do for this user id and os-release text. */
export function planSetup(opts: { dryRun: boolean; uid: number | undefined; osRelease: string | null; packages?: string[] }): SetupPlan {
  const packages = opts.packages ?? labPackages();
  const command = installCommand(packages);
  const base = { command, packages, run: false };
  if (opts.osRelease === null || !isDebianLike(opts.osRelease)) {
    return { ...base, reason: "not a Debian or Ubuntu host: install the equivalent packages with your package manager" };
  }
  if (opts.uid !== 0) return { ...base, reason: "not running as root: run this command as root (e.g. with sudo)" };
  if (opts.dryRun) return { ...base, reason: "dry run: this is the command setup would run" };
  return { ...base, run: true, reason: "root on a Debian-like host: running apt-get" };
}

function readOsRelease(): string | null {
  try {
    return readFileSync("/etc/os-release", "utf8");
  } catch {
    return null;
  }
}

/**
 * Installs the lab's packages (root on Debian/Ubuntu, not dryRun), with apt's
 * output on the terminal. Otherwise returns the plan without running anything;
 * the caller prints `command` and `reason`.
 */
export async function setup(opts: { dryRun?: boolean; packages?: string[] } = {}): Promise<SetupResult> {
  const plan = planSetup({ dryRun: opts.dryRun ?? false, uid: process.getuid?.(), osRelease: readOsRelease(), packages: opts.packages });
  if (!plan.run) return { ...plan, ran: false };

  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const steps: [string, string[]][] = [
    ["apt-get", ["update"]],
    ["apt-get", ["install", "-y", "--no-install-recommends", ...plan.packages]],
  ];
  for (const [file, args] of steps) {
    const r = await execa(file, args, { stdio: "inherit", env, reject: false });
    if (r.failed) {
      throw new VmlabError(`${file} ${args[0]} failed (${r.exitCode !== undefined ? `exit code ${r.exitCode}` : r.shortMessage})`, {
        where: [file, ...args].join(" "),
        output: "see apt-get's output above",
        hint: `fix the apt problem shown above, then run: ${plan.command}`,
      });
    }
  }
  return { ...plan, ran: true };
}
