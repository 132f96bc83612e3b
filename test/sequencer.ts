import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Each VM test file: how many of the host's two cores it keeps busy (2 where it
 * runs two guests at once: `--jobs 2`, a twin beside its good path, a browser
 * beside a guest; 1 where it runs one guest most of the time), and the wall
 * minutes it is ordered by, measured in a `.ci/run` (one-core files side by
 * side; the README's table has the latest run). test/slots.ts lets two one-core
 * files run side by side. A VM file not listed counts as 2 cores.
 */
export const VM_FILES: Record<string, { cores: 1 | 2; minutes: number }> = {
  "test/vm/migrations.test.ts": { cores: 2, minutes: 11.2 },
  "test/vm/faults.test.ts": { cores: 2, minutes: 7.9 },
  "test/vm/train-browser.test.ts": { cores: 2, minutes: 3.7 },
  "test/vm/training.test.ts": { cores: 2, minutes: 2.9 },
  "test/vm/lvm-snapshot.test.ts": { cores: 2, minutes: 1.9 },
  // A cold UEFI boot beside the warm-state save (two guests at once).
  "test/vm/uefi.test.ts": { cores: 2, minutes: 1.0 },
  // One guest most of the time: the twin forks from the flagship's checkpoint near its end.
  "test/vm/root-to-lvm.test.ts": { cores: 1, minutes: 2.6 },
  // Two packaged scenarios with --jobs 2, one of them 14 s long.
  "test/vm/package.test.ts": { cores: 1, minutes: 1.1 },
  "test/vm/dr-boot.test.ts": { cores: 1, minutes: 2.7 },
  "test/vm/boot.test.ts": { cores: 1, minutes: 2.3 },
  "test/vm/handson.test.ts": { cores: 1, minutes: 2.1 },
  "test/vm/keep.test.ts": { cores: 1, minutes: 1.8 },
  "test/vm/runbooks.test.ts": { cores: 1, minutes: 1.3 },
  "test/vm/checkpoint.test.ts": { cores: 1, minutes: 1.6 },
  "test/vm/warm.test.ts": { cores: 1, minutes: 0.7 },
};

const isVm = (file: string) => /(^|[\\/])test[\\/]vm[\\/]/.test(file);
const vmEntry = (file: string) => VM_FILES[file.replace(/\\/g, "/").replace(/^.*?(test\/vm\/)/, "$1")];

/** Cores a test file takes (0: a unit test file, which takes the unit lock instead). */
export function coresOf(file: string): number {
  return isVm(file) ? (vmEntry(file)?.cores ?? 2) : 0;
}

const minutesOf = (file: string) => vmEntry(file)?.minutes ?? 0;

/**
 * Unit test files first, then the VM test files: those that take both cores,
 * then those that take one, so that the one-core files meet at the end and
 * pair up. The global setup builds the images in the background meanwhile
 * (test/global-setup.ts): the unit tests use the core that `mmdebstrap`
 * leaves idle, and the first VM test finds the images built or waits for them.
 * Within each VM group, the longest file (VM_FILES) goes first.
 */
export default class UnitFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const vm = (f: TestSpecification) => isVm(f.moduleId);
    const longest = (a: TestSpecification, b: TestSpecification) => minutesOf(b.moduleId) - minutesOf(a.moduleId);
    const two = sorted.filter((f) => vm(f) && coresOf(f.moduleId) >= 2).sort(longest);
    const one = sorted.filter((f) => vm(f) && coresOf(f.moduleId) === 1).sort(longest);
    return [...sorted.filter((f) => !vm(f)), ...two, ...one];
  }
}
