#!/usr/bin/env bash
# Everything the browser package needs and every test of it, from a fresh machine: the wasm32
# target, wasm-bindgen-cli at the crate's version, the npm packages from the lockfile,
# Debian's chromium; then the build (with the import and size check), the TypeScript check,
# the shared vectors under Node and the tests in headless Chromium. `make web-test` runs this;
# so can a developer. Extra arguments go to `node --test`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

node -e 'const [major] = process.versions.node.split("."); if (+major < 20) { console.error(`fencelock-web needs Node 20 or newer, this is ${process.version}`); process.exit(1); }'
rustup target add wasm32-unknown-unknown >/dev/null
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium (playwright-core drives it; it never downloads a browser)"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
echo "==> npm ci (lockfile)"
npm ci --no-audit --no-fund --loglevel=error
echo "==> build: wasm-bindgen (web, nodejs), wasm-opt, import and size check"
bash scripts/build.sh
echo "==> tsc --strict on a typed usage example"
npx tsc -p test/types/tsconfig.json
echo "==> node --test: shared vectors through the nodejs build, then headless Chromium"
export FENCELOCK_TEST_OUTPUT="${FENCELOCK_TEST_OUTPUT:-$here/test-output}"
node --test --test-timeout=90000 "$@" test/node/*.test.mjs test/browser/*.test.mjs
echo "test output (demo screenshot): $FENCELOCK_TEST_OUTPUT"
