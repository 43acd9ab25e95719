#!/usr/bin/env bash
# Kaldi data dirs (+ data.jsonl) train, dev and test from AISHELL-1 as openslr ships it:
#   data_aishell/wav/<speaker>.tar.gz      each holding {train,dev,test}/<speaker>/<utt>.wav
#   data_aishell/transcript/aishell_transcript_v0.8.txt   (<utt> 词 词 词, all three sets)
#
#   local/data_prep.sh <corpus_dir>/data_aishell <data_dir> [<unpack_dir>]
#
# The tars are unpacked into <unpack_dir> (default: data_aishell/wav, as Kaldi does), each
# once: <data_dir>/local/unpacked lists those done. A corpus already unpacked is used as is.

set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "Usage: $0 <corpus_dir>/data_aishell <data_dir> [<unpack_dir>]" >&2
  exit 1
fi
src=$1
data=$2
wav_dir=${3:-$src/wav}
transcript=$src/transcript/aishell_transcript_v0.8.txt
if [ ! -f "$transcript" ]; then
  echo "$0: $transcript: no such file; expected AISHELL-1's data_aishell folder" \
    "(stage -1 downloads it)" >&2
  exit 1
fi
mkdir -p "$data/local" "$wav_dir"
touch "$data/local/unpacked"

shopt -s nullglob
tars=("$src"/wav/*.tar.gz)
echo "$0: unpacking ${#tars[@]} speaker tars from $src/wav into $wav_dir"
for tarball in "${tars[@]}"; do
  name=$(basename "$tarball")
  grep -qxF "$name" "$data/local/unpacked" && continue
  tar -xzf "$tarball" -C "$wav_dir"
  echo "$name" >> "$data/local/unpacked"
done

args=()
for set in train dev test; do
  if [ ! -d "$wav_dir/$set" ]; then
    echo "$0: $wav_dir/$set: no such folder; expected the unpacked $set speakers" >&2
    exit 1
  fi
  find -L "$wav_dir/$set" -name '*.wav' | LC_ALL=C sort > "$data/local/$set.audio.list"
  args+=("$data/$set=$data/local/$set.audio.list")
done
# Keys are BAC009<speaker>W<n>; the speaker is S followed by 4 digits.
python ../../tools/make_data.py --speaker_regex '(S[0-9]{4})' --text "$transcript" "${args[@]}"
