import { describe, expect, it } from "vitest";
import { buildQemuArgs, type QemuConfig } from "../../src/vm/qemu-args.ts";

const base: QemuConfig = {
  name: "t1",
  accel: { accel: "tcg", cpu: "qemu64" },
  memoryMiB: 1024,
  smp: 2,
  disks: [
    { path: "/r/sda.qcow2", format: "qcow2", id: "sda" },
    { path: "/r/sdb.raw", format: "raw", id: "sdb" },
  ],
  serialSocket: "/r/s.sock",
  serialLog: "/r/console.log",
  qmpSocket: "/r/q.sock",
  sshPort: 40022,
};

function after(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

describe("buildQemuArgs", () => {
  it("puts disks on virtio-scsi in guest order, so the guest sees sda then sdb", () => {
    const args = buildQemuArgs(base);
    expect(after(args, "-device")).toContain("virtio-scsi-pci,id=scsi0");
    const devs = after(args, "-device").filter((d) => d.startsWith("scsi-hd"));
    expect(devs).toEqual([
      expect.stringContaining("drive=sda,id=dev-sda,bus=scsi0.0,channel=0,scsi-id=0"),
      expect.stringContaining("drive=sdb,id=dev-sdb,bus=scsi0.0,channel=0,scsi-id=1"),
    ]);
    expect(after(args, "-drive")).toEqual([
      expect.stringMatching(/^file=\/r\/sda\.qcow2,format=qcow2,if=none,id=sda/),
      expect.stringMatching(/^file=\/r\/sdb\.raw,format=raw,if=none,id=sdb/),
    ]);
  });

  it("logs the serial console through a socket chardev and exposes QMP", () => {
    const args = buildQemuArgs(base);
    expect(after(args, "-chardev")[0]).toBe("socket,id=ser0,path=/r/s.sock,server=on,wait=off,logfile=/r/console.log,logappend=on");
    expect(after(args, "-serial")).toEqual(["chardev:ser0"]);
    expect(after(args, "-qmp")).toEqual(["unix:/r/q.sock,server=on,wait=off"]);
  });

  it("forwards only loopback to the guest's sshd", () => {
    const args = buildQemuArgs(base);
    expect(after(args, "-netdev")).toEqual(["user,id=net0,hostfwd=tcp:127.0.0.1:40022-:22"]);
    expect(buildQemuArgs({ ...base, sshPort: undefined })).not.toContain("-netdev");
  });

  it("UEFI: OVMF's code read-only and the machine's own NVRAM writable as pflash, and a network card OVMF cannot boot from", () => {
    const bios = buildQemuArgs(base);
    expect(bios.join(" ")).not.toContain("pflash");
    expect(after(bios, "-device")).toContain("virtio-net-pci,netdev=net0,romfile=");
    const uefi = buildQemuArgs({ ...base, uefi: { code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/r/vm.efivars.fd" } });
    expect(after(uefi, "-drive").filter((d) => d.startsWith("if=pflash"))).toEqual([
      "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "if=pflash,format=raw,unit=1,file=/r/vm.efivars.fd",
    ]);
    // OVMF drives virtio-net itself and would try PXE and HTTP boot on it first; it has no e1000 driver.
    expect(after(uefi, "-device")).toContain("e1000,netdev=net0,romfile=");
    expect(after(uefi, "-device").some((d) => d.startsWith("virtio-net"))).toBe(false);
    // Every disk of a UEFI machine is in QEMU's boot order, by SCSI target, or OVMF never connects it; a BIOS machine's disks are not.
    const two = [
      { path: "/r/a.qcow2", format: "qcow2" as const, id: "sda" },
      { path: "/r/b.qcow2", format: "qcow2" as const, id: "sdb", scsiId: 3 },
    ];
    const hd = (a: string[]) => after(a, "-device").filter((d) => d.startsWith("scsi-hd"));
    // Target + 1: a direct kernel boot takes bootindex 0 ("The bootindex 0 has already been used").
    expect(hd(buildQemuArgs({ ...base, disks: two, uefi: { code: "c", vars: "v" } })).map((d) => /bootindex=(\d+)/.exec(d)?.[1])).toEqual(["1", "4"]);
    expect(hd(buildQemuArgs({ ...base, disks: two })).some((d) => d.includes("bootindex"))).toBe(false);
  });

  it("uses the chosen accelerator and CPU", () => {
    expect(after(buildQemuArgs(base), "-accel")).toEqual(["tcg"]);
    const kvm = buildQemuArgs({ ...base, accel: { accel: "kvm", cpu: "host" } });
    expect(after(kvm, "-accel")).toEqual(["kvm"]);
    expect(after(kvm, "-cpu")).toEqual(["host"]);
  });

  it("boots a kernel directly only when asked, and -no-reboot only when asked", () => {
    expect(buildQemuArgs(base)).not.toContain("-kernel");
    expect(buildQemuArgs(base)).not.toContain("-no-reboot");
    const direct = buildQemuArgs({ ...base, kernel: { path: "/k", initrd: "/i", append: "root=LABEL=root" }, noReboot: true });
    expect(after(direct, "-kernel")).toEqual(["/k"]);
    expect(after(direct, "-initrd")).toEqual(["/i"]);
    expect(after(direct, "-append")).toEqual(["root=LABEL=root"]);
    expect(direct).toContain("-no-reboot");
  });

  it("gives every start a new VM generation ID, so resumed guests reseed their RNG", () => {
    expect(after(buildQemuArgs(base), "-device")).toContain("vmgenid,guid=auto");
  });

  it("resumes a saved state from a file, quoted for the shell QEMU runs it with", () => {
    expect(buildQemuArgs(base)).not.toContain("-incoming");
    expect(after(buildQemuArgs({ ...base, incomingFile: "/c/it's/state.bin" }), "-incoming")).toEqual([`exec:cat '/c/it'\\''s/state.bin'`]);
  });

  it("marks read-only disks", () => {
    const args = buildQemuArgs({ ...base, disks: [{ path: "/b.qcow2", format: "qcow2", id: "sda", readOnly: true }] });
    expect(after(args, "-drive")[0]).toContain("read-only=on");
  });
});
