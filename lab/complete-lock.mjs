#!/usr/bin/env node
// Restores package-lock.json entries for rollup's per-platform packages.
// `npm install` through a registry mirror that serves only this platform's
// builds drops the others from the lock file, and `npm ci` then refuses the
// lock as out of sync. The entries need no download address: npm ci skips
// them on any platform they do not match. Run after `npm install`.
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const pk = lock.packages;
const wanted = pk["node_modules/rollup"]?.optionalDependencies ?? {};
let added = 0;
for (const [name, version] of Object.entries(wanted)) {
  if (!name.startsWith("@rollup/rollup-") || pk[`node_modules/${name}`]) continue;
  const [os, cpu] = name.slice("@rollup/rollup-".length).split("-");
  const entry = { version, cpu: [cpu], dev: true, license: "MIT", optional: true, os: [os] };
  if (os === "linux") entry.libc = [name.includes("musl") ? "musl" : "glibc"];
  pk[`node_modules/${name}`] = entry;
  added++;
}
lock.packages = Object.fromEntries(Object.entries(pk).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)));
writeFileSync(path, JSON.stringify(lock, null, 2) + "\n");
console.log(`package-lock.json: ${added} platform entries restored`);
