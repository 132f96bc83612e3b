import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { HostError, UsageError } from "../../src/errors.ts";
import { accelArgs, bootProbe, chooseAccel, PROBE_MARKER, probeBootSector, resetAccelCache } from "../../src/host/kvm.ts";

const hasVirtFlags = /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync("/proc/cpuinfo", "utf8"));

afterEach(() => resetAccelCache());

describe("probe boot sector", () => {
  it("is 512 bytes with the boot signature and the marker", () => {
    const s = probeBootSector();
    expect(s.length).toBe(512);
    expect([s[510], s[511]]).toEqual([0x55, 0xaa]);
    expect(s.subarray(0x1a, 0x1a + PROBE_MARKER.length).toString("ascii")).toBe(PROBE_MARKER);
  });
});

describe("accelArgs", () => {
  it("maps the choice to qemu flags", () => {
    expect(accelArgs({ accel: "kvm" })).toEqual(["-accel", "kvm", "-cpu", "host"]);
    expect(accelArgs({ accel: "tcg" })).toEqual(["-accel", "tcg", "-cpu", "qemu64"]);
  });
});

describe("bootProbe", () => {
  it("boots under TCG: prints the marker and exits with 3", async () => {
    const r = await bootProbe(accelArgs({ accel: "tcg" }));
    expect(r).toMatchObject({ ok: true, exitCode: 3, timedOut: false });
    expect(r.serial).toContain(PROBE_MARKER);
  });

  it.runIf(!hasVirtFlags)("fails under KVM on this host (no vmx/svm)", async () => {
    const r = await bootProbe(accelArgs({ accel: "kvm" }), { timeoutMs: 5_000 });
    expect(r.ok).toBe(false);
    expect(r.serial).not.toContain(PROBE_MARKER);
    expect(r.detail).not.toBe("");
    expect(r.detail).toMatch(/killed|exited|hung/);
  });

  it("kills a guest that never exits when the timeout passes", async () => {
    // -S keeps the CPU stopped, so the guest never exits: like the hang of a broken KVM.
    const t0 = Date.now();
    const r = await bootProbe(["-accel", "tcg", "-S"], { timeoutMs: 1_000 });
    expect(r).toMatchObject({ ok: false, timedOut: true });
    expect(() => process.kill(r.pid!, 0)).toThrow(/ESRCH/); // the process is gone
    expect(r.detail).toMatch(/hung/);
    expect(Date.now() - t0).toBeLessThan(8_000);
  });

  it("reports a missing qemu without throwing", async () => {
    const r = await bootProbe(accelArgs({ accel: "tcg" }), { qemu: "/nonexistent/qemu-system-x86_64" });
    expect(r.ok).toBe(false);
  });
});

describe("chooseAccel", () => {
  it.runIf(!hasVirtFlags)("picks TCG here, with a reason naming the missing vmx/svm flags", async () => {
    const c = await chooseAccel({});
    expect(c).toMatchObject({ accel: "tcg", cpu: "qemu64" });
    expect(c.reason).toMatch(/vmx or svm/);
    expect(c.checks[0]).toMatchObject({ name: "cpu flags", ok: false });
  });

  it("caches the probe per process", async () => {
    const a = await chooseAccel({});
    const b = await chooseAccel({});
    expect(b.checks).toBe(a.checks);
  });

  it("VMLAB_ACCEL=tcg skips the probe", async () => {
    expect(await chooseAccel({ VMLAB_ACCEL: "tcg" })).toMatchObject({ accel: "tcg", cpu: "qemu64", checks: [] });
  });

  it.runIf(!hasVirtFlags)("VMLAB_ACCEL=kvm on a host where KVM is broken is a HostError showing every check", async () => {
    const err = (await chooseAccel({ VMLAB_ACCEL: "kvm" }).catch((e: unknown) => e)) as HostError;
    expect(err).toBeInstanceOf(HostError);
    expect(err.output).toMatch(/cpu flags/);
    expect(err.output).toMatch(/kvm boot probe/); // the full probe still tried to boot
  });

  it("rejects other VMLAB_ACCEL values", async () => {
    await expect(chooseAccel({ VMLAB_ACCEL: "hvf" })).rejects.toThrow(UsageError);
  });
});
