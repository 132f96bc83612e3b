import { VmlabError } from "../errors.ts";
import type { Machine } from "../vm/machine.ts";

/**
 * A data set seeded on the guest before a procedure, and checked after it:
 * the proof that nothing was lost. It holds a large random file, many small
 * files, a hard link, a symlink, a name with spaces, and a file with an
 * extended attribute, the things a careless copy drops.
 */
export const DATA_DIR = "/srv/vmlab-data";
/** The seeded checksums, in the run directory: what `vmlab check` compares a kept machine's data set with. */
export const DATASET_FILE = "dataset.json";

export type Manifest = Record<string, string>;

export interface DataCheck {
  intact: boolean;
  files: number;
  missing: string[];
  changed: string[];
  added: string[];
}

const SEED = `set -e
rm -rf ${DATA_DIR}
mkdir -p ${DATA_DIR}/small "${DATA_DIR}/with space"
head -c 16M /dev/urandom > ${DATA_DIR}/big.bin
# One process for the 200 small files (perl-base is essential in Debian): under TCG a process start costs tens of ms.
perl -e 'open(my $r, "<", "/dev/urandom") or die; for my $i (1..200) { read($r, my $b, $i * 97) == $i * 97 or die; open(my $f, ">", "${DATA_DIR}/small/f$i") or die; print $f $b; close($f) or die }'
echo "a name with spaces" > "${DATA_DIR}/with space/file one.txt"
ln ${DATA_DIR}/big.bin ${DATA_DIR}/big.hardlink
ln -s small/f1 ${DATA_DIR}/link-to-f1
echo xattr > ${DATA_DIR}/xattr.txt
setfattr -n user.vmlab -v kept ${DATA_DIR}/xattr.txt
sync`;

/**
 * One line per entry: regular files by sha256, symlinks by target, hard links
 * by link count, and the user xattr of xattr.txt.
 */
const MANIFEST = `cd ${DATA_DIR} && find . -type f -print0 | sort -z | xargs -0 sha256sum | sed 's/^/file /'
cd ${DATA_DIR} && find . -type l -printf 'link %l  %p\\n' | sort
cd ${DATA_DIR} && find . -type f -printf 'nlink %n  %p\\n' | sort
cd ${DATA_DIR} && printf 'xattr %s  ./xattr.txt\\n' "$(getfattr --only-values -n user.vmlab xattr.txt)"`;

export function parseManifest(text: string): Manifest {
  const m: Manifest = {};
  for (const line of text.split("\n")) {
    const match = /^(file|link|nlink|xattr) (\S+|.+?)  (.+)$/.exec(line.trim());
    if (match) m[`${match[1]} ${match[3]}`] = match[2]!;
  }
  return m;
}

export function compareManifests(before: Manifest, after: Manifest): DataCheck {
  const missing = Object.keys(before).filter((k) => !(k in after));
  const changed = Object.keys(before).filter((k) => k in after && after[k] !== before[k]);
  const added = Object.keys(after).filter((k) => !(k in before));
  const files = Object.keys(before).filter((k) => k.startsWith("file ")).length;
  return { intact: missing.length === 0 && changed.length === 0 && added.length === 0, files, missing, changed, added };
}

export class DataSet {
  manifest: Manifest | null = null;

  /** A data set seeded earlier (by another process), from its checksums. */
  static fromManifest(manifest: Manifest): DataSet {
    const d = new DataSet();
    d.manifest = manifest;
    return d;
  }
  /** The last check, and the machine's action count right after it. */
  private last?: { vm: Machine; actions: number; check: DataCheck };

  /** Write the data set on the guest and record its checksums on the host. */
  async seed(vm: Machine): Promise<Manifest> {
    await vm.succeed(SEED, { timeoutMs: 10 * 60_000 });
    this.manifest = await this.read(vm);
    return this.manifest;
  }

  async read(vm: Machine): Promise<Manifest> {
    const out = await vm.succeed(MANIFEST, { timeoutMs: 10 * 60_000 });
    return parseManifest(out);
  }

  /** Compare the guest's data set now with the seeded one. */
  async check(vm: Machine): Promise<DataCheck> {
    if (!this.manifest) throw new VmlabError("the data set was never seeded", { hint: "call data.seed(vm) before the procedure" });
    const r = await vm.run(MANIFEST, { timeoutMs: 10 * 60_000 });
    const check = compareManifests(this.manifest, parseManifest(r.stdout));
    this.last = { vm, actions: vm.actions, check };
    return check;
  }

  /** The last check of this machine, if the lab has done nothing to it since (no command, no typing, no start). */
  current(vm: Machine): DataCheck | undefined {
    return this.last && this.last.vm === vm && this.last.actions === vm.actions ? this.last.check : undefined;
  }

  /** Throw with the differences unless the data set is intact. */
  async expectIntact(vm: Machine): Promise<DataCheck> {
    const c = await this.check(vm);
    if (!c.intact) {
      throw new VmlabError(`data set on ${DATA_DIR} is not intact`, {
        output: describeCheck(c),
        hint: "the procedure lost or changed data: look at the copy and pivot steps",
      });
    }
    return c;
  }
}

export function describeCheck(c: DataCheck): string {
  if (c.intact) return `intact: ${c.files} files match`;
  const lines = [`${c.missing.length} missing, ${c.changed.length} changed, ${c.added.length} unexpected`];
  for (const k of c.missing.slice(0, 10)) lines.push(`missing: ${k}`);
  for (const k of c.changed.slice(0, 10)) lines.push(`changed: ${k}`);
  for (const k of c.added.slice(0, 10)) lines.push(`unexpected: ${k}`);
  return lines.join("\n");
}
