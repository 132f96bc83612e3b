/**
 * Where each exercise is proven. Every exercise is proven on real guests
 * with `vmlab train prove`; the suite re-proves one per way of solving
 * (the rescue system, over SSH, and, through the browser, the serial
 * console), and judges the others on their recorded real proofs
 * (test/fixtures/training/proofs.json), each tied to its exercise folder's
 * hash: an exercise edited since its recording fails the unit test until it
 * is recorded again with
 *
 *   vmlab train prove NAME... --jobs 2 --json > test/fixtures/training/proofs.json
 *
 * (all the recorded ones at once, as that file holds them).
 */
/** Proven on guests by test/vm/training.test.ts. */
// mbr-446-restore for the rescue system: its repair is a dd from a file on
// a partition mounted by byte offset, with no initramfs rebuild, and its
// broken boot (no bootable device) is judged on the firmware boot recorded
// when its broken state is made. initrd-deleted, whose repair is the same
// initramfs rebuild in the rescue system as the missing-initrd fault
// scenario's (test/vm/faults.test.ts), is judged on its recorded proof.
export const PROVEN_IN_THE_SUITE = ["mbr-446-restore", "lvm-snapshot-overflow"];
/** Proven through the page's terminal and buttons by test/vm/train-browser.test.ts. */
export const IN_THE_BROWSER = "stale-fstab-uuid";
/** Judged on their recorded proofs by test/unit/training.test.ts. */
export const PROOFS_FIXTURE = "test/fixtures/training/proofs.json";
