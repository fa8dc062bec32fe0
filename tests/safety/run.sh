#!/usr/bin/env bash
# The safety run: sets up what it needs on a fresh Debian machine (PostgreSQL, a venv with
# psycopg and the fencelock Python package, the Node addon), then runs the checks.
#   run.sh short   bounded (about a minute): the checker's unit tests, a fault round that must
#                  be caught, then a short round against each server (`make safety-short`)
#   run.sh long    a longer round against each server (`make safety`)
# SEED=n replays the choices of an earlier run; extra arguments go to safety.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
profile="${1:-short}"
shift || true
venv="${SAFETY_VENV:-$here/.venv}"
python="${PYTHON:-python3}"

echo "==> safety ($profile): setup"
# PostgreSQL: Debian's package; the script starts its own cluster in a temp dir.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    echo "installing postgresql (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# A venv with the pinned dependencies; reinstalled only when requirements.txt changes.
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
stamp="$venv/.safety-requirements"
if ! cmp -s "$here/requirements.txt" "$stamp"; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi

# The fencelock Python package: already in this venv, or shared from the venv that
# python/scripts/test.sh made (only the package, through a link), or built here as that script does.
if ! (cd / && "$venv/bin/python" -c 'import fencelock' 2>/dev/null); then
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    other="$repo/.venv-python-test"
    shared=""
    if [ -x "$other/bin/python" ]; then
        shared="$(cd / && "$other/bin/python" -c 'import fencelock, os; print(os.path.dirname(os.path.dirname(fencelock.__file__)))' 2>/dev/null || true)"
    fi
    if [ -n "$shared" ] && [ "$("$other/bin/python" -c 'import sys; print(sys.version_info[:2])')" = "$("$venv/bin/python" -c 'import sys; print(sys.version_info[:2])')" ]; then
        echo "using the fencelock package installed in $other"
        mkdir -p "$venv/fencelock-shared"
        ln -sfn "$shared/fencelock" "$venv/fencelock-shared/fencelock"
        echo "$venv/fencelock-shared" > "$site/fencelock-shared.pth"
    else
        echo "building the fencelock wheel (release build of the native module)..."
        wheels="$(mktemp -d)"
        "$venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$repo/python"
        "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$wheels"/fencelock-*.whl
        rm -rf "$wheels"
    fi
    (cd / && "$venv/bin/python" -c 'import fencelock') || { echo "fencelock is not importable from $venv" >&2; exit 1; }
fi

# The Node addon, built in place as node/scripts/test.sh builds it.
if [ ! -f "$repo/node/fencelock.linux-x64-gnu.node" ]; then
    echo "building the Node addon (npm ci, napi build)..."
    (cd "$repo/node" && npm ci --no-audit --no-fund --ignore-scripts && npm run build)
fi

cd "$here"
export PYTHONDONTWRITEBYTECODE=1
case "$profile" in
    short)
        echo "==> safety-short: the checker's own tests and a fault round that must be caught"
        "$venv/bin/pytest" -q -p no:cacheprovider test_linearizability.py test_fault.py
        echo "==> safety-short: a short round against each server"
        exec "$venv/bin/python" safety.py --profile short "$@"
        ;;
    long)
        exec "$venv/bin/python" safety.py --profile long "$@"
        ;;
    *)
        echo "usage: run.sh short|long [safety.py arguments]" >&2
        exit 2
        ;;
esac
