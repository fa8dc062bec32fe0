#!/usr/bin/env bash
# Builds the fencelock wheel from source (PEP 517, maturin, cargo), installs that wheel into a
# venv with no Rust toolchain on PATH (the abi3 wheel must not need one), adds the test
# dependencies, type-checks, then runs pytest. `make test` runs this; so can a developer.
#   VENV=path   venv to use (default: <repo>/.venv-python-test, created if missing)
#   extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${VENV:-$repo/.venv-python-test}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
echo "building the wheel (release build of the native module)..."
"$venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$here"
wheel="$(ls "$wheels"/fencelock-*-abi3-*.whl)"
echo "installing $(basename "$wheel") with no cargo or rustc on PATH"
PATH=/usr/bin:/bin "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$wheel"
PATH=/usr/bin:/bin "$venv/bin/python" -m pip install --quiet "$wheel[test]"
cd "$here"
# The package promises types (py.typed and a stub for the native module): hold it to that.
"$venv/bin/mypy" --strict fencelock
# The pytest script (not `python -m pytest`) keeps this source tree off sys.path, so the tests
# exercise the installed package with its built native module.
exec "$venv/bin/pytest" -q "$@"
