import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Unit test files first, then the VM test files. The global setup builds the
 * images in the background meanwhile (test/global-setup.ts): the unit tests
 * use the core that `mmdebstrap` leaves idle, and the first VM test finds
 * the images built or waits for them.
 */
export default class UnitFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const vm = (f: TestSpecification) => /[\\/]test[\\/]vm[\\/]/.test(f.moduleId);
    return [...sorted.filter((f) => !vm(f)), ...sorted.filter(vm)];
  }
}
