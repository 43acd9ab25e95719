# Stages 1-5 of a corpus recipe (check, train, decode, score, biasing), written once for every
# recipe.
# A recipe's run.sh sets its variables, parses its options, runs its own stages (-1 download,
# 0 data dirs) and then sources this file from its folder:
#
#   . ../../tools/asr_stages.sh
#
# Variables it reads (run.sh's options, see examples/librispeech/run.sh): stage stop_stage
# data_dir conf exp_dir llm encoder fetch_models train_set test_sets nproc_per_node num_nodes
# node_rank master_addr master_port deepspeed train_extra model_dir beams decode_batch_size
# decode_nproc_per_node decode_dtype decode_extra biasing_distractors biasing_num_common
# biasing_beams biasing_decode_extra biasing_extra_text; and, set by run.sh after its options:
#   sets          every data dir the recipe prepared (normalised in stage 1)
#   text_norm     tools/normalize_text.py's flag for this corpus (--lower, --remove_spaces)
#   text_norm_log what that does, for the log
#   score_opts    tools/score.sh's flags (array): --mode, --metric, --filter_hallucinations
#   score_log     what is scored, for the log
#   biasing_text  the data dir file with the word-segmented transcripts (text, text.orig)
#   biasing_opts  tools/biasing_lists.py's flags for this corpus (array): --unit, --lower
#   1 normalise text, check models   2 train   3 decode   4 score
#   5 biasing lists of the test sets; decode them and score WER, B-WER and U-WER

tools=$(dirname "${BASH_SOURCE[0]}")
. "$tools/log.sh"

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "Stage 1: ${text_norm_log}; check the models of $conf"
  todo=()
  for set in $sets; do
    [ -f "$data_dir/$set/.norm.done" ] || todo+=("$data_dir/$set")
  done
  if [ ${#todo[@]} -gt 0 ]; then
    python "$tools/normalize_text.py" "$text_norm" "${todo[@]}"
    for d in "${todo[@]}"; do touch "$d/.norm.done"; done
  fi
  opts=()
  [ "$fetch_models" = true ] && opts+=(--download)
  [ -n "$llm" ] && opts+=(--llm_model_name_or_path "$llm")
  [ -n "$encoder" ] && opts+=(--whisper_model_name_or_path "$encoder")
  python "$tools/check_models.py" --config "$conf" "${opts[@]}"
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  log "Stage 2: train $conf on $train_set into $exp_dir"
  data_path=$(for set in $train_set; do echo "$data_dir/$set/data.jsonl"; done | paste -sd,)
  # After --config, so that it wins over the conf's `deepspeed:` key ("" turns DeepSpeed off).
  # The conf is read as west-train reads it (with its `base:`), to see whether it names one.
  ds_flags=()
  if [ "$deepspeed" != auto ]; then
    ds_flags=(--deepspeed "$deepspeed")
  elif ! python -c 'import sys; from west.utils import read_config
sys.exit("deepspeed" not in read_config(sys.argv[1]))' "$conf"; then
    ds_flags=(--deepspeed conf/ds_config_zero3.json)
  fi
  "$tools/train.sh" --nproc_per_node "$nproc_per_node" --num_nodes "$num_nodes" \
    --node_rank "$node_rank" --master_addr "$master_addr" --master_port "$master_port" \
    --llm "$llm" --encoder "$encoder" \
    "$conf" "$data_path" "$exp_dir" "${ds_flags[@]}" $train_extra
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  log "Stage 3: decode $test_sets with beams $beams"
  # west-recognize reads its settings from the conf's `decode:` mapping, if any.
  "$tools/decode.sh" --beams "$beams" --model_dir "$model_dir" \
    --batch_size "$decode_batch_size" --dtype "$decode_dtype" \
    --nproc_per_node "$decode_nproc_per_node" \
    --extra "--config $conf $decode_extra" "$exp_dir" "$data_dir" $test_sets
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
  log "Stage 4: score (${score_log}) into $exp_dir/RESULTS.md"
  # Once stage 5 has built rare_words.jsonl, also B-WER and U-WER without biasing.
  "$tools/score.sh" --beams "$beams" "${score_opts[@]}" --biasing rare_words.jsonl \
    "$exp_dir" "$data_dir" $test_sets
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  log "Stage 5: biasing lists of $test_sets ($biasing_distractors distractors), decoded with" \
    "beams $biasing_beams; ${score_log}, B- and U-"
  # The lists are data sets of their own, <set>_bias<N>: data.jsonl with a "context" list per
  # utterance (west-recognize reads it), and the set's text as the reference. Each test set
  # also gets rare_words.jsonl, its utterances' own rare words (the lists without
  # distractors): scored against it (here and in stage 4), stage 3's decodes give B-WER and
  # U-WER without biasing.
  vocab_opts=(--num_common "$biasing_num_common" "${biasing_opts[@]}")
  for set in $train_set; do vocab_opts+=(--train_text "$data_dir/$set/$biasing_text"); done
  for text in $biasing_extra_text; do vocab_opts+=(--extra_text "$text"); done
  bias_sets=()
  for set in $test_sets; do
    for n in 0 $biasing_distractors; do
      if [ "$n" = 0 ]; then
        dir=$data_dir/$set
        out=$dir/rare_words.jsonl
        done_marker=$dir/.rare_words.done
      else
        dir=$data_dir/${set}_bias$n
        out=$dir/data.jsonl
        done_marker=$dir/.bias.done
        bias_sets+=("${set}_bias$n")
      fi
      if [ -f "$done_marker" ]; then
        log "$out: built already"
        continue
      fi
      mkdir -p "$dir"
      python "$tools/biasing_lists.py" "${vocab_opts[@]}" --distractors "$n" \
        --words_text "$data_dir/$set/$biasing_text" "$data_dir/$set/data.jsonl" "$out"
      [ "$n" = 0 ] || cp "$data_dir/$set/text" "$dir/text"
      touch "$done_marker"
    done
  done
  "$tools/decode.sh" --beams "$biasing_beams" --model_dir "$model_dir" \
    --batch_size "$decode_batch_size" --dtype "$decode_dtype" \
    --nproc_per_node "$decode_nproc_per_node" \
    --extra "--config $conf $decode_extra $biasing_decode_extra" "$exp_dir" "$data_dir" \
    "${bias_sets[@]}"
  "$tools/score.sh" --beams "$beams" "${score_opts[@]}" --biasing rare_words.jsonl \
    "$exp_dir" "$data_dir" $test_sets > /dev/null
  "$tools/score.sh" --beams "$biasing_beams" "${score_opts[@]}" --biasing data.jsonl \
    "$exp_dir" "$data_dir" "${bias_sets[@]}"
fi
