/** `vmlab/faults`: the faults the lab injects, callable from a project's own scenarios. */
export * from "../faults/index.ts";
export type { InjectSpec } from "../faults/types.ts";
