# Sourced by the scripts in this folder: makes sure .venv exists and holds the project with its
# development extras, then puts it first on PATH. Re-installs only when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="${HEATGRID_PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "heatgrid needs Python >= 3.11; '$PY' is $("$PY" --version 2>&1). Set HEATGRID_PYTHON." >&2
    exit 2
fi
STAMP="$VENV/.heatgrid-installed"
WANT="$(cat pyproject.toml | sha256sum | cut -c1-16)${HEATGRID_EXTRAS:-dev}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating $VENV ..." >&2
    "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "Installing heatgrid[${HEATGRID_EXTRAS:-dev}] into .venv ..." >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e ".[${HEATGRID_EXTRAS:-dev}]" >&2
    echo "$WANT" >"$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1
# numba keys a compiled function's cache on its own source file only, so a kernel that inlines
# core's (sim/_fused_kernel.py does) would load stale machine code after core changed. Keep the
# caches in a folder named after the contents of core and of every file that imports numba.
if [ -z "${NUMBA_CACHE_DIR:-}" ]; then
    KERNELS="$( { ls src/heatgrid/core/*.py; grep -rlE --include='*.py' '^(from|import) numba' src || true; } \
        | sort -u | xargs cat | sha256sum | cut -c1-16)"
    export NUMBA_CACHE_DIR="$ROOT/.numba-cache/$KERNELS"
    if [ -d "$ROOT/.numba-cache" ]; then  # the caches of older sources
        find "$ROOT/.numba-cache" -mindepth 1 -maxdepth 1 ! -name "$KERNELS" -exec rm -rf {} +
    fi
fi
