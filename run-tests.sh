#!/usr/bin/env bash
# The test command (README): makes the venv if needed, installs torch 2.13.0 (CPU wheel) only when
# missing, installs sdweb with its dev extras without letting pip swap torch, then runs pytest offline.
# Extra arguments go to pytest, e.g. ./run-tests.sh tests/unit -k settings
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

venv_dir="${VENV_DIR:-venv}"
python_cmd="${PYTHON:-python3}"
TORCH_COMMAND="${TORCH_COMMAND:-pip install torch==2.13.0}"

if [[ "$venv_dir" != "-" ]]; then
    [[ -x "$venv_dir/bin/python" ]] || "$python_cmd" -m venv "$venv_dir"
    python="$venv_dir/bin/python"
else
    python="$(command -v python || command -v "$python_cmd")"
fi

if ! "$python" -c "import torch" >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    "$python" -m $TORCH_COMMAND
fi
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$python" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$constraints"
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
