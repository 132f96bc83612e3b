/**
 * The host tools the lab needs, where to find them, and which Debian package
 * provides each.
 *
 * Environment:
 *   VMLAB_QEMU  path of the qemu-system-x86_64 binary to use instead of the one
 *               on PATH (e.g. a self-built QEMU). When it is set it must point to
 *               an executable file; there is no fallback to PATH.
 *
 * PATH is read from the environment on every call (never cached), so a caller
 * or a test can change it and see tools disappear.
 */
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import { HostError, UsageError } from "../errors.ts";

export interface ToolSpec {
  /** Command name, or for a data file its base name. */
  name: string;
  /** Debian package that provides it. */
  package: string;
  /** Why the lab needs it (shown by `vmlab doctor`). */
  purpose: string;
  /** For data files: the absolute path that must exist. Commands have none and are searched on PATH. */
  file?: string;
  /** Arguments that print a version on the first line, or null when the tool has none worth showing. */
  versionArgs: string[] | null;
  /** False for tools the lab can work without; `ready` ignores them. */
  required: boolean;
}

export const TOOLS: readonly ToolSpec[] = [
  { name: "qemu-system-x86_64", package: "qemu-system-x86", purpose: "boots the guest VMs", versionArgs: ["--version"], required: true },
  {
    name: "bios-256k.bin",
    file: "/usr/share/seabios/bios-256k.bin",
    package: "seabios",
    purpose: "BIOS firmware the x86 guests boot from",
    versionArgs: null,
    required: true,
  },
  {
    name: "efi-virtio.rom",
    file: "/usr/lib/ipxe/qemu/efi-virtio.rom",
    package: "ipxe-qemu",
    purpose: "option ROM QEMU loads for virtio network cards (not needed with romfile=\"\")",
    versionArgs: null,
    required: false,
  },
  {
    name: "OVMF_CODE_4M.fd",
    file: "/usr/share/OVMF/OVMF_CODE_4M.fd",
    package: "ovmf",
    purpose: "UEFI firmware (EDK II) for UEFI machines, read-only and shared",
    versionArgs: null,
    required: true,
  },
  {
    name: "OVMF_VARS_4M.fd",
    file: "/usr/share/OVMF/OVMF_VARS_4M.fd",
    package: "ovmf",
    purpose: "the empty UEFI variable store a UEFI machine's own NVRAM starts from",
    versionArgs: null,
    required: true,
  },
  { name: "qemu-img", package: "qemu-utils", purpose: "creates, converts and inspects disk images", versionArgs: ["--version"], required: true },
  { name: "qemu-io", package: "qemu-utils", purpose: "writes a boot-disk backup into a qcow2 image (vmlab dr restore-boot)", versionArgs: ["--version"], required: true },
  { name: "mmdebstrap", package: "mmdebstrap", purpose: "builds Debian root file systems for guest images", versionArgs: ["--version"], required: true },
  { name: "sfdisk", package: "fdisk", purpose: "partitions disk images", versionArgs: ["--version"], required: true },
  { name: "mkfs.ext2", package: "e2fsprogs", purpose: "formats ext2 file systems", versionArgs: ["-V"], required: true },
  { name: "mkfs.ext3", package: "e2fsprogs", purpose: "formats ext3 file systems", versionArgs: ["-V"], required: true },
  { name: "mkfs.ext4", package: "e2fsprogs", purpose: "formats ext4 file systems", versionArgs: ["-V"], required: true },
  { name: "e2fsck", package: "e2fsprogs", purpose: "checks ext file systems in images on the host", versionArgs: ["-V"], required: true },
  { name: "ssh", package: "openssh-client", purpose: "runs commands in the guests", versionArgs: ["-V"], required: true },
  { name: "ssh-keygen", package: "openssh-client", purpose: "makes the lab's guest login key", versionArgs: null, required: true },
  { name: "setpriv", package: "util-linux", purpose: "ties each QEMU to the vmlab process that starts it (PR_SET_PDEATHSIG)", versionArgs: ["--version"], required: true },
];

/** Directories searched after PATH: sbin tools (sfdisk, mkfs.*) are often missing from a normal user's PATH. */
export const EXTRA_DIRS: readonly string[] = ["/usr/sbin", "/sbin"];

/** The spec of a known tool; UsageError for a name the registry does not know. */
export function toolSpec(name: string): ToolSpec {
  const spec = TOOLS.find((t) => t.name === name);
  if (!spec) throw new UsageError(`unknown host tool "${name}"`, { hint: `known tools: ${TOOLS.map((t) => t.name).join(", ")}` });
  return spec;
}

/** The directories searched for commands: PATH (read now) then EXTRA_DIRS, without duplicates or empty entries. */
export function searchDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromPath = (env.PATH ?? "").split(delimiter).filter((d) => d !== "" && isAbsolute(d));
  return [...new Set([...fromPath, ...EXTRA_DIRS])];
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isReadableFile(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Where the tool is, or null. Commands are looked up on PATH then /usr/sbin and
 * /sbin; data files at their fixed path. qemu-system-x86_64 honours VMLAB_QEMU.
 * Any name that is not in the registry is looked up as a plain command.
 */
export function findTool(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const spec = TOOLS.find((t) => t.name === name);
  if (spec?.file) return isReadableFile(spec.file) ? spec.file : null;
  if (name === "qemu-system-x86_64" && env.VMLAB_QEMU) {
    return isExecutableFile(env.VMLAB_QEMU) ? env.VMLAB_QEMU : null;
  }
  for (const dir of searchDirs(env)) {
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return null;
}

/** Like findTool, but a missing tool is a HostError naming its package and the install command. */
export function requireTool(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const found = findTool(name, env);
  if (found) return found;
  const spec = toolSpec(name);
  if (name === "qemu-system-x86_64" && env.VMLAB_QEMU) {
    throw new HostError(`VMLAB_QEMU points to "${env.VMLAB_QEMU}", which is not an executable file`, {
      where: "environment variable VMLAB_QEMU",
      hint: "fix the path, or unset VMLAB_QEMU to use qemu-system-x86_64 from PATH",
    });
  }
  const where = spec.file ? `file ${spec.file}` : `searched ${searchDirs(env).join(delimiter)}`;
  throw new HostError(`${name} is missing (${spec.purpose}); it comes with the Debian package ${spec.package}`, {
    where,
    hint: `install it as root: ${installCommand([spec.package])}`,
  });
}

/** Every package the lab needs (required tools and optional ones), each once, in registry order. */
export function labPackages(): string[] {
  return [...new Set(TOOLS.map((t) => t.package))];
}

/** The exact command that installs the given packages (default: all of labPackages()) on Debian/Ubuntu, run as root. */
export function installCommand(pkgs: readonly string[] = labPackages()): string {
  return `apt-get update && apt-get install -y --no-install-recommends ${[...new Set(pkgs)].join(" ")}`;
}

export { commandLine } from "../util/proc.ts";
