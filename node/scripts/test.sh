#!/usr/bin/env bash
# Builds the npm package from source (npm ci, napi build), packs it, installs the tarball into
# a fresh directory with no Rust toolchain on PATH (the linux-x64 addon must be inside), and
# runs the tests there against the installed package. `make node-test` runs this; so can a
# developer. Extra arguments go to `node --test`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$here"

node -e 'const [major] = process.versions.node.split("."); if (+major < 20) { console.error(`fencelock needs Node 20 or newer, this is ${process.version}`); process.exit(1); }'
echo "==> npm ci (lockfile) and napi build (release build of the addon)"
npm ci --no-audit --no-fund --ignore-scripts
npm run build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
echo "==> installing $tarball into a fresh directory with no cargo or rustc on PATH"
mkdir -p "$work/app"
cp -r test "$work/app/test"
# The test dependencies at the versions this package's lockfile pins, plus the tarball.
# better-sqlite3 builds its addon here (a prebuilt download, or node-gyp with the local headers).
node -e '
  const lock = require("./package-lock.json").packages;
  const wanted = ["typescript", "@types/node", "ioredis", "redis", "better-sqlite3", "parse-prometheus-text-format"];
  const deps = Object.fromEntries(wanted.filter((n) => lock[`node_modules/${n}`]).map((n) => [n, lock[`node_modules/${n}`].version]));
  deps.fencelock = `file:../${process.argv[1]}`;
  require("fs").writeFileSync(process.argv[2], JSON.stringify({ name: "fencelock-installed-test", private: true, dependencies: deps, allowScripts: { "better-sqlite3": true } }, null, 2));
' "$tarball" "$work/app/package.json"
cd "$work/app"
PATH=/usr/bin:/bin:"$(dirname "$(command -v node)")" npm install --no-audit --no-fund --loglevel=error
if PATH=/usr/bin:/bin command -v cargo >/dev/null; then echo "cargo is on the restricted PATH; cannot prove the tarball needs no Rust" >&2; exit 1; fi
echo "==> node --test against the installed package"
FENCELOCK_VECTORS="$repo/tests/vectors" FENCELOCK_REPO="$repo" \
  PATH=/usr/bin:/bin:"$(dirname "$(command -v node)")" node --test "$@" test/*.test.js
