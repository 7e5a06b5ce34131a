#!/usr/bin/env bash
# The GPU checks of one lent device session, in priority order, each step under its own time limit so one slow
# step cannot lose the others' figures. Run from the repository root on a CUDA machine:
#   bench/gpu_session.sh 1   # pytest -m gpu; SD 1.5 / SDXL speed, syncs, memory modes; Z-Image Turbo 1024²
#   bench/gpu_session.sh 2   # SDXL memory modes, two workers on one GPU, --compile
#   bench/gpu_session.sh 3   # one pass in ~9 minutes: SD 1.5 / SDXL ours vs an independent bare pipeline with
#                            # syncs, SDXL memory modes, the fullsize GPU tests, SD 1.5 --compile with CUDA graphs
# Wheels for packages the machine lacks go in .whl/ (see /work/.library/device/README.md); results go to $OUT.
set -u
OUT="${OUT:-/tmp/sdweb-gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export GRADIO_TEMP_DIR="$(mktemp -d)" SDWEB_BENCH_CACHE=/tmp/sdweb-bench-cache
export PYTHONPATH="$PWD"
if [[ -d .whl ]]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PWD"
fi
log="$OUT/session$1.log"
step() {
    local name=$1 limit=$2 started=$SECONDS
    shift 2
    echo "== $name (limit ${limit}s) $(date -u +%T)" | tee -a "$log"
    timeout -k 5 "$limit" "$@" >>"$log" 2>&1
    echo "== $name rc=$? in $((SECONDS - started)) s" | tee -a "$log"
}
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"
    nproc
} >>"$log" 2>&1

case "$1" in
1)
    step pytest_gpu 110 python3 -m pytest -m gpu -q -s -rs -p no:warnings --continue-on-collection-errors \
        tests/unit/test_seeds.py tests/unit/test_runtime_policy.py tests/postprocess/test_upscalers.py \
        tests/service/test_gpu_fullsize.py
    step sd1 110 python3 -m sdweb.bench --only gpu --gpu-models sd1 --gpu-parts speed,syncs,modes --repeats 3 --out "$OUT/sd1.json"
    step sdxl 120 python3 -m sdweb.bench --only gpu --gpu-models sdxl --gpu-parts speed,syncs --repeats 3 --out "$OUT/sdxl.json"
    step zimage 160 python3 -m sdweb.bench.zimage_gpu --repeats 3
    ;;
2)
    step workers 70 python3 -m sdweb.bench --only gpu --gpu-models sd1 --gpu-parts workers --out "$OUT/workers.json"
    step sdxl_modes 150 python3 -m sdweb.bench --only gpu --gpu-models sdxl --gpu-parts modes --out "$OUT/sdxl_modes.json"
    step compile 120 python3 -m sdweb.bench --only gpu --gpu-models sd1 --gpu-parts compile --repeats 3 --out "$OUT/compile.json"
    ;;
3)
    B="python3 -m sdweb.bench --only gpu --repeats 3"
    step sd1 100 $B --gpu-models sd1 --gpu-parts syncs,speed --out "$OUT/sd1.json"
    step sdxl 150 $B --gpu-models sdxl --gpu-parts syncs,speed --gpu-batch 4 --out "$OUT/sdxl.json"
    step sdxl_modes 130 $B --gpu-models sdxl --gpu-parts modes --gpu-steps 8 --out "$OUT/sdxl_modes.json"
    step pytest_gpu 80 python3 -m pytest -m gpu -q -s -rs -p no:warnings tests/service/test_gpu_fullsize.py
    step cudagraphs 100 $B --gpu-models sd1 --gpu-parts cudagraphs --out "$OUT/cudagraphs.json"
    ;;
4)  # after session 3: the --lowvram fix, CUDA graphs with room to compile, the batch figures with a warm-up
    B="python3 -m sdweb.bench --only gpu"
    step sdxl_modes 115 $B --gpu-models sdxl --gpu-parts modes --gpu-steps 4 --out "$OUT/sdxl_modes.json"
    step cudagraphs 200 $B --repeats 3 --gpu-models sd1 --gpu-parts cudagraphs --out "$OUT/cudagraphs.json"
    step sd1 90 $B --repeats 5 --gpu-models sd1 --gpu-parts speed --out "$OUT/sd1.json"
    ;;
esac
tail -c 4000 "$log"
