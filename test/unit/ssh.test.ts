import { describe, expect, it } from "vitest";
import { labSshOptions, sshArgs } from "../../src/vm/ssh.ts";

/** The value given to `-o NAME=...`, or undefined. */
function option(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length - 1; i++) {
    if (args[i] === "-o" && args[i + 1]!.startsWith(`${name}=`)) return args[i + 1]!.slice(name.length + 1);
  }
  return undefined;
}

describe("ssh command line", () => {
  const target = { host: "127.0.0.1", port: 40222, user: "root", keyPath: "/cache/keys/id_ed25519" };

  it("logs in with the lab key alone, on the machine's port, and never prompts", () => {
    const a = sshArgs(target, "uname -r");
    expect(a.slice(0, 4)).toEqual(["-i", "/cache/keys/id_ed25519", "-p", "40222"]);
    expect(option(a, "IdentitiesOnly")).toBe("yes");
    expect(option(a, "BatchMode")).toBe("yes");
    expect(option(a, "StrictHostKeyChecking")).toBe("no");
    expect(option(a, "UserKnownHostsFile")).toBe("/dev/null");
    expect(a.slice(-2)).toEqual(["root@127.0.0.1", "uname -r"]);
  });

  it("uses plain X25519 for the key exchange, in every ssh the lab starts", () => {
    expect(option(sshArgs(target, "true"), "KexAlgorithms")).toBe("curve25519-sha256");
    expect(option(labSshOptions(target.keyPath, target.port), "KexAlgorithms")).toBe("curve25519-sha256");
  });

  it("passes the connect timeout through", () => {
    expect(option(sshArgs(target, "true", 5), "ConnectTimeout")).toBe("5");
    expect(option(sshArgs(target, "true"), "ConnectTimeout")).toBe("10");
  });
});
