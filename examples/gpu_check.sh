#!/usr/bin/env bash
# One-call device check (examples/gpu_check.py) on a fresh GPU machine: torch and transformers
# installed, no internet, no pip. The model file may come in parts (each <= 60 MiB, made with
# `split -b 60M`): they are joined with cat, in the order given, into a temporary file.
#
#   bash examples/gpu_check.sh --out OUT MODEL.gguf
#   bash examples/gpu_check.sh --out OUT --wheel gguf-0.17.1-py3-none-any.whl model.gguf.part-aa model.gguf.part-ab
#   bash examples/gpu_check.sh --out OUT --device cpu --size tiny packaged:smollm2-135m
#
# --wheel: a pure-Python wheel the machine lacks (the `gguf` reader transformers needs for GGUF
# files), put on PYTHONPATH as it is. PYTHON: the interpreter (default: python3). Exit status: 0
# when every assisted run was identical to plain greedy, 3 when one was not, 2 on a usage error.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
fail() { echo "gpu_check: $*" >&2; exit 2; }

out="" device="cuda" size="small" threads="" wheels="" parts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || fail "--out needs a folder"; out=$2; shift 2 ;;
    --device) [ $# -ge 2 ] || fail "--device needs cuda or cpu"; device=$2; shift 2 ;;
    --size) [ $# -ge 2 ] || fail "--size needs small or tiny"; size=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || fail "--threads needs a number"; threads=$2; shift 2 ;;
    --wheel) [ $# -ge 2 ] || fail "--wheel needs a .whl file"; [ -f "$2" ] || fail "--wheel $2: no such file"
             wheels="$wheels:$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) fail "unknown option $1 (see --help)" ;;
    *) parts+=("$1"); shift ;;
  esac
done
[ -n "$out" ] || fail "--out OUT is required (a new folder for the log, the numbers and the summary)"
[ ${#parts[@]} -ge 1 ] || fail "give the model: one file (or packaged:NAME), or its parts in order"

model="${parts[0]}"
joined=""
if [ ${#parts[@]} -gt 1 ]; then
  for p in "${parts[@]}"; do [ -f "$p" ] || fail "model part $p: no such file"; done
  joined=$(mktemp "${TMPDIR:-/tmp}/gpu-check-model.XXXXXX.gguf")
  trap 'rm -f "$joined"' EXIT
  cat "${parts[@]}" > "$joined"
  model="$joined"
  echo "gpu_check: joined ${#parts[@]} parts into $model ($(wc -c < "$model") bytes)" >&2
elif [[ "$model" != packaged:* ]] && [ ! -e "$model" ]; then
  fail "model $model: no such file or folder"
fi
if [[ "$model" == *.gguf ]] && [ "$(head -c 4 "$model")" != "GGUF" ]; then
  fail "model $model: not a GGUF file (its first bytes are not 'GGUF'); were the parts given in order?"
fi

export PYTHONPATH="$repo$wheels${PYTHONPATH:+:$PYTHONPATH}"
args=(--model "$model" --out "$out" --device "$device" --size "$size")
[ -n "$threads" ] && args+=(--threads "$threads")
"${PYTHON:-python3}" "$repo/examples/gpu_check.py" "${args[@]}"
