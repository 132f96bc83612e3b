import { describe, expect, it } from "vitest";
import { fstabForBtrfs } from "../../src/procedures/ext3-to-btrfs.ts";
import { partitionExtent } from "../../src/procedures/shrink-root.ts";
import { inChroot } from "../../src/procedures/temp-root.ts";

// /etc/fstab of the debian12-bios image.
const FSTAB = `# Written by vmlab. <file system> <mount point> <type> <options> <dump> <pass>
LABEL=boot	/boot	ext2	defaults	0	2
LABEL=root	/	ext3	errors=remount-ro	0	1
`;

describe("fstabForBtrfs", () => {
  it("rewrites the line for / only: new source, btrfs, defaults (no ext3 options), fsck pass 0", () => {
    const out = fstabForBtrfs(FSTAB, "/", "UUID=1234");
    expect(out).toContain("UUID=1234\t/\tbtrfs\tdefaults\t0\t0");
    expect(out).not.toContain("errors=remount-ro");
    expect(out).toContain("LABEL=boot\t/boot\text2\tdefaults\t0\t2");
    expect(out.startsWith("# Written by vmlab.")).toBe(true);
  });

  it("leaves comments alone and refuses an fstab without the mount point", () => {
    expect(fstabForBtrfs("# LABEL=x / ext3 defaults 0 1\nLABEL=root / ext3 defaults 0 1\n", "/", "UUID=9")).toBe("# LABEL=x / ext3 defaults 0 1\nUUID=9\t/\tbtrfs\tdefaults\t0\t0\n");
    expect(() => fstabForBtrfs("LABEL=boot /boot ext2 defaults 0 2\n", "/", "UUID=9")).toThrow(/no line for \//);
  });
});

describe("partitionExtent", () => {
  const JSON_SDA = JSON.stringify({
    partitiontable: {
      label: "dos",
      id: "0x5c4ee4d2",
      device: "/dev/sda",
      unit: "sectors",
      sectorsize: 512,
      partitions: [
        { node: "/dev/sda1", start: 2048, size: 409600, type: "83", bootable: true },
        { node: "/dev/sda2", start: 411648, size: 4194304, type: "83" },
        { node: "/dev/sda3", start: 4605952, size: 12171264, type: "8e" },
      ],
    },
  });
  it("start and size in sectors of the named partition", () => {
    expect(partitionExtent(JSON_SDA, "/dev/sda2")).toEqual({ start: 411648, size: 4194304 });
  });
  it("a partition that is not there is an error", () => {
    expect(() => partitionExtent(JSON_SDA, "/dev/sda4")).toThrow(/no partition \/dev\/sda4/);
  });
});

describe("inChroot", () => {
  it("binds the API filesystems, quotes the script once, and unmounts on exit", () => {
    const s = inChroot("/mnt/c", "echo 'hi' && update-grub");
    expect(s).toContain("for d in dev proc sys run; do mount --bind /$d /mnt/c/$d; done");
    // Quoted for the guest's login shell, bash (test/unit/quote.test.ts round-trips it).
    expect(s).toContain(`chroot /mnt/c /bin/sh -ec $'echo \\'hi\\' && update-grub'`);
    expect(s).toMatch(/trap .*umount -l \/mnt\/c\/\$d/);
  });
});
