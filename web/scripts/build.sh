#!/usr/bin/env bash
# Builds the wasm modules of fencelock-web from bindings/wasm (cargo profile `wasm`: size
# first), processes each with the pinned wasm-bindgen CLI and optimises it with binaryen's
# wasm-opt from npm (never Debian's: its wasm-opt 108 emits modules that fail to load).
#   pkg/web   the browser's module: client, fence and protocol server (--target web). Pages and
#             the worker load the same file, so the browser fetches it once; two modules
#             (client, server) would repeat the core's shared code (protocol, allocator, hash tables).
#   pkg/node  everything, the engine too, for the shared vectors under Node (--target nodejs)
# Then what a page loads is bundled and minified with esbuild (pinned in package.json) from
# the readable src/ into dist/: the entry points index.js (pages), worker.js and
# worker-main.js (workers) keep their names and place, so relative URLs stay valid; code
# they share, wasm-bindgen's browser glue included, goes into chunks beside them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"

want="0.2.130"
have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" || true
if [ "$have" != "$want" ]; then
  echo "==> installing wasm-bindgen-cli $want (it must match the crate's pinned wasm-bindgen)"
  cargo install wasm-bindgen-cli --version "$want"
fi
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true

wasm_opt="$here/node_modules/.bin/wasm-opt"
test -x "$wasm_opt" || { echo "run npm ci in web/ first (binaryen provides wasm-opt, esbuild the minifier)" >&2; exit 1; }
# The features rustc's wasm32 target emits; wasm-opt must be told it may keep them.
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
          --enable-reference-types --enable-multivalue --enable-mutable-globals)
built="target/wasm32-unknown-unknown/wasm/fencelock_wasm.wasm"

build() { # name target out-dir wasm-opt-level cargo-feature-args...
  local name="$1" target="$2" out="$3" level="$4"; shift 4
  echo "==> $name: cargo build --profile wasm $* ; wasm-bindgen --target $target ; wasm-opt $level"
  cargo build --quiet -p fencelock-wasm --target wasm32-unknown-unknown --profile wasm "$@"
  rm -rf "$out"
  wasm-bindgen --target "$target" --out-dir "$out" "$built"
  optimise "$out" "$level"
}

optimise() { # out-dir wasm-opt-level
  local out="$1" level="$2"
  # shellcheck disable=SC2086 # $level holds several flags
  "$wasm_opt" $level "${features[@]}" "$out/fencelock_wasm_bg.wasm" -o "$out/fencelock_wasm_bg.wasm"
}

# Measured on the browser's module (gzipped): -Os --converge 132.3 KB, -O3 132.7 KB,
# -Oz 132.8 KB, -Oz --converge 132.6 KB; cargo opt-level "s" or 3 instead of "z": 144.9 and
# 162.7 KB. Later, with -Os --converge at 115.7 KB: not inlining a function into its one
# caller (-ocimfs=0) and stripping the producers and target-features sections (read by no
# browser) gives 108.6 KB (raw 8 KB larger: separate functions compress better than the
# same code inlined into large ones); -Oz with the same 109.0 KB. Flags that assume no trap
# happens are not used: a trap is how a bug stops.
web_opt="-Os --converge --one-caller-inline-max-function-size=0 --strip-producers --strip-target-features"
web_features=(--no-default-features --features client,fence,server)
# The browser's module is built with its own core and alloc (cargo's build-std, from the
# toolchain's rust-src component), compiled to abort at once on a panic (no panic message is
# ever formatted, so core::fmt and the panic paths' texts leave the module) and with the
# standard library's smaller implementations (`optimize_for_size`): 103.2 -> 95.7 KB gzipped
# when this was added. These are unstable options of cargo and rustc; RUSTC_BOOTSTRAP lets the
# stable toolchain accept them, as for the fuzzers (Makefile). In its own target directory:
# artifacts built this way never mix with the workspace's. Without rust-src (it could not be
# installed) the module is built as the Node one is, larger, and the script says so.
sysroot="$(rustc --print sysroot)"
if [ ! -d "$sysroot/lib/rustlib/src/rust/library/core" ]; then
  rustup component add rust-src >/dev/null 2>&1 || true
fi
if [ -d "$sysroot/lib/rustlib/src/rust/library/core" ]; then
  echo "==> web: cargo build --profile wasm -Zbuild-std=core,alloc (panic = immediate-abort, optimize_for_size) ; wasm-bindgen --target web ; wasm-opt $web_opt"
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" \
    cargo build --quiet -p fencelock-wasm --target wasm32-unknown-unknown --profile wasm \
      --target-dir target/web-std -Zbuild-std=core,alloc -Zbuild-std-features=optimize_for_size \
      "${web_features[@]}"
  rm -rf "$here/pkg/web"
  wasm-bindgen --target web --out-dir "$here/pkg/web" "target/web-std/wasm32-unknown-unknown/wasm/fencelock_wasm.wasm"
  optimise "$here/pkg/web" "$web_opt"
else
  echo "WARNING: the rust-src component is not installed and could not be: the browser's module is built with the prebuilt core (larger, over the size budget)" >&2
  export FENCELOCK_WASM_PREBUILT_CORE=1
  build web web "$here/pkg/web" "$web_opt" "${web_features[@]}"
fi
build node nodejs "$here/pkg/node" -O3
# The nodejs target is CommonJS, inside a package whose .js files are ES modules.
echo '{ "type": "commonjs" }' > "$here/pkg/node/package.json"

# --keep-names: errors.js names each error by its class (`new.target.name`).
echo "==> esbuild --bundle --splitting --minify: src/ (and the glue) into dist/"
rm -rf "$here/dist"
"$here/node_modules/.bin/esbuild" "$here/src/index.js" "$here/src/worker.js" "$here/src/worker-main.js" \
  --bundle --splitting --chunk-names='chunk-[hash]' --outdir="$here/dist" \
  --format=esm --minify --keep-names --log-level=warning
node "$here/scripts/check-wasm.mjs"
