/**
 * Checkpoints and forks on a real guest: the machine goes on after its
 * checkpoint, two forks resume it side by side, and what one fork writes
 * neither the other fork, the original nor the checkpoint ever sees; and a
 * run interrupted while it takes a checkpoint (Ctrl-C, or kill -9) leaves no
 * QEMU and no checkpoint that passes for whole; and a run interrupted while a
 * step runs (Ctrl-C, SIGTERM, kill -9) leaves no QEMU within seconds.
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { execa } from "execa";
import { projectRoot } from "../../src/paths.ts";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { chooseAccel, type AccelChoice } from "../../src/host/kvm.ts";
import { ensureImage } from "../../src/image/build.ts";
import { labKey } from "../../src/image/keys.ts";
import { loadRecipe } from "../../src/image/recipes.ts";
import { readCheckpoint, type Checkpoint } from "../../src/vm/checkpoint.ts";
import { HostError } from "../../src/errors.ts";
import { Machine } from "../../src/vm/machine.ts";
import { DEFAULT_PROFILE, ensureWarmState, machineDisks } from "../../src/vm/warm.ts";
import { qemuPids, runningQemuPids, sha256File, vmlab } from "./helpers.ts";

let tmp: DirectoryResult;
let accel: AccelChoice;
let key = "";
const machines: Machine[] = [];

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  accel = await chooseAccel();
  key = (await labKey()).privateKey;
});
afterAll(async () => {
  for (const m of machines) await m.kill();
  await tmp.cleanup();
});

describe("checkpoints and forks", () => {
  it("a running guest is checkpointed and goes on; two forks resume it and cannot see each other's writes", async () => {
    const image = await ensureImage(await loadRecipe("debian12-bios"));
    const warm = await ensureWarmState(image, DEFAULT_PROFILE, accel, key);
    const runDir = join(tmp.path, "run");
    await mkdir(runDir, { recursive: true });
    const vm = new Machine({ name: "vm", runDir, disks: await machineDisks(runDir, image, DEFAULT_PROFILE, warm), accel, sshKey: key, incomingState: warm.state });
    machines.push(vm);
    expect((await vm.resume()).outcome).toBe("ssh");
    await vm.succeed("echo before > /root/before-checkpoint && sync");

    const cp = await vm.checkpoint(join(runDir, "checkpoints", "after-before"), "after /root/before-checkpoint");
    console.log(`checkpoint: guest paused ${cp.pausedMs} ms; state ${cp.state}`);
    // Whole on disk, and the frozen layer is the file the machine wrote until now.
    expect(existsSync(join(cp.dir, "checkpoint.json"))).toBe(true);
    expect(existsSync(join(cp.dir, "state.bin.partial"))).toBe(false);
    expect(cp.disks.map((d) => [d.id, d.path, d.readOnly])).toEqual([["sda", join(runDir, "sda.qcow2"), true]]);
    expect(vm.disks[0]!.path).toBe(join(runDir, "sda.g1.qcow2"));
    const frozenSum = await sha256File(cp.disks[0]!.path);

    // The original goes on, on its new overlay.
    await vm.succeed("echo original > /root/after-checkpoint && sync");
    expect((await vm.succeed("cat /root/before-checkpoint")).trim()).toBe("before");

    const [a, b] = await Promise.all(
      ["fork-a", "fork-b"].map((name) => Machine.fork(cp, { name, runDir: join(tmp.path, name), accel, sshKey: key })),
    );
    machines.push(a!.vm, b!.vm);
    for (const f of [a!, b!]) {
      expect([f.boot.via, f.boot.outcome]).toEqual(["saved-state", "ssh"]);
      // The fork is the machine at the checkpoint: what came before is there, what the original wrote after is not.
      expect((await f.vm.succeed("cat /root/before-checkpoint")).trim()).toBe("before");
      expect((await f.vm.run("test -e /root/after-checkpoint")).exitCode).toBe(1);
      // Its own ports and sockets, and its clock from the host.
      expect(f.vm.sshPort).not.toBe(vm.sshPort);
      const skew = Math.abs(Number((await f.vm.succeed("date +%s")).trim()) - Date.now() / 1000);
      expect(skew).toBeLessThan(120);
    }
    await a!.vm.succeed("echo a > /root/written-in-fork-a && sync");
    expect((await b!.vm.run("test -e /root/written-in-fork-a")).exitCode).toBe(1);
    expect((await vm.run("test -e /root/written-in-fork-a")).exitCode).toBe(1);
    expect(a!.vm.disks[0]!.path).toBe(join(tmp.path, "fork-a", "fork-a-sda.qcow2"));

    // Nothing any of the three wrote reached the checkpoint, and it reads back whole.
    expect(await sha256File(cp.disks[0]!.path)).toBe(frozenSum);
    const again: Checkpoint = await readCheckpoint(cp.dir);
    expect(again.disks).toEqual(cp.disks);

    for (const m of machines) await m.kill();
    expect(await qemuPids()).toEqual([]);
  });

  /** Start a sweep of smoke whose recording run checkpoints before step 2, and strike while that state is being written. */
  async function interruptDuringCheckpoint(reports: string, signal: "SIGINT" | "SIGKILL") {
    const run = execa("node", [join(projectRoot, "lab/vmlab.mjs"), "sweep", "smoke", "--fault", "power-cut", "--at", "2", "--report-dir", reports], {
      reject: false,
      env: { ...process.env, CI: "true" },
      stdin: "ignore",
    });
    let partial = "";
    const deadline = Date.now() + 10 * 60_000;
    const find = async (dir: string, depth: number): Promise<string> => {
      for (const e of existsSync(dir) ? await readdir(dir, { withFileTypes: true }) : []) {
        const p = join(dir, e.name);
        if (e.name === "state.bin.partial") return p;
        if (e.isDirectory() && depth > 0) {
          const f = await find(p, depth - 1);
          if (f) return f;
        }
      }
      return "";
    };
    while (!partial && run.exitCode === null && Date.now() < deadline) {
      partial = await find(reports, 3);
      if (!partial) await new Promise((r) => setTimeout(r, 20));
    }
    expect(partial, "the run never wrote a checkpoint's state").not.toBe("");
    run.kill(signal);
    return { result: await run, checkpointDir: join(partial, "..") };
  }

  it("Ctrl-C while a run writes a checkpoint's state: no QEMU is left, and the half-written checkpoint is never taken for whole", async () => {
    const { result, checkpointDir } = await interruptDuringCheckpoint(join(tmp.path, "interrupted"), "SIGINT");
    expect(result.exitCode).toBe(130);
    expect(await qemuPids()).toEqual([]);
    expect(existsSync(join(checkpointDir, "checkpoint.json"))).toBe(false);
    await expect(readCheckpoint(checkpointDir)).rejects.toThrow(/holds no finished checkpoint/);
  });

  it("kill -9 of the lab while it writes a checkpoint: its QEMU dies with it, and the next command removes what the run left and says so", async () => {
    const { result, checkpointDir } = await interruptDuringCheckpoint(join(tmp.path, "killed"), "SIGKILL");
    expect(result.signal).toBe("SIGKILL");
    // The kernel ends the QEMU (PR_SET_PDEATHSIG): nothing of the run runs on, within seconds.
    for (let i = 0; i < 100 && (await runningQemuPids()).length; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await runningQemuPids()).toEqual([]);
    const runDir = join(checkpointDir, "..");
    expect(existsSync(checkpointDir)).toBe(true);
    // The next command that looks notices the dead run and cleans it: overlays and the half-written checkpoint go, the console log stays.
    const ps = await vmlab(["ps"]);
    expect(ps.exitCode).toBe(0);
    expect(ps.stderr).toMatch(/vmlab: cleaned up after \d+ runs? whose vmlab process died \(pid \d+.*\): ended 0 QEMU, removed \d+ overlay, socket and checkpoint files?/);
    expect(ps.stderr).toContain(runDir);
    expect(existsSync(checkpointDir)).toBe(false);
    expect((await readdir(runDir)).filter((f) => f.endsWith(".qcow2"))).toEqual([]);
    expect(existsSync(join(runDir, "vm.console.log"))).toBe(true);
  });

  it("a checkpoint on a full disk: a clear error naming the directory and the bytes, nothing half-written left, and the machine goes on", async () => {
    const image = await ensureImage(await loadRecipe("debian12-bios"));
    const warm = await ensureWarmState(image, DEFAULT_PROFILE, accel, key);
    const runDir = join(tmp.path, "full-run");
    await mkdir(runDir, { recursive: true });
    const vm = new Machine({ name: "vm", runDir, disks: await machineDisks(runDir, image, DEFAULT_PROFILE, warm), accel, sshKey: key, incomingState: warm.state });
    machines.push(vm);
    expect((await vm.resume()).outcome).toBe("ssh");
    // A 16 MiB tmpfs: far less than the guest's 1 GiB of memory.
    const small = join(tmp.path, "small");
    await mkdir(small, { recursive: true });
    await execa("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", small]);
    try {
      const err = await vm.checkpoint(join(small, "cp"), "on a full disk").then(
        () => undefined,
        (e: unknown) => e as HostError,
      );
      expect(err).toBeInstanceOf(HostError);
      expect(err!.exitCode).toBe(2);
      expect(err!.message).toMatch(new RegExp(`^no space left in ${join(small, "cp")} to save the running state of vm: it needs up to 1\\.0 GiB \\(1073741824 bytes\\) \\(the guest's memory\\), [\\d.]+ [KM]iB \\(\\d+ bytes\\) free now that the partial file`));
      expect(err!.hint).toContain(`df -h ${join(small, "cp")}`);
      // No state a later fork could take for whole: no checkpoint.json, no state file, nothing partial.
      expect(await readdir(join(small, "cp"))).toEqual([]);
      await expect(readCheckpoint(join(small, "cp"))).rejects.toThrow(/holds no finished checkpoint/);
      // The machine was paused for the attempt and runs on.
      expect((await vm.succeed("echo still here")).trim()).toBe("still here");
    } finally {
      await vm.kill();
      await execa("umount", [small]);
    }
  });

  it("a checkpoint directory without checkpoint.json (interrupted while taken) is refused", async () => {
    const half = join(tmp.path, "half");
    await mkdir(half, { recursive: true });
    await writeFile(join(half, "state.bin.partial"), "x");
    await expect(readCheckpoint(half)).rejects.toThrow(/holds no finished checkpoint/);
  });
});

describe("a run interrupted while a step runs", () => {
  /** QEMU processes started under this environment tag (each run below has its own). */
  const qemuOf = async (tag: string) =>
    String((await execa("pgrep", ["-f", "qemu-system"], { reject: false })).stdout)
      .split("\n")
      .filter(Boolean)
      .map(Number)
      .filter((pid) => {
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
          const alive = !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
          return alive && readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`VMLAB_TEST_RUN=${tag}`);
        } catch {
          return false;
        }
      });

  /** `vmlab rehearse` a runbook whose block sleeps; strike once the block has started. */
  async function strike(signal: "SIGINT" | "SIGTERM" | "SIGKILL") {
    const reports = join(tmp.path, `step-${signal}`);
    const run = execa("node", [join(projectRoot, "lab/vmlab.mjs"), "rehearse", join(projectRoot, "test/fixtures/runbooks/long-step.md"), "--report-dir", reports], {
      reject: false,
      env: { ...process.env, CI: "true", VMLAB_TEST_RUN: signal },
      stdin: "ignore",
    });
    let err = "";
    run.stderr!.on("data", (b: Buffer) => (err += String(b)));
    const deadline = Date.now() + 5 * 60_000;
    while (!/: Wait for the long job/.test(err) && run.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(err, "the block never started").toMatch(/: Wait for the long job/);
    // The block runs on the guest now (its SSH command was sent a moment ago).
    await new Promise((r) => setTimeout(r, 1500));
    expect(await qemuOf(signal)).toHaveLength(1);
    run.kill(signal);
    const result = await run;
    const struck = Date.now();
    for (let i = 0; i < 100 && (await qemuOf(signal)).length; i++) await new Promise((r) => setTimeout(r, 50));
    return { result, reports, left: await qemuOf(signal), goneMs: Date.now() - struck };
  }

  it("Ctrl-C, SIGTERM and kill -9 during a block: no QEMU of the run is left within seconds", async () => {
    const [int, term, kill] = await Promise.all([strike("SIGINT"), strike("SIGTERM"), strike("SIGKILL")]);
    for (const r of [int, term, kill]) {
      expect(r.left).toEqual([]);
      expect(r.goneMs).toBeLessThan(5000);
    }
    // Ctrl-C and SIGTERM: the lab ends its machine, then exits with 128 + the signal.
    expect(int.result.exitCode).toBe(130);
    expect(term.result.exitCode).toBe(143);
    // kill -9: the kernel ends the QEMU with its owner (PR_SET_PDEATHSIG).
    expect(kill.result.signal).toBe("SIGKILL");
    // The runs' overlays stay until the next command that starts machines removes them (kill -9's case above:
    // `vmlab ps` cleans up after dead runs, and is not run here beside the other VM test files' kept machines).
    for (const r of [int, term, kill]) expect(await readdir(r.reports)).toHaveLength(1);
    expect(await qemuPids()).toEqual([]);
  });
});
