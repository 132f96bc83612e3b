/**
 * `vmlab/procedures`: the storage procedures the built-in scenarios perform,
 * for a project's own scenarios (`import { rootToLvm } from "vmlab/procedures"`).
 * Two modules name a `partition` helper: the offset-mount one (a partition of a
 * parsed table) is exported as `partition`, the mdraid one (a partition's
 * device name) as `partitionDevice`.
 */
export * from "../procedures/boot-backup.ts";
export * from "../procedures/ext3-to-btrfs.ts";
export * from "../procedures/lvm-snapshot.ts";
export * from "../procedures/offset-mount.ts";
export * from "../procedures/pivot.ts";
export * from "../procedures/root-to-lvm.ts";
export { DEFAULT_MIRRORS, MD_MARKER, arrays, expectArrays, mirrorTable, parseMdstat, rootToMdraid, partition as partitionDevice } from "../procedures/root-to-mdraid.ts";
export type { ArrayState, MirrorSpec, RootToMdraidOptions } from "../procedures/root-to-mdraid.ts";
export * from "../procedures/shrink-root.ts";
export * from "../procedures/temp-root.ts";
export * from "../procedures/tree.ts";
export * from "../procedures/website.ts";
