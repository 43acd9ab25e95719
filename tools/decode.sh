#!/usr/bin/env bash
# Decode test sets with every beam size: <exp_dir>/decode_<set>_beam<N>_<tag>/{text,decode.log}.
#
#   tools/decode.sh [options] <exp_dir> <data_dir> <test_set>...
#
# Each <data_dir>/<test_set>/data.jsonl is decoded with the final model in <exp_dir> (or,
# while training is unfinished, its newest complete checkpoint) unless --model_dir names
# one. <tag> names every other setting that changes the text (tools/decode_tag.py): the
# model (final, ckpt-N), engine, CTC weight, dtype, token limit and any other such flag, as
# in decode_test_clean_beam5_final_west_ctc0.5_bfloat16_tok200; so a folder's .done, which
# marks a finished decode, never stands for other settings. west-recognize resumes a killed
# decode. With --nproc_per_node N > 1, N processes (torchrun, one GPU each) share each set.

beams="1"            # beam sizes, each decoded into its own folder
model_dir=           # checkpoint to decode [default: final model, else newest checkpoint]
batch_size=8         # utterances per batch
dtype=bfloat16       # float32, bfloat16 or float16
device=              # cuda or cpu [default: cuda if there is one]
nproc_per_node=1     # decoding processes (one GPU each); > 1 launches them with torchrun
extra=               # more west-recognize flags
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

model_name=
if [ -z "$model_dir" ]; then
  if [ -f "$exp_dir/.train.done" ] && [ -f "$exp_dir/model.safetensors" ]; then
    model_dir=$exp_dir
    model_name=final
  else
    # The newest checkpoint-N holding west_complete (west/checkpoint.py), or nothing.
    model_dir=$(python -m west.checkpoint "$exp_dir" 2>/dev/null || true)
  fi
  if [ -z "$model_dir" ]; then
    echo "$0: $exp_dir: no trained model (model.safetensors after training, or a" \
      "checkpoint-N with west_complete); train first or give --model_dir" >&2
    exit 1
  fi
fi
# The flags that decide the text, as west-recognize will read them; their tag names the folders.
flags=(--model_dir "$model_dir" --batch_size "$batch_size" --dtype "$dtype"
  ${device:+--device "$device"} $extra)
tag=$(python "$tools/decode_tag.py" ${model_name:+--model_name "$model_name"} -- "${flags[@]}")
log "decoding with $model_dir (settings: $tag)"
if [ "$nproc_per_node" -gt 1 ]; then
  recognize=(torchrun --standalone --nproc_per_node "$nproc_per_node" -m west.bin.recognize)
else
  recognize=(west-recognize)
fi

for test_set in "$@"; do
  # One west-recognize call per test set decodes every beam not done yet: the model is
  # loaded once per set, not once per beam.
  todo=()
  for beam in $beams; do
    dir=$exp_dir/decode_${test_set}_beam${beam}_${tag}
    if [ -f "$dir/.done" ]; then
      log "$dir: decoded already"
    else
      mkdir -p "$dir"
      todo+=("$beam")
    fi
  done
  [ ${#todo[@]} -eq 0 ] && continue
  log "$test_set, beams ${todo[*]} -> $exp_dir/decode_${test_set}_beam<N>_${tag}/text"
  logfile=$exp_dir/decode_${test_set}_${tag}.log
  if ! "${recognize[@]}" --data_path "$data_dir/$test_set/data.jsonl" \
    --result_path "$exp_dir/decode_${test_set}_beam{beam}_${tag}/text" --num_beams "${todo[@]}" \
    "${flags[@]}" > "$logfile" 2>&1; then
    tail -n 20 "$logfile" >&2
    echo "$0: decoding $test_set failed; see $logfile" >&2
    exit 1
  fi
  for beam in "${todo[@]}"; do
    dir=$exp_dir/decode_${test_set}_beam${beam}_${tag}
    cp "$logfile" "$dir/decode.log"
    echo "$model_dir" > "$dir/model"
    touch "$dir/.done"
  done
done
