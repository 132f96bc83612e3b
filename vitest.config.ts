import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // VM tests boot real guests under TCG: minutes, not seconds.
    testTimeout: 20 * 60 * 1000,
    hookTimeout: 20 * 60 * 1000,
    // Guests are CPU-bound; files run one at a time unless a test says otherwise.
    fileParallelism: false,
    // Builds the images side by side before the VM tests need them (a unit-only run builds nothing).
    globalSetup: ["test/global-setup.ts"],
    reporters: ["default"],
  },
});
