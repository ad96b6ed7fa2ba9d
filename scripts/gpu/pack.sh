#!/usr/bin/env bash
# Fill gpu_pack/ (ignored; carried to the lent GPU machine) with what that machine lacks: training crops, a few
# benchmark/translation images, the VGG16 features (lossless, compressed) and wheels for basicsr and lpips.
# Then print what would travel and fail (exit 1) above CAP_MIB. See scripts/gpu/README.md.
#
#   scripts/gpu/pack.sh                 # the real pack (~31 MiB; ~1 minute)
#   scripts/gpu/pack.sh --tiny          # a few MiB for the CPU rehearsal (run.sh --rehearse); seconds, no wheels
#   scripts/gpu/pack.sh --out DIR --no-wheels
#
# Environment: SHARED (default $RESTORE_SHARED, else ../shared beside the checkout), PYTHON (default .venv's),
# SR_MIB (JPEG crop budget, default 4), SR_SIZE (480), SR_QUALITY (90), FACES (120), FACADES (8), CAP_MIB (60).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$REPO/gpu_pack"
TINY=0
WHEELS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --tiny) TINY=1; WHEELS=0 ;;
    --wheels) WHEELS=1 ;;
    --no-wheels) WHEELS=0 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "pack.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

SHARED="${SHARED:-${RESTORE_SHARED:-$REPO/../shared}}"
if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="${PYTHON:-$REPO/.venv/bin/python}"; else PYTHON="${PYTHON:-python3}"; fi
if [ "$TINY" = 1 ]; then
  SR_MIB="${SR_MIB:-0.4}"; SR_SIZE="${SR_SIZE:-160}"; FACES="${FACES:-12}"; FACADES="${FACADES:-2}"
else
  SR_MIB="${SR_MIB:-4}"; SR_SIZE="${SR_SIZE:-480}"; FACES="${FACES:-120}"; FACADES="${FACADES:-8}"
fi
SR_QUALITY="${SR_QUALITY:-90}"
CAP_MIB="${CAP_MIB:-60}"
TOOL=("$PYTHON" "$REPO/scripts/gpu/tool.py")

for need in data/sr-train/sun_hays80 data/sr-train/plasma_photos data/sr-bench/Set5 data/faces/utkface \
            data/label2photo/cmp_facades/base weights/vgg16_imagenet_features.pth; do
  if [ ! -e "$SHARED/$need" ]; then
    echo "pack.sh: $SHARED/$need not found (set SHARED to the shared data folder)" >&2
    exit 3
  fi
done

# a folder we made before (or an empty / new one) is replaced; anything else is refused
if [ -e "$OUT" ] && [ ! -f "$OUT/MANIFEST.txt" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
  echo "pack.sh: $OUT exists and is not a pack (no MANIFEST.txt); not touching it" >&2
  exit 2
fi
rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)

"${TOOL[@]}" crops --out "$OUT/sr/train" --size "$SR_SIZE" --quality "$SR_QUALITY" --budget-mib "$SR_MIB" \
  "$SHARED/data/sr-train/sun_hays80" "$SHARED/data/sr-train/plasma_photos"
mkdir -p "$OUT/sr/Set5"
if [ "$TINY" = 1 ]; then  # two of Set5's smallest images keep the rehearsal's evaluation quick
  cp "$SHARED/data/sr-bench/Set5/bird.png" "$SHARED/data/sr-bench/Set5/head.png" "$OUT/sr/Set5/"
else
  cp "$SHARED"/data/sr-bench/Set5/* "$OUT/sr/Set5/"  # lossless PNG, the README's benchmark
fi
"${TOOL[@]}" subset --out "$OUT/faces/utkface" --count "$FACES" "$SHARED/data/faces/utkface"
"${TOOL[@]}" subset --out "$OUT/facades/base" --count "$FACADES" --pair .png \
  --also "$SHARED/data/label2photo/cmp_facades/label_names.txt" "$SHARED/data/label2photo/cmp_facades/base"
if [ "$TINY" = 1 ]; then
  "${TOOL[@]}" vgg-pack --fast "$SHARED/weights/vgg16_imagenet_features.pth" "$OUT/vgg16"
else
  "${TOOL[@]}" vgg-pack "$SHARED/weights/vgg16_imagenet_features.pth" "$OUT/vgg16"
fi

if [ "$WHEELS" = 1 ]; then
  mkdir -p "$OUT/wheels"
  # basicsr publishes no wheel; its setup.py imports torch, hence no build isolation (scripts/install.sh)
  "$PYTHON" -m pip wheel -q --no-build-isolation --no-deps basicsr==1.4.2 -w "$OUT/wheels"
  # pure-python, its LPIPS heads inside; `import basicsr` needs nothing else that the device lacks (README)
  "$PYTHON" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --no-deps lpips==0.1.4 -d "$OUT/wheels"
  ls -l "$OUT/wheels"
fi

{
  echo "gpu_pack made by scripts/gpu/pack.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ) from $SHARED"
  echo "tiny=$TINY SR_MIB=$SR_MIB SR_SIZE=$SR_SIZE SR_QUALITY=$SR_QUALITY FACES=$FACES FACADES=$FACADES"
  echo "sr/train: JPEG crops of sr-train/sun_hays80 + plasma_photos (terms: ../shared/data/MANIFEST.md)"
  echo "sr/Set5: sr-bench/Set5 PNG, unchanged; faces/utkface, facades/base: files unchanged (label maps PNG)"
  echo "vgg16: ../shared/weights/vgg16_imagenet_features.pth, byte planes (run.sh restores it, sha256 checked)"
  echo "Research-use data: never commit or publish this folder."
} > "$OUT/MANIFEST.txt"
echo "pack.sh: built $OUT in $(( $(date +%s) - start )) s"
"${TOOL[@]}" travel-size "$REPO" --pack "$OUT" --cap-mib "$CAP_MIB" --json "$OUT/SIZES.json"
