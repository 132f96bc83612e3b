/**
 * The safety-net runbook's website: a tiny "database" of users and a few web
 * files, and the schema upgrade that adds an id to every user, once with the
 * runbook's bug (`if:` instead of `id:`) and once corrected.
 */
import { VmlabError } from "../errors.ts";
import type { Machine } from "../vm/machine.ts";
import { sh } from "../vm/guest-sh.ts";

/** The runbook's users before the upgrade, in the old schema. */
export const FIRST_USERS: [string, number][] = [
  ["alice", 29],
  ["bob", 18],
];

/** Files the upgrade adds to the site. */
export const UPGRADE_FILES = ["social-caramels.js", "ponies.js", "eye-candy.css"];

/** The database and the web files, in production; `assetBytes` of random data stand for images. */
export async function seedWebsite(vm: Machine, dir: string, o: { assetBytes?: number } = {}): Promise<void> {
  await vm.succeed(`set -e
cd ${dir}
: > database
printf '<html><body>users</body></html>\\n' > index.html
printf 'body { color: black }\\n' > style.css
mkdir -p img
head -c ${o.assetBytes ?? 256 * 1024} /dev/urandom > img/logo.png
sync`);
  await addUsers(vm, dir, FIRST_USERS);
}

/** The runbook's `add_new_user` before the upgrade: one "name:...,age:..." line per user. */
export async function addUsers(vm: Machine, dir: string, users: [string, number][]): Promise<void> {
  const lines = users.map(([n, a]) => `name:${n},age:${a}`);
  await vm.succeed(sh`printf '%s\\n' ${lines} >> ${`${dir}/database`} && sync`);
}

export async function readDatabase(vm: Machine, dir: string): Promise<string[]> {
  return (await vm.succeed(`cat ${dir}/database`)).split("\n").filter(Boolean);
}

/**
 * The upgrade: new web files, and the schema change that numbers every user.
 * `bug: true` is the runbook's first attempt, which writes `if:` where the
 * schema says `id:`. `mediaBytes` adds that much new media (a re-encoded
 * video, say): a change of that size has to fit in the snapshot.
 */
export async function upgradeWebsite(vm: Machine, dir: string, o: { bug: boolean; mediaBytes?: number }): Promise<void> {
  const prefix = o.bug ? "if:" : "id:";
  const width = o.bug ? 3 : 5;
  await vm.succeed(`set -e
cd ${dir}
touch ${UPGRADE_FILES.join(" ")}
${o.mediaBytes ? `head -c ${o.mediaBytes} /dev/urandom > img/hero-video.webm` : ""}
nl -n rz -w ${width} database | sed 's/\\t/,/; s/^/${prefix}/' > database.new
mv database.new database
sync`);
}

/** Throw unless every line of the database follows the new schema: `id:NNNNN,name:...,age:...`. */
export async function expectNewSchema(vm: Machine, dir: string, users: [string, number][]): Promise<string[]> {
  const db = await readDatabase(vm, dir);
  const expected = users.map(([n, a], i) => `id:${String(i + 1).padStart(5, "0")},name:${n},age:${a}`);
  if (db.join("\n") !== expected.join("\n")) {
    throw new VmlabError(`${dir}/database is not in the new schema`, {
      output: `expected:\n${expected.join("\n")}\nfound:\n${db.join("\n")}`,
      hint: "the upgrade's sed must write id: before the number nl adds",
    });
  }
  return db;
}

/** The runbook's fake data disk: names shared by the rollback rehearsal and its overflow twin. */
export const WEBSITE_DISK = { vg: "datadisks", lv: "website", snapshot: "backup", mount: "/mnt/website", snapshotMount: "/mnt/backup" } as const;
