/** `vmlab doctor` and `vmlab setup`: is this host ready, and make it so. */
import { doctor, formatDoctor } from "../../src/host/doctor.ts";
import { setup } from "../../src/host/setup.ts";
import { out } from "../output.ts";

export async function cmdDoctor(o: { quiet?: boolean }): Promise<number> {
  const report = await doctor();
  if (!o.quiet) out(formatDoctor(report));
  return report.ready ? 0 : 2;
}

export async function cmdSetup(o: { dryRun?: boolean }): Promise<number> {
  const r = await setup({ dryRun: o.dryRun });
  if (r.ran) {
    out("host packages installed; `vmlab doctor` checks the host");
    return 0;
  }
  out(r.reason);
  out(r.command);
  // Not root, or not Debian: the user has a command to run, the host is not ready yet.
  return o.dryRun ? 0 : 2;
}
