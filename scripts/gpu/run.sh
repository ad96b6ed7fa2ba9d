#!/usr/bin/env bash
# The prepared GPU run (scripts/gpu/README.md): ONE command on a lent GPU machine, from the repo root, carrying
# gpu_pack/ (scripts/gpu/pack.sh). Trains the Table 8 SR generator (PSNR stage, then the SAN GAN from its weights)
# within a time budget, evaluates both on Set5, runs the CUDA tests and three benchmarks, samples GPU utilisation,
# and leaves in $OUT: results.json (every figure + each step's exit code), logs.tar.gz, the fp16 EMA weights of
# both stages and one upscaled example. A failing step is recorded and the next one runs; the whole is capped.
#
#   bash scripts/gpu/run.sh               # on the GPU machine (about 9 minutes; budgets below)
#   bash scripts/gpu/run.sh --rehearse    # the same steps on the CPU with tiny budgets ($OUT or a temp folder)
#
# Environment: PSNR_S / GAN_S (training seconds per stage, counted from each command's start; default 130 / 140),
# TOTAL_S (whole run, default 530), PACK (default gpu_pack), PY (python; default python3, or .venv's when
# rehearsing), DEVICE (cuda; cpu when rehearsing), OUT (results folder).
set -uo pipefail

REHEARSE=0
for arg in "$@"; do
  case "$arg" in
    --rehearse) REHEARSE=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO" || exit 2

if [ "$REHEARSE" = 1 ]; then
  DEVICE="${DEVICE:-cpu}"; PSNR_S="${PSNR_S:-240}"; GAN_S="${GAN_S:-240}"; TOTAL_S="${TOTAL_S:-420}"
  TRAIN_STEPS="${TRAIN_STEPS:-4}"   # the rehearsal stops by steps; its time limits only guard
  GRACE_S=90
else
  DEVICE="${DEVICE:-cuda}"; PSNR_S="${PSNR_S:-130}"; GAN_S="${GAN_S:-140}"; TOTAL_S="${TOTAL_S:-530}"
  TRAIN_STEPS="${TRAIN_STEPS:-}"
  GRACE_S=45                        # after the time limit: the last step, checkpoint and weights
fi
# the whole run is capped: re-run this script under timeout (the per-step caps below keep it well inside)
if [ -z "${GPU_RUN_CAPPED:-}" ]; then
  GPU_RUN_CAPPED=1 exec timeout -k 15 $((TOTAL_S + 45)) bash "$REPO/scripts/gpu/run.sh" "$@"
fi

RESERVE_S=25      # kept for the weights, the summary and the tarball
MIN_STEP_S=8
START=$(date +%s)
DEADLINE=$((START + TOTAL_S))
PACK="${PACK:-gpu_pack}"
PACK="$(cd "$PACK" 2>/dev/null && pwd || echo "$PACK")"
if [ -z "${PY:-}" ]; then
  if [ "$REHEARSE" = 1 ] && [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi
RESULTS="${OUT:-}"
if [ -z "$RESULTS" ]; then RESULTS="$(mktemp -d /tmp/gpu_run_out.XXXXXX)"; fi
mkdir -p "$RESULTS"
WORK="$(mktemp -d /tmp/gpu_run.XXXXXX)"
LOGS="$WORK/logs"; RUNS="$WORK/runs"; SITE="$WORK/site"
mkdir -p "$LOGS" "$RUNS"
export PYTHONUNBUFFERED=1 PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg

elapsed() { printf '%4ds' $(( $(date +%s) - START )); }

record() {  # record NAME RC MS CAP NOTE
  local secs="null"
  [ "$3" != "null" ] && secs="$(printf '%d.%03d' $(( $3 / 1000 )) $(( $3 % 1000 )))"
  local timed_out=false
  { [ "$2" = 124 ] || [ "$2" = 137 ]; } && timed_out=true
  printf '{"step": "%s", "rc": %s, "seconds": %s, "cap_s": %s, "timed_out": %s, "note": "%s"}\n' \
    "$1" "$2" "$secs" "$4" "$timed_out" "$5" >> "$WORK/steps.jsonl"
}

step() {  # step NAME CAP_S SIGNAL CMD... : CMD under timeout (SIGNAL first, KILL 20 s later), log in logs/NAME.log
  local name="$1" cap="$2" sig="$3"; shift 3
  local left=$(( DEADLINE - $(date +%s) - RESERVE_S ))
  if (( left < MIN_STEP_S )); then
    echo "[run.sh $(elapsed)] $name: skipped (${left}s left before the deadline)"
    record "$name" null null "$cap" "skipped: no time left"
    return 99
  fi
  (( cap > left )) && cap=$left
  echo "[run.sh $(elapsed)] $name (cap ${cap}s)"
  local t0 rc ms
  t0=$(date +%s%N)
  timeout -s "$sig" -k 20 "$cap" "$@" > "$LOGS/$name.log" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  record "$name" "$rc" "$ms" "$cap" ""
  echo "[run.sh $(elapsed)] $name: rc $rc in $(( ms / 1000 ))s"
  if (( rc != 0 )); then tail -n 15 "$LOGS/$name.log" | sed 's/^/    | /'; fi
  return $rc
}

note() {  # a step that did not run a command (skipped or missing)
  echo "[run.sh $(elapsed)] $1: $3"
  record "$1" "$2" null null "$3"
}

MON_PID=""
gpu_monitor() {  # gpu_monitor start NAME | stop
  if [ "$1" = start ]; then
    if command -v nvidia-smi > /dev/null 2>&1; then
      nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
        > "$WORK/gpu_$2.csv" 2>> "$LOGS/nvidia-smi.err" &
      MON_PID=$!
    else
      echo "nvidia-smi absent: no GPU utilisation for $2" >> "$WORK/notes.txt"
    fi
  elif [ -n "$MON_PID" ]; then
    kill "$MON_PID" 2> /dev/null; wait "$MON_PID" 2> /dev/null; MON_PID=""
  fi
}

echo "[run.sh] $( [ "$REHEARSE" = 1 ] && echo REHEARSAL on the CPU || echo GPU run ): device $DEVICE, PSNR ${PSNR_S}s, GAN ${GAN_S}s, total cap ${TOTAL_S}s; pack $PACK; results $RESULTS; work $WORK"

# ---------------------------------------------------------------------------------------------- environment
GIT_COMMIT="$(git rev-parse HEAD 2> /dev/null || echo "${GIT_COMMIT:-unknown}")"
export REHEARSE DEVICE PSNR_S GAN_S TOTAL_S PACK GIT_COMMIT TRAIN_STEPS
step env 60 TERM "$PY" - "$WORK/meta.json" << 'EOF'
import importlib.metadata as md, json, os, platform, subprocess, sys, time
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
try:
    gpus = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip()
except (OSError, subprocess.SubprocessError) as err:
    gpus = f"nvidia-smi unavailable: {err}"
meta = {k.lower(): os.environ.get(k) for k in ("REHEARSE", "DEVICE", "PSNR_S", "GAN_S", "TOTAL_S", "PACK",
                                              "GIT_COMMIT", "TRAIN_STEPS")}
meta.update(started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), python=sys.version.split()[0],
            platform=platform.platform(), cpus=os.cpu_count(), gpus=gpus,
            packages={n: version(n) for n in ("torch", "torchvision", "numpy", "opencv-python-headless",
                                              "scikit-image", "safetensors", "basicsr", "lpips", "pytest")})
json.dump(meta, open(sys.argv[1], "w"), indent=1)
print(json.dumps(meta, indent=1))
EOF

# ---------------------------------------------------------------------------------------------- install
have_pkgs() { "$PY" -c "import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in ('basicsr', 'lpips')) else 1)"; }
if [ "$REHEARSE" = 1 ] && have_pkgs; then
  note install 0 "skipped: basicsr and lpips are importable"
elif ls "$PACK"/wheels/*.whl > /dev/null 2>&1; then
  # --target + PYTHONPATH: no network, no build, system site-packages untouched; the project itself is on
  # PYTHONPATH (it needs no build step), so `python -m restore` is the CLI
  step install 90 TERM "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
    "$PACK"/wheels/*.whl
  export PYTHONPATH="$REPO:$SITE${PYTHONPATH#"$REPO"}"
else
  note install 1 "no wheels in $PACK/wheels (run scripts/gpu/pack.sh)"
fi
if [ "$REHEARSE" = 1 ]; then
  note import_check 0 "skipped when rehearsing"
else
  step import_check 90 TERM "$PY" -c "import restore.compat as c; c.check_basicsr(); import lpips, restore.cli; print('basicsr, lpips, restore: ok')"
fi

# ---------------------------------------------------------------------------------------------- VGG16 features
# restored into the work folder, never into the pack (28 MiB there would travel on the next call)
VGG="$WORK/weights/vgg16_imagenet_features.pth"
step vgg_unpack 60 TERM "$PY" scripts/gpu/tool.py vgg-unpack "$PACK/vgg16" "$VGG"

# ---------------------------------------------------------------------------------------------- training
RECIPES=scripts/gpu/recipes
COMMON=(--set "data.train.roots=[$PACK/sr/train]" --set "data.val.root=$PACK/sr/Set5" --set "path.root=$RUNS")
if [ "$REHEARSE" = 1 ]; then
  COMMON+=(--set train.steps="$TRAIN_STEPS" --set train.batch_size=2 --set data.train.gt_size=32
           --set data.num_workers=0 --set train.log_every=2 --set val.every=2 --set val.max_images=1
           --set val.samples=1 --set checkpoint.every=2)
elif [ -n "$TRAIN_STEPS" ]; then
  COMMON+=(--set train.steps="$TRAIN_STEPS")
fi
if "$PY" -m restore train --help 2> /dev/null | grep -q -- '--time-limit'; then TIME_FLAG=1; else TIME_FLAG=0; fi

train_stage() {  # train_stage STAGE RUN_NAME RECIPE SECONDS EXTRA...
  local stage="$1" run="$2" recipe="$3" budget="$4"; shift 4
  local limit=(--set "train.time_limit=$budget")  # the engine's option, if the CLI flag is missing
  [ "$TIME_FLAG" = 1 ] && limit=(--time-limit "${budget}s")
  gpu_monitor start "$stage"
  # SIGINT at the cap: the engine checkpoints at the step boundary (then `export` below writes the weights)
  step "train_$stage" $((budget + GRACE_S)) INT "$PY" -m restore train -opt "$RECIPES/$recipe" --device "$DEVICE" \
    --no-progress "${COMMON[@]}" "${limit[@]}" "$@"
  local rc=$?
  gpu_monitor stop
  if [ ! -f "$RUNS/$run/$run.safetensors" ] && ls "$RUNS/$run"/checkpoints/*.pt > /dev/null 2>&1; then
    step "export_$stage" 90 TERM "$PY" scripts/gpu/tool.py export "$RUNS/$run" "$RUNS/$run/$run.safetensors"
  fi
  return $rc
}

train_stage psnr gpu_x4_psnr x4_psnr_gpu.yml "$PSNR_S"
PSNR_W="$RUNS/gpu_x4_psnr/gpu_x4_psnr.safetensors"
GAN_EXTRA=(--set "losses.perceptual.weights=$VGG")
[ "$REHEARSE" = 1 ] && GAN_EXTRA+=(--set critic.image_size=32)
if [ -f "$PSNR_W" ]; then
  GAN_EXTRA+=(--set "train.pretrained_generator=$PSNR_W")
else
  echo "[run.sh] no PSNR-stage weights: the GAN stage starts from scratch" | tee -a "$WORK/notes.txt"
  GAN_EXTRA+=(--set "train.pretrained_generator=null")
fi
train_stage gan gpu_x4_san x4_san_gpu.yml "$GAN_S" "${GAN_EXTRA[@]}"
GAN_W="$RUNS/gpu_x4_san/gpu_x4_san.safetensors"

# fp16 EMA weights for $OUT (the exported generator is the EMA copy; metadata kept)
HALF=()
[ -f "$PSNR_W" ] && HALF+=("$PSNR_W" "$RESULTS/gpu_x4_psnr_ema_fp16.safetensors")
[ -f "$GAN_W" ] && HALF+=("$GAN_W" "$RESULTS/gpu_x4_san_ema_fp16.safetensors")
if [ ${#HALF[@]} -gt 0 ]; then
  step half 60 TERM "$PY" scripts/gpu/tool.py half "${HALF[@]}"
else
  note half 1 "no weights from either stage"
fi

# ---------------------------------------------------------------------------------------------- evaluation
for pair in "psnr:$PSNR_W" "gan:$GAN_W"; do
  IFS=: read -r stage src <<< "$pair"
  if [ -f "$src" ]; then
    step "eval_$stage" 90 TERM "$PY" -m restore eval --model "$src" --data "$PACK/sr/Set5" --no-lpips \
      --device "$DEVICE" --json "$WORK/eval_$stage.json"
  else
    note "eval_$stage" 1 "no weights: $src"
  fi
done
if [ -f "$GAN_W" ]; then
  step infer_example 60 TERM "$PY" -m restore infer --overwrite --model "$GAN_W" weights/examples/sr_scene.png \
    -o "$RESULTS/sr_scene_x4_gan.png" --device "$DEVICE"
fi

# ---------------------------------------------------------------------------------------------- CUDA tests
step pytest_cuda 120 TERM "$PY" -m pytest -m cuda tests/cuda tests/engine tests/inference tests/norms -q -rA \
  --continue-on-collection-errors -p no:cacheprovider -o addopts= --junitxml="$WORK/pytest_cuda.xml"
cp "$LOGS/pytest_cuda.log" "$WORK/pytest_summary.txt" 2> /dev/null

# ---------------------------------------------------------------------------------------------- benchmarks
if [ "$REHEARSE" = 1 ]; then
  INFER_ARGS=(--size 8x8 --warmup 0 --iters 1 --dtypes fp32,fp16)
  CRITIC_ARGS=(--quick --batch 8 --width 16 --methods none,san)
  TSTEP_ARGS=(--batch 2 --gt-size 32 --channels 8 --blocks 2 --steps 1 --warmup 0 --modes fp32,bf16)
else
  INFER_ARGS=(--dtypes fp32,tf32,fp16,bf16)
  CRITIC_ARGS=()
  TSTEP_ARGS=(--batch 16 --gt-size 128)
fi
step infer_speed 75 TERM "$PY" bench/infer_speed.py --device "$DEVICE" --json "$WORK/infer_speed.json" "${INFER_ARGS[@]}"
step critic_step 45 TERM "$PY" bench/critic_step.py --device "$DEVICE" --json "$WORK/critic_step.json" "${CRITIC_ARGS[@]}"
if [ -f bench/train_step.py ]; then
  step train_step 60 TERM "$PY" bench/train_step.py --device "$DEVICE" --json "$WORK/train_step.json" "${TSTEP_ARGS[@]}"
else
  note train_step 127 "bench/train_step.py missing"
fi

# ---------------------------------------------------------------------------------------------- results
DEADLINE=$((DEADLINE + RESERVE_S)); RESERVE_S=0   # the reserve is for these last steps
timeout 60 "$PY" scripts/gpu/tool.py summarize "$WORK" "$RESULTS/results.json" \
  --stage "psnr=$RUNS/gpu_x4_psnr" --stage "gan=$RUNS/gpu_x4_san" --print \
  || echo '{"error": "summarize failed; see logs.tar.gz"}' > "$RESULTS/results.json"
cp "$RESULTS/results.json" "$WORK/" 2> /dev/null
tar -czf "$RESULTS/logs.tar.gz" -C "$WORK" --exclude='*.pt' --exclude='*.pth' --exclude='*.safetensors' --exclude=site \
  "$(basename "$LOGS")" runs $(cd "$WORK" && ls *.json *.jsonl *.csv *.txt *.xml 2> /dev/null)
if [ "$(stat -c %s "$RESULTS/logs.tar.gz")" -gt $((15 * 1024 * 1024)) ]; then  # keep it under the 16 MiB limit
  tar -czf "$RESULTS/logs.tar.gz" -C "$WORK" --exclude='*.pt' --exclude='*.safetensors' --exclude=site \
    --exclude=tb --exclude=samples "$(basename "$LOGS")" runs $(cd "$WORK" && ls *.json *.jsonl *.txt 2> /dev/null)
fi
echo "[run.sh $(elapsed)] done: $(ls "$RESULTS" | tr '\n' ' ')"
ls -l "$RESULTS"
