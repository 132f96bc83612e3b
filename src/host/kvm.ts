/**
 * Chooses the accelerator the guests run under: KVM when it is proven to work,
 * else TCG (software emulation: correct, several times slower).
 *
 * /dev/kvm existing proves nothing: on some hosts (nested VMs without
 * vmx/svm) it exists, yet `-accel kvm -cpu host` aborts ("failed to set MSR")
 * or guests hang. So KVM is chosen only after a real boot under exactly the
 * flags the lab uses: a 512-byte boot sector that prints a marker on the
 * serial port and powers off through isa-debug-exit.
 *
 * Environment:
 *   VMLAB_ACCEL=tcg  use TCG without probing.
 *   VMLAB_ACCEL=kvm  require KVM: the probe runs in full and a failure is a HostError.
 *
 * The probe runs once per process; VMLAB_ACCEL is read on every call.
 */
import { access, constants, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { withDir } from "tmp-promise";
import { HostError, UsageError } from "../errors.ts";
import { commandLine, findTool } from "./tools.ts";

export type Accel = "kvm" | "tcg";

export interface AccelCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * The guest CPU under TCG. qemu64 (plain x86-64: SSE2, no AVX) rather than
 * max: with max, glibc and the kernel take AVX2 code paths that TCG
 * emulates slowly. Measured in one guest on a 2-core host (three runs of
 * each): 100 execs of /bin/true 1.0 s with qemu64 against 1.3 s with max,
 * `update-initramfs -u` 36-37 s against 46-51 s; Nehalem was slower than
 * both. No rehearsed procedure depends on the CPU model.
 */
export const TCG_CPU = "qemu64";

export interface AccelChoice {
  accel: Accel;
  cpu: "host" | typeof TCG_CPU;
  /** One sentence on why this accelerator was chosen. */
  reason: string;
  /** The probe steps that ran, in order. */
  checks: AccelCheck[];
}

/** The accelerator arguments of every guest's qemu-system-x86_64 command line. */
export function accelArgs(choice: Pick<AccelChoice, "accel">): string[] {
  return choice.accel === "kvm" ? ["-accel", "kvm", "-cpu", "host"] : ["-accel", "tcg", "-cpu", TCG_CPU];
}

export const PROBE_MARKER = "VMLAB-PROBE-OK";

/**
 * The probe's boot sector (16-bit real mode, loaded at 0x7c00):
 *   cld; xor ax,ax; mov ds,ax; mov dx,0x3f8; mov si,0x7c1a
 *   loop: lodsb; test al,al; jz done; out dx,al; jmp loop
 *   done: mov al,1; out 0xf4,al        ; isa-debug-exit: QEMU exits with (1<<1)|1 = 3
 *   hlt; jmp hlt
 * then the marker text at offset 0x1a, zero padding, and the 55 AA signature.
 */
export function probeBootSector(): Buffer {
  const code = [
    0xfc, 0x31, 0xc0, 0x8e, 0xd8, 0xba, 0xf8, 0x03, 0xbe, 0x1a, 0x7c, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xb0,
    0x01, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd,
  ];
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector, 0);
  Buffer.from(`${PROBE_MARKER}\r\n\0`, "ascii").copy(sector, code.length);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

export interface BootProbeResult {
  ok: boolean;
  /** What happened, for the check's detail. */
  detail: string;
  commandLine: string;
  /** The QEMU process id (gone by the time the result is returned). */
  pid?: number;
  exitCode?: number;
  timedOut: boolean;
  /** What the boot sector printed on the serial port. */
  serial: string;
  stderr: string;
}

/**
 * Boots the probe sector under the given accelerator arguments (e.g. accelArgs()).
 * ok when QEMU exits with code 3 after printing the marker. The QEMU process is
 * always gone when this returns: killed on timeout, and by pid if anything
 * leaves it behind.
 */
export async function bootProbe(accel: string[], opts: { qemu?: string; timeoutMs?: number } = {}): Promise<BootProbeResult> {
  const qemu = opts.qemu ?? findTool("qemu-system-x86_64");
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (!qemu) {
    return { ok: false, detail: "qemu-system-x86_64 not found", commandLine: "", timedOut: false, serial: "", stderr: "" };
  }
  return withDir(
    async ({ path: dir }) => {
      const sector = join(dir, "probe.img");
      const out = join(dir, "serial.txt");
      await writeFile(sector, probeBootSector());
      const args = [
        ...accel,
        "-display", "none", "-nodefaults", "-no-user-config",
        "-serial", `file:${out}`,
        "-drive", `file=${sector},format=raw,if=ide`,
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
      ];
      const child = execa(qemu, args, {
        reject: false,
        stdin: "ignore",
        timeout: timeoutMs,
        forceKillAfterDelay: 2_000,
      });
      try {
        const r = await child;
        const serial = await readFile(out, "utf8").catch(() => "");
        const stderr = r.stderr.trim();
        const base = { commandLine: commandLine(qemu, args), pid: child.pid, exitCode: r.exitCode, timedOut: r.timedOut, serial, stderr };
        if (r.exitCode === 3 && serial.includes(PROBE_MARKER)) {
          return { ...base, ok: true, detail: "the probe sector booted, printed its marker and exited" };
        }
        const firstLine = stderr.split("\n").find((l) => l.trim()) ?? "";
        const how = r.timedOut
          ? `no exit within ${timeoutMs / 1000} s (the guest hung)`
          : r.exitCode !== undefined
            ? `QEMU exited with code ${r.exitCode}`
            : `QEMU was killed by ${r.signal ?? "a signal"}`;
        const printed = serial.includes(PROBE_MARKER) ? "marker printed" : "no marker on the serial port";
        return { ...base, ok: false, detail: `${how}, ${printed}${firstLine ? `: ${firstLine}` : ""}` };
      } finally {
        // execa kills on timeout; this is the belt to its braces (e.g. if awaiting threw).
        if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
          try {
            process.kill(child.pid, "SIGKILL");
          } catch {
            // already gone
          }
        }
      }
    },
    { unsafeCleanup: true, prefix: "vmlab-kvm-probe-" },
  );
}

/** The KVM probe steps. `full` runs every step even after one fails (for VMLAB_ACCEL=kvm, to show the real boot failure). */
export async function probeKvm(opts: { full?: boolean } = {}): Promise<AccelCheck[]> {
  const checks: AccelCheck[] = [];
  const stop = () => !opts.full && checks.some((c) => !c.ok);

  // (a) Hardware virtualization flags.
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const flags = new Set(
    cpuinfo
      .split("\n")
      .filter((l) => /^flags\s*:/.test(l))
      .flatMap((l) => l.split(":")[1]!.trim().split(/\s+/)),
  );
  const virt = ["vmx", "svm"].filter((f) => flags.has(f));
  checks.push({
    name: "cpu flags",
    ok: virt.length > 0,
    detail: virt.length > 0 ? `${virt.join(" ")} present in /proc/cpuinfo` : "no vmx or svm flag in /proc/cpuinfo, so this host exposes no hardware virtualization",
  });
  if (stop()) return checks;

  // (b) The device node, usable by this user.
  const dev = await access("/dev/kvm", constants.R_OK | constants.W_OK).then(
    () => ({ ok: true, detail: "/dev/kvm is readable and writable" }),
    (e: NodeJS.ErrnoException) => ({
      ok: false,
      detail: e.code === "ENOENT" ? "/dev/kvm does not exist (kvm module not loaded?)" : `/dev/kvm is not readable and writable by this user (${e.code}; join the kvm group?)`,
    }),
  );
  checks.push({ name: "/dev/kvm", ...dev });
  if (stop()) return checks;

  // (c) A real boot under the lab's flags.
  const boot = await bootProbe(accelArgs({ accel: "kvm" }));
  checks.push({ name: "kvm boot probe", ok: boot.ok, detail: boot.detail });
  return checks;
}

const cache = new Map<"auto" | "full", Promise<AccelCheck[]>>();

/** Forgets the cached probe (tests). */
export function resetAccelCache(): void {
  cache.clear();
}

function cachedProbe(full: boolean): Promise<AccelCheck[]> {
  const key = full ? "full" : "auto";
  let p = cache.get(key);
  if (!p) {
    p = probeKvm({ full });
    cache.set(key, p);
  }
  return p;
}

/** The accelerator to use, honouring VMLAB_ACCEL. Probes at most once per process (per mode). */
export async function chooseAccel(env: NodeJS.ProcessEnv = process.env): Promise<AccelChoice> {
  const forced = env.VMLAB_ACCEL?.trim();
  if (forced && forced !== "tcg" && forced !== "kvm") {
    throw new UsageError(`bad VMLAB_ACCEL "${forced}": use tcg or kvm`, {
      where: "environment variable VMLAB_ACCEL",
      hint: "unset it to let the lab probe KVM, or set VMLAB_ACCEL=tcg",
    });
  }
  if (forced === "tcg") {
    return { accel: "tcg", cpu: TCG_CPU, reason: "VMLAB_ACCEL=tcg forces TCG (software emulation); KVM was not probed", checks: [] };
  }

  const checks = await cachedProbe(forced === "kvm");
  const failed = checks.find((c) => !c.ok);
  if (!failed) {
    return { accel: "kvm", cpu: "host", reason: "KVM works: a probe guest booted under -accel kvm -cpu host", checks };
  }
  if (forced === "kvm") {
    throw new HostError("VMLAB_ACCEL=kvm, but KVM does not work on this host", {
      where: "KVM probe (-accel kvm -cpu host)",
      output: checks.map((c) => `${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`).join("\n"),
      hint: "unset VMLAB_ACCEL (or set VMLAB_ACCEL=tcg) to run under TCG; for KVM, enable hardware virtualization (nested virtualization in a VM)",
    });
  }
  return { accel: "tcg", cpu: TCG_CPU, reason: `KVM is not usable: ${failed.detail}. Using TCG (software emulation, slower).`, checks };
}
