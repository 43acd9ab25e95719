#!/usr/bin/env bash
# A Kaldi data dir (+ data.jsonl) from one LibriSpeech subset, as openslr ships it:
#   <subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
#   <subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   (<key> UPPER-CASE WORDS)
#
#   local/data_prep.sh <corpus_dir>/LibriSpeech/test-clean data/test_clean

set -euo pipefail
if [ $# -ne 2 ]; then
  echo "Usage: $0 <LibriSpeech subset dir> <data dir>" >&2
  exit 1
fi
src=$1
dst=$2
if [ ! -d "$src" ]; then
  echo "$0: $src: no such folder; expected a LibriSpeech subset such as" \
    ".../LibriSpeech/test-clean (stage -1 downloads it)" >&2
  exit 1
fi
lists=$(dirname "$dst")/local/$(basename "$dst")
mkdir -p "$lists"
find -L "$src" -name '*.flac' | LC_ALL=C sort > "$lists/audio.list"
# awk, not cat: a file without a final newline must not run into the next one.
find -L "$src" -name '*.trans.txt' -exec awk 1 {} + > "$lists/trans.txt"
# Speaker = the first field of <speaker>-<chapter>-<utt>.
python ../../tools/make_data.py --speaker_regex '^([^-]+)-' --text "$lists/trans.txt" \
  "$dst=$lists/audio.list"
