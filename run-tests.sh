#!/usr/bin/env bash
# The test command (README): checks the Python version, makes the venv if needed, installs torch with
# TORCH_COMMAND only when it is missing (default `pip install torch==2.13.0`: PyPI's CUDA build on Linux, the
# CPU build on Windows/macOS; for a smaller CPU-only install on Linux set
# TORCH_COMMAND="pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"), installs sdweb
# with its dev extras without letting pip swap torch, then runs pytest offline. The tests never read the
# user's webui-user.sh, config.json, models/ or outputs/.
# Extra arguments go to pytest, e.g. ./run-tests.sh tests/unit -k settings
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

venv_dir="${VENV_DIR:-venv}"
python_cmd="${PYTHON:-python3}"
TORCH_COMMAND="${TORCH_COMMAND:-pip install torch==2.13.0}"

# pyproject.toml's requires-python (">=3.11"), checked before anything is installed
min_python="$(sed -n 's/^requires-python *= *"[[:space:]]*>=[[:space:]]*\([0-9][0-9.]*\)[[:space:]]*".*/\1/p' pyproject.toml)"
min_python="${min_python:-3.11}"
check_python() {
    local found
    found="$("$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)" \
        || { echo "run-tests.sh: cannot run Python ($1); install Python $min_python or newer (set PYTHON)." >&2; exit 1; }
    if ! "$1" -c "import sys; sys.exit(sys.version_info[:2] < tuple(int(x) for x in '$min_python'.split('.')[:2]))"; then
        echo "run-tests.sh: sdweb needs Python $min_python or newer, but $1 is Python $found; nothing was installed." >&2
        echo "Set PYTHON to a newer python3 (and delete $venv_dir if it was made with the old one)." >&2
        exit 1
    fi
}

if [[ "$venv_dir" != "-" ]]; then
    if [[ ! -x "$venv_dir/bin/python" ]]; then
        check_python "$python_cmd"
        "$python_cmd" -m venv "$venv_dir"
    fi
    python="$venv_dir/bin/python"
else
    python="$(command -v python || command -v "$python_cmd")"
fi
check_python "$python"

if ! "$python" -c "import torch" >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    "$python" -m $TORCH_COMMAND
fi
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$python" -c "import importlib.metadata as m; print('torch==' + m.version('torch').split('+')[0])" > "$constraints"
"$python" -m pip install --quiet --constraint "$constraints" -e ".[dev]"
# spandrel declares torchvision, which has no working CPU build here: install it without dependencies.
"$python" -m pip install --quiet --no-deps "spandrel==0.4.2" "spandrel-extra-arches==0.2.0" "einops>=0.8"
# k-diffusion is the samplers' test-only reference; its __init__ needs torchvision & co, so no dependencies
# (only its sampling.py / external.py are loaded: sdweb/testing/kdiffusion_reference.py).
"$python" -m pip install --quiet --no-deps "k-diffusion==0.1.1.post1" "torchdiffeq==0.2.5"

export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export GRADIO_TEMP_DIR="${GRADIO_TEMP_DIR:-$(mktemp -d)}"

set +e
"$python" -m pytest "$@"
code=$?
set -e
if [[ $code -eq 5 ]]; then
    echo "run-tests.sh: pytest collected no tests" >&2
    exit 1
fi
exit $code
