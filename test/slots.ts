/**
 * The suite's two cores, shared between test files (vitest's setupFiles:
 * this runs at the start of every file, in its worker).
 *
 * Two workers run files side by side, and each file first takes what it
 * needs from the run's slot directory (made by test/global-setup.ts):
 * - a unit test file takes the `unit` lock: unit files run one at a time, on
 *   the core the background image build leaves;
 * - a VM test file takes as many of the two cores as it runs guests at once
 *   (`VM_CORES` in test/sequencer.ts): a file that runs two guests (`--jobs 2`,
 *   a twin beside its good path, a browser beside a guest) takes both, and two
 *   files of one guest each run side by side.
 *
 * A slot is a directory made with mkdir, which either creates it or fails:
 * no two files hold one. A file gives its slots back after its own afterAll
 * hooks, whether its tests passed or not.
 *
 * Each file also tags the processes it starts (VMLAB_TEST_FILE, inherited by
 * every QEMU through the environment), so that "no QEMU is left" counts the
 * file's own guests, not a neighbour's (test/vm/helpers.ts: qemuPids).
 */
import { mkdir, rm } from "node:fs/promises";
import { join, relative } from "node:path";
import { afterAll, beforeAll, inject } from "vitest";
import { projectRoot } from "../src/paths.ts";
import { coresOf } from "./sequencer.ts";

declare module "vitest" {
  export interface ProvidedContext {
    slotDir: string;
  }
}

const held: string[] = [];

async function take(dir: string, names: string[]): Promise<string> {
  for (;;) {
    for (const n of names) {
      try {
        await mkdir(join(dir, n));
        return n;
      } catch {
        /* taken */
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async (suite) => {
  const file = relative(projectRoot, (suite as { filepath?: string }).filepath ?? "");
  process.env.VMLAB_TEST_FILE = file;
  const dir = inject("slotDir");
  if (!dir) return;
  const cores = coresOf(file);
  if (cores === 0) held.push(await take(dir, ["unit"]));
  // Taken in order, so two files that each need both cannot hold one each.
  else if (cores >= 2) for (const n of ["core-0", "core-1"]) held.push(await take(dir, [n]));
  else held.push(await take(dir, ["core-0", "core-1"]));
});

afterAll(async () => {
  const dir = inject("slotDir");
  for (const n of held.splice(0)) await rm(join(dir, n), { recursive: true, force: true });
});
