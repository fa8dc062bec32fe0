#!/usr/bin/env bash
# Creates a venv, installs the fencelock package (building the native module with cargo) and the
# test dependencies, then runs pytest. `make test` runs this; so can a developer.
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
"$venv/bin/python" -m pip install --quiet "$here[test]"
cd "$here"
# The package promises types (py.typed and a stub for the native module): hold it to that.
"$venv/bin/mypy" --strict fencelock
# The pytest script (not `python -m pytest`) keeps this source tree off sys.path, so the tests
# exercise the installed package with its built native module.
exec "$venv/bin/pytest" -q "$@"
