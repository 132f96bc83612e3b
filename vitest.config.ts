import { defineConfig } from "vitest/config";
import UnitFirst from "./test/sequencer.ts";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // VM tests boot real guests under TCG: minutes, not seconds.
    testTimeout: 20 * 60 * 1000,
    hookTimeout: 20 * 60 * 1000,
    // Guests are CPU-bound: two workers, and each file first takes the cores it
    // keeps busy (test/slots.ts), so two one-guest files run side by side and
    // unit files run one at a time.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    setupFiles: ["test/slots.ts"],
    // Builds the images side by side in the background while the unit tests run first (a unit-only run builds nothing).
    globalSetup: ["test/global-setup.ts"],
    sequence: { sequencer: UnitFirst },
    reporters: ["default"],
  },
});
