#!/bin/sh
# Make a fresh clone ready: npm packages, then host packages if a tool is missing.
# Used by `npm run vmlab` and `npm test`, so the README's two commands work on a
# fresh Debian machine. Prints what it does; does nothing when all is in place.
set -e
cd "$(dirname "$0")/.."
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "vmlab: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
if ! node lab/vmlab.mjs doctor --quiet >/dev/null 2>&1; then
  echo "vmlab: host tools missing; running vmlab setup" >&2
  node lab/vmlab.mjs setup >&2
fi
