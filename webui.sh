#!/usr/bin/env bash
# sdweb launcher (same habits as AUTOMATIC1111's webui.sh): reads webui-user.sh, makes the venv,
# installs torch (TORCH_COMMAND) only when it is missing, installs sdweb, then runs
# `python -m sdweb "$@"` (the app appends $COMMANDLINE_ARGS) in a restart loop.
set -u

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$script_dir" || exit 1

if [[ -f "$script_dir/webui-user.sh" ]]; then
    # shellcheck source=/dev/null
    source "$script_dir/webui-user.sh"
fi

python_cmd="${PYTHON:-${python_cmd:-python3}}"
venv_dir="${VENV_DIR:-${venv_dir:-venv}}"
TORCH_COMMAND="${TORCH_COMMAND:-pip install torch==2.13.0}"
export COMMANDLINE_ARGS="${COMMANDLINE_ARGS:-}"
export GRADIO_ANALYTICS_ENABLED=False
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
[[ -n "${PYTORCH_CUDA_ALLOC_CONF:-}" ]] && export PYTORCH_CUDA_ALLOC_CONF

all_args=("$@")
read -r -a env_args <<< "$COMMANDLINE_ARGS"
all_args+=("${env_args[@]}")
has_flag() {
    local wanted="$1" arg
    for arg in "${all_args[@]}"; do [[ "$arg" == "$wanted" ]] && return 0; done
    return 1
}

delimiter="################################################################"

if [[ $(id -u) -eq 0 ]] && ! has_flag -f && [[ "${CI:-}" != "true" ]]; then
    printf "\n%s\nERROR: This script must not be launched as root, aborting...\n" "$delimiter"
    printf "Run it as a normal user, or pass -f to run as root anyway.\n%s\n" "$delimiter"
    exit 1
fi

# pyproject.toml's requires-python (">=3.11"), checked before the long torch install
min_python="$(sed -n 's/^requires-python *= *"[[:space:]]*>=[[:space:]]*\([0-9][0-9.]*\)[[:space:]]*".*/\1/p' pyproject.toml)"
min_python="${min_python:-3.11}"
check_python() {
    local exe="$1" found
    if ! found="$("$exe" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)"; then
        printf "\n%s\nERROR: cannot run Python (%s). Install Python %s or newer and set python_cmd in webui-user.sh.\n%s\n" \
            "$delimiter" "$exe" "$min_python" "$delimiter"
        exit 1
    fi
    if ! "$exe" -c "import sys; sys.exit(sys.version_info[:2] < tuple(int(x) for x in '$min_python'.split('.')[:2]))"; then
        printf "\n%s\nERROR: sdweb needs Python %s or newer, but %s is Python %s.\n" "$delimiter" "$min_python" "$exe" "$found"
        printf "Install a newer Python and set python_cmd in webui-user.sh (delete the %s folder if it was made\n" "$venv_dir"
        printf "with the old one); nothing was installed.\n%s\n" "$delimiter"
        exit 1
    fi
}

if [[ "$venv_dir" != "-" && -z "${VIRTUAL_ENV:-}" ]]; then
    if [[ ! -f "$venv_dir/bin/activate" ]]; then
        check_python "$python_cmd"
        printf "Creating python venv in %s with %s\n" "$venv_dir" "$python_cmd"
        "$python_cmd" -m venv "$venv_dir" || { echo "ERROR: cannot create venv with $python_cmd"; exit 1; }
        "$venv_dir/bin/python" -m pip install --upgrade pip >/dev/null
    fi
    # shellcheck source=/dev/null
    source "$venv_dir/bin/activate"
fi
python="$(command -v python || command -v "$python_cmd")"
check_python "$python"

if ! has_flag --skip-prepare-environment && ! has_flag --skip-install; then
    if has_flag --reinstall-torch || ! "$python" -c "import torch" >/dev/null 2>&1; then
        printf "Installing torch: %s\n" "$TORCH_COMMAND"
        # shellcheck disable=SC2086
        "$python" -m $TORCH_COMMAND || { echo "ERROR: torch installation failed ($TORCH_COMMAND)"; exit 1; }
    fi
    # Reinstall sdweb only when its requirements changed; pin the installed torch so pip never swaps it.
    stamp="${VIRTUAL_ENV:-$script_dir}/.sdweb-install-stamp"
    wanted="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]] || ! "$python" -c "import sdweb" >/dev/null 2>&1; then
        constraints="$(mktemp)"
        # torch's installed version from its metadata (importing torch before numpy is installed warns)
        "$python" -c "import importlib.metadata as m; print('torch==' + m.version('torch').split('+')[0])" > "$constraints"
        printf "Installing sdweb and its requirements\n"
        "$python" -m pip install --constraint "$constraints" -e . || { rm -f "$constraints"; exit 1; }
        # spandrel (upscalers) declares torchvision; it works without it, so never let pip resolve that.
        "$python" -m pip install --no-deps "spandrel==0.4.2" "spandrel-extra-arches==0.2.0" "einops>=0.8" || { rm -f "$constraints"; exit 1; }
        rm -f "$constraints"
        echo "$wanted" > "$stamp"
    fi
fi

if has_flag --exit; then
    echo "Exiting because of --exit argument"
    exit 0
fi

export SD_WEBUI_RESTART="${SD_WEBUI_RESTART:-$script_dir/tmp/restart}"
while true; do
    rm -f "$SD_WEBUI_RESTART"
    "$python" -m sdweb "$@"
    code=$?
    if [[ -f "$SD_WEBUI_RESTART" ]]; then
        export SD_WEBUI_RESTARTING=1
        echo "Restarting sdweb..."
        continue
    fi
    exit $code
done
