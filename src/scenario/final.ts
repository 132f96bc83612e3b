/**
 * The machine as a run left it, looked at by the runner itself after the
 * scenario's last step: the last boot with its new-boot proof, where `/`
 * lives, and the data set against its seeded checksums. The verdict judges
 * these, so a scenario cannot forget to check them. A data check the
 * scenario made as its very last act (nothing done to the machine since) is
 * taken as it is, with `reused: true`, instead of being made twice.
 */
import type { FinalObservation } from "../verdict/judge.ts";
import type { Machine } from "../vm/machine.ts";
import { describeCheck, type DataSet } from "./dataset.ts";

export async function observeFinal(vm: Machine, data: DataSet | undefined): Promise<FinalObservation> {
  const b = vm.boots.at(-1);
  const obs: FinalObservation = {
    machine: vm.opts.name,
    running: vm.running,
    lastBoot: b && { via: b.via, reason: b.reason, outcome: b.outcome, detail: b.detail, newBootProven: b.newBoot?.proven ?? false },
  };
  if (!vm.running) return { ...obs, unobserved: "the machine is off" };
  if (b?.outcome !== "ssh") return { ...obs, unobserved: `the machine's last boot ended as ${b?.outcome ?? "nothing"}` };
  // A check the scenario made as its last act still holds: nothing was done to the machine since.
  const checked = data?.current(vm);
  const r = await vm.run("findmnt -no SOURCE,FSTYPE /", { timeoutMs: 60_000 });
  if (r.exitCode !== 0) return { ...obs, unobserved: `findmnt / failed: ${r.stderr.trim() || `exit ${r.exitCode}`}` };
  const [source = "", fstype = ""] = r.stdout.trim().split(/\s+/);
  obs.root = { device: source.replace(/\[.*\]$/, ""), fstype };
  if (data?.manifest) {
    const c = checked ?? (await data.check(vm));
    obs.data = { intact: c.intact, summary: describeCheck(c), ...(checked ? { reused: true } : {}) };
  }
  return obs;
}
