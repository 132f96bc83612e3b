import { scenario } from "../src/scenario/types.ts";
import { VmlabError } from "../src/errors.ts";
import { dropLink, restoreLink, sshAnswers } from "../src/faults/index.ts";
import { expectRoot, releaseOldRoot, restartOnNewRoot } from "../src/procedures/pivot.ts";
import { MARKER, rootToLvm } from "../src/procedures/root-to-lvm.ts";
import { ConsoleShell } from "../src/vm/console-shell.ts";

/**
 * SSH drops in the worst moment of the root → LVM move: right after
 * pivot_root, before init and sshd are restarted on the new root and the
 * mounts are settled. No new SSH session can be opened (the lab proves it).
 * The way back is the serial console: the lab logs in as root there and
 * types the rest of the procedure, restarting init and sshd on the new root,
 * unmounting and relabelling the old root, rebuilding the initramfs,
 * installing GRUB and rebooting, all without SSH. When the link comes back the
 * machine boots from the LV with the data set intact.
 */
export default scenario({
  name: "dropped-ssh",
  description: "SSH lost right after pivot_root: finish root → LVM on the serial console alone, then a firmware boot from the LV",
  image: "debian12-bios",
  expect: {
    failure: [
      {
        says: "with the link down no new SSH session gets through, before and after the console recovery",
        facts: [{ path: "sshWithLinkDown.answered", equals: false }, { path: "sshAfterConsoleRecovery.answered", equals: false }],
      },
    ],
    final: { boot: "ssh", root: "/dev/mapper/sys-root", fstype: "ext3", data: "intact" },
  },
  tags: ["fault", "dropped-ssh", "lvm", "console", "slow"],
  runbook: "root-fs-replacement-over-ssh.ru.txt",
  kind: "twin",
  async run(ctx) {
    const { vm, step, log, data, record } = ctx;
    const q = await rootToLvm(ctx, { vg: "sys", lv: "root", size: "3G", oldRoot: "/dev/sda2", stopAfter: "pivot" });
    const fault = ctx.injected(await step("fault: the network link goes down after pivot_root", () => dropLink(vm)));
    await step("observe: no new SSH session can be opened", async () => {
      const answered = await sshAnswers(vm, 15_000);
      record("sshWithLinkDown", { answered, waitedS: 15 });
      if (answered) throw new VmlabError("a new SSH session still got through with the link down");
      fault.observed.push("a new SSH session did not get through within 15 s");
    });
    const con = new ConsoleShell(vm);
    await step("console: log in as root", () => con.login());
    await step("console: restart init and sshd on the new root", () => restartOnNewRoot(con, q, log));
    await step("console: write on the new root", () => con.succeed(`mkdir -p $(dirname ${MARKER}) && date -u > ${MARKER} && sync`));
    await step("console: unmount the old root", () => releaseOldRoot(con, log));
    await step("console: relabel the old root", () => con.succeed("tune2fs -L oldroot -U random /dev/sda2"));
    await step("console: rebuild the initramfs", () => con.succeed("update-initramfs -u -k all", { timeoutMs: 20 * 60_000 }));
    await step("console: grub-install and update-grub", () => con.succeed("grub-install /dev/sda && update-grub", { timeoutMs: 10 * 60_000 }));
    await step("observe: SSH is still gone after the whole procedure", async () => {
      const answered = await sshAnswers(vm, 10_000);
      record("sshAfterConsoleRecovery", { answered, waitedS: 10 });
      if (answered) throw new VmlabError("SSH answered while the link was down: the recovery was not console-only");
    });
    await step("console: reboot; the link comes back; firmware boot", async () => {
      const b = await vm.bootAfter(
        async () => {
          await vm.type("systemctl reboot\n");
          await restoreLink(vm);
        },
        { via: "firmware", reason: "reboot typed on the serial console" },
      );
      if (b.outcome !== "ssh") throw new VmlabError(`after the console recovery the boot ended as ${b.outcome}`, { output: b.evidence.join("\n") });
    });
    await step("verify / is sys-root, the marker written on the console is there, data set intact", async () => {
      record("root", await expectRoot(vm, "/dev/mapper/sys-root", "ext3"));
      await vm.succeed(`test -s ${MARKER}`, { hint: "the file written on the console after the pivot is missing" });
      record("data", await data.expectIntact(vm));
    });
  },
});
