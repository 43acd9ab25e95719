#!/usr/bin/env bash
# Score decodes into <exp_dir>/decode_<set>_beam<N>[_<tag>]/wer and tabulate them in RESULTS.md.
#
#   tools/score.sh [options] <exp_dir> <data_dir> <test_set>...
#
# Every decode folder of a test set and beam is scored: one per set of decoding settings
# (<tag>, see tools/decode.sh), and the untagged decode_<set>_beam<N> of older runs.
# References are <data_dir>/<test_set>/text; the table (tools/results_table.py) goes to
# <exp_dir>/RESULTS.md and is printed. Scoring is cheap, so it is always redone.
# With --biasing NAME, a test set that has <data_dir>/<test_set>/NAME (the data list of
# tools/biasing_lists.py, or a list of phrases) is also scored by B-WER and U-WER against it.

beams="1"                      # beam sizes decoded
mode=word                      # word, char or mixed (see tools/compute_wer.py)
filter_hallucinations=false    # true: also the WER without hallucinated utterances
metric=WER                     # row label of the beam table
biasing=                       # file name in a test set's data dir: its biasing lists (B-WER, U-WER)
help_message="Usage: $0 [options] <exp_dir> <data_dir> <test_set>..."
. "$(dirname "$0")/parse_options.sh"
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "$help_message" >&2
  exit 1
fi
exp_dir=$1
data_dir=$2
shift 2
tools=$(dirname "$0")

. "$tools/log.sh"

opts=(--mode "$mode")
[ "$filter_hallucinations" = true ] && opts+=(--filter_hallucinations)
for test_set in "$@"; do
  for beam in $beams; do
    found=0
    set_opts=()
    if [ -n "$biasing" ] && [ -f "$data_dir/$test_set/$biasing" ]; then
      set_opts=(--biasing "$data_dir/$test_set/$biasing")
    fi
    for dir in "$exp_dir/decode_${test_set}_beam${beam}" "$exp_dir/decode_${test_set}_beam${beam}_"*; do
      [ -f "$dir/text" ] || continue
      python "$tools/compute_wer.py" "${opts[@]}" "${set_opts[@]}" "$data_dir/$test_set/text" \
        "$dir/text" > "$dir/wer"
      log "$dir/wer: $(grep -E '^%([BU]-)?WER [0-9u]' "$dir/wer" | paste -sd ' ')"
      found=$((found + 1))
    done
    if [ $found -eq 0 ]; then
      echo "$0: no $exp_dir/decode_${test_set}_beam${beam}[_<tag>]/text; decode first" >&2
      exit 1
    fi
  done
done
python "$tools/results_table.py" --metric "$metric" --output "$exp_dir/RESULTS.md" "$exp_dir"
