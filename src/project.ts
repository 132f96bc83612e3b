/**
 * Where names come from: the user's project first, then vmlab's own.
 *
 * A team that installs vmlab as a dependency keeps its scenarios, runbooks,
 * exercises and image recipes in its own repository, next to its
 * package.json. `vmlab run NAME` looks in that project's `scenarios/` before
 * vmlab's, so a project's scenario with the same name as a built-in one wins,
 * and `vmlab list` shows both with where each comes from.
 *
 * The user's project is the nearest directory, from the current one upwards,
 * whose package.json depends on vmlab (or is vmlab); with none, the current
 * directory. In vmlab's own clone both are the same directory and nothing is
 * listed twice.
 */
import { existsSync, readFileSync, readdirSync, realpathSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { projectRoot } from "./paths.ts";

/** The kinds of named files a project can hold, each in its own directory. */
export type NamedKind = "scenarios" | "runbooks" | "exercises" | "images";

/** Where a named file comes from: the user's project, or vmlab itself (built in). */
export type Origin = "project" | "vmlab";

export interface NamedFile {
  name: string;
  file: string;
  origin: Origin;
}

export interface Root {
  dir: string;
  origin: Origin;
}

/** Does the package.json in `dir` depend on vmlab, or is it vmlab? */
function dependsOnVmlab(dir: string): boolean {
  const file = join(dir, "package.json");
  if (!existsSync(file)) return false;
  try {
    const pkg = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    if (pkg.name === "vmlab") return true;
    return ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"].some((k) => {
      const deps = pkg[k];
      return typeof deps === "object" && deps !== null && "vmlab" in deps;
    });
  } catch {
    return false;
  }
}

/**
 * The user's project: `VMLAB_PROJECT` when set, else the nearest directory
 * from `cwd` upwards whose package.json depends on vmlab, else `cwd`.
 */
export function userProjectRoot(cwd = process.cwd()): string {
  if (process.env.VMLAB_PROJECT) return resolve(process.env.VMLAB_PROJECT);
  for (let d = resolve(cwd); ; d = dirname(d)) {
    if (dependsOnVmlab(d)) return d;
    if (dirname(d) === d) return resolve(cwd);
  }
}

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** The directories names are looked up in, the user's project first; one entry when they are the same. */
export function searchRoots(cwd = process.cwd(), own = projectRoot): Root[] {
  const user = userProjectRoot(cwd);
  return real(user) === real(own) ? [{ dir: own, origin: "vmlab" }] : [{ dir: user, origin: "project" }, { dir: own, origin: "vmlab" }];
}

/** The directories of one kind that exist, in lookup order. */
export function kindDirs(kind: NamedKind, cwd = process.cwd(), own = projectRoot): Root[] {
  return searchRoots(cwd, own)
    .map((r) => ({ dir: join(r.dir, kind), origin: r.origin }))
    .filter((r) => existsSync(r.dir));
}

/**
 * Every named file of a kind with one of `exts` (like [".ts"]), sorted by
 * name; when both the project and vmlab have a name, the project's wins.
 * `skip` leaves out files that are not named things (a README.md).
 */
export function listNamed(kind: NamedKind, exts: string[], o: { cwd?: string; own?: string; skip?: string[] } = {}): NamedFile[] {
  const byName = new Map<string, NamedFile>();
  for (const r of kindDirs(kind, o.cwd, o.own)) {
    for (const f of readdirSync(r.dir).sort()) {
      const ext = exts.find((e) => f.endsWith(e));
      if (!ext || o.skip?.includes(f)) continue;
      const name = basename(f, ext);
      if (!byName.has(name)) byName.set(name, { name, file: join(r.dir, f), origin: r.origin });
    }
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** One named file of a kind, the project's first; undefined when neither has it. */
export function findNamed(kind: NamedKind, name: string, exts: string[], o: { cwd?: string; own?: string } = {}): NamedFile | undefined {
  // A name is a file name without its extension, never a path.
  if (!name || name.includes("/") || name.startsWith(".")) return undefined;
  for (const r of kindDirs(kind, o.cwd, o.own)) {
    for (const ext of exts) {
      const file = join(r.dir, name + ext);
      if (existsSync(file)) return { name, file, origin: r.origin };
    }
  }
  return undefined;
}

/** The directories looked in, for messages: "./scenarios or vmlab's scenarios". */
export function describeDirs(kind: NamedKind, cwd = process.cwd(), own = projectRoot): string {
  return searchRoots(cwd, own)
    .map((r) => join(r.dir, kind))
    .join(" or ");
}
