#!/usr/bin/env bash
# The GPU benchmark on a lent machine (NOTES.md "On a lent GPU"), in one command from the repository root:
#
#   bash bench/gpu_run.sh            # full run: < 6 min on one H100/H200
#   bash bench/gpu_run.sh --quick    # < 90 s
#
# The device image has torch + CUDA, transformers 5.17, accelerate and peft, but not the rest: their wheels
# travel in .whl/ (ignored by git; name it in the run's `carry`), built for CPython 3.12 manylinux x86_64:
#   trl 1.16.0, transformers 5.24.0, datasets 5.2.0, dill, multiprocess (datasets' needs), bitsandbytes 0.50.2,
#   pydantic, pydantic-core, annotated-types, typing-inspection, liger-kernel (optional: without it "ours" runs
#   without Liger, and says so). Not huggingface_hub 2.x (it needs httpx2, absent there; the image's 1.33 works).
# Results (JSON with provenance, a plot, the log) go to $OUT when the device tool sets it, else bench/results/.
# Extra arguments go to bench/gpu_qlora.py. A copied checkout whose .git is not the source's (as a lent machine
# receives) records the right commit with PUSHBACK_COMMIT=$(git rev-parse HEAD) given from the source checkout.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-bench/results}"
SITE=/tmp/site
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_run.log"

say() { echo "$@" | tee -a "$LOG"; }
: >"$LOG"
say "gpu_run.sh: $(date -u +%FT%TZ) in $PWD, results to $OUT_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG" \
  || { say "error: nvidia-smi failed: no GPU here"; exit 2; }

if ls .whl/*.whl >/dev/null 2>&1; then
  rm -rf "$SITE"  # pip --target into an old folder keeps stale packages
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { say "error: installing the wheels in .whl/ failed (see above)"; exit 2; }
  export PYTHONPATH="$SITE:$PWD"
else
  say "note: no wheels in .whl/; using the packages already installed"
  export PYTHONPATH="$PWD"
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TRL_EXPERIMENTAL_SILENCE=1 TOKENIZERS_PARALLELISM=false

# Fail fast, before building a 15 GB model, on a missing or wrong package.
python3 - <<'EOF' 2>&1 | tee -a "$LOG"
import importlib, sys
missing, versions = [], {}
for name in ("torch", "transformers", "trl", "peft", "bitsandbytes", "datasets", "accelerate", "pydantic", "yaml",
             "liger_kernel"):
    try:
        module = importlib.import_module(name)
        versions[name] = getattr(module, "__version__", "?")
    except Exception as e:  # noqa: BLE001 -- report every missing package at once
        missing.append(f"{name} ({type(e).__name__}: {str(e)[:120]})")
print("versions:", ", ".join(f"{k} {v}" for k, v in versions.items()))
required = [m for m in missing if not m.startswith("liger_kernel")]
if required:
    print("error: cannot import " + "; ".join(required) + " -- carry their wheels in .whl/", file=sys.stderr)
    sys.exit(2)
if missing:
    print("note: liger-kernel is not installed; 'ours' will run without Liger")
import torch
if not torch.cuda.is_available():
    print(f"error: torch {torch.__version__} sees no CUDA GPU", file=sys.stderr)
    sys.exit(2)
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2

python3 bench/gpu_qlora.py --out "$OUT_DIR" "$@" 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
