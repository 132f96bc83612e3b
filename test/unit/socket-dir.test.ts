/**
 * UNIX socket paths longer than 107 bytes are refused by the kernel; a run
 * directory deep in a CI temp directory, named after a long scenario, is
 * longer than that. The sockets are then reached through a short link.
 */
import { existsSync, lstatSync, mkdirSync, readlinkSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dir, type DirectoryResult } from "tmp-promise";
import { MAX_SOCKET_PATH, removeSocketLink, socketDir } from "../../src/vm/socket-dir.ts";

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("socket directory", () => {
  it("keeps a short run directory as it is", () => {
    expect(socketDir(tmp.path, "vm.serial.sock")).toBe(tmp.path);
  });

  it("reaches a deep run directory through a short link, and a real socket binds and answers there", async () => {
    const deep = join(tmp.path, "root-to-mdraid1", "root-to-mdraid1-grub-one-disk-20261121T114328-07e148", "x".repeat(20));
    mkdirSync(deep, { recursive: true });
    expect(Buffer.byteLength(join(deep, "vm.serial.sock"))).toBeGreaterThan(MAX_SOCKET_PATH);
    const d = socketDir(deep, "vm.serial.sock");
    expect(d).not.toBe(deep);
    expect(Buffer.byteLength(join(d, "vm.serial.sock"))).toBeLessThanOrEqual(MAX_SOCKET_PATH);
    expect(lstatSync(d).isSymbolicLink()).toBe(true);
    expect(readlinkSync(d)).toBe(deep);
    // The same directory gets the same link.
    expect(socketDir(deep, "vm.serial.sock")).toBe(d);

    const server = createServer((c) => c.end("hello"));
    await new Promise<void>((r) => server.listen(join(d, "vm.serial.sock"), r));
    // The socket file is in the run directory itself.
    expect(existsSync(join(deep, "vm.serial.sock"))).toBe(true);
    const got = await new Promise<string>((resolveText, reject) => {
      const c = createConnection(join(d, "vm.serial.sock"));
      let text = "";
      c.on("data", (b) => (text += b));
      c.on("end", () => resolveText(text));
      c.on("error", reject);
    });
    expect(got).toBe("hello");
    await new Promise((r) => server.close(r));

    removeSocketLink(deep, d);
    expect(existsSync(d)).toBe(false);
    expect(existsSync(deep)).toBe(true);
  });
});
