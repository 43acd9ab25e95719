#!/usr/bin/env bash
# WeST on LibriSpeech (openslr SLR12): LLaMA 3 8B + Whisper + Conv1d projector.
# Run from this folder; see README.md. Stages:
#   -1 download   0 data dirs   1 normalise text, check models   2 train   3 decode   4 score
#    5 biasing lists of the test sets, decoded and scored by WER, B-WER and U-WER (not run
#      unless asked for: --stage 5 --stop_stage 5)

stage=0                 # first stage to run (-1 downloads the corpus)
stop_stage=4            # last stage to run
corpus_dir=$PWD/download     # holds LibriSpeech/<subset>/ (stage -1 downloads there)
mirror=https://www.openslr.org/resources/12  # openslr mirror (also https://us.openslr.org/resources/12, ...)
data_dir=data           # Kaldi data dirs + data.jsonl, one per set
conf=conf/llama3-8b_whisper-large-v3.yaml    # the experiment (west-train flags)
exp_dir=                # [default: exp/<conf name>]
llm=                    # LLM folder or Hub name, overriding the conf's
encoder=                # Whisper name, .pt or folder, overriding the conf's
fetch_models=true       # stage 1 downloads models not cached yet
train_set="train_clean_100 train_clean_360 train_other_500"  # sets trained on together
test_sets="test_clean test_other"   # sets decoded and scored (also dev_clean, dev_other)
nproc_per_node=8        # GPUs per node
num_nodes=1             # nodes; with more than 1, run stage 2 on each with its --node_rank
node_rank=0             # this node's rank
master_addr=localhost   # node 0's address (several nodes)
master_port=29500       # node 0's port (several nodes)
deepspeed=auto          # DeepSpeed json [auto: the conf's deepspeed key, else conf/ds_config_zero3.json]; "" for none
train_extra=            # more west-train flags, e.g. "--max_steps 100"
model_dir=              # checkpoint to decode [default: final model, else newest checkpoint]
beams="1 3 5 8 10"      # beam sizes decoded
decode_batch_size=8     # utterances per decoding batch
decode_nproc_per_node=1 # decoding processes, one GPU each (8: every GPU of the node decodes a share)
decode_dtype=bfloat16   # float32, bfloat16 or float16
decode_extra=           # more west-recognize flags
biasing_distractors="100 500 1000"  # stage 5: distractors per list, one list set for each
biasing_num_common=5000 # stage 5: common words (most frequent in training), never in a list
biasing_beams=1         # stage 5: beam sizes decoded with the lists
biasing_decode_extra=   # stage 5: more west-recognize flags, e.g. "--hotword_bonus 3"
biasing_extra_text=     # stage 5: more text for the rare words, e.g. librispeech-lm-norm.txt (openslr 11)
. ../../tools/parse_options.sh || exit 1  # run from this folder
set -euo pipefail

. ../../tools/log.sh

exp_dir=${exp_dir:-exp/$(basename "$conf" .yaml)}
# Kaldi names (test_clean) of LibriSpeech's subsets (test-clean), each prepared once.
sets=$(echo $train_set $test_sets | tr ' ' '\n' | awk 'NF && !seen[$0]++' | xargs)

if [ ${stage} -le -1 ] && [ ${stop_stage} -ge -1 ]; then
  log "Stage -1: download LibriSpeech ($sets) into $corpus_dir"
  declare -A md5=(
    [dev-clean]=42e2234ba48799c1f50f24a7926300a1
    [dev-other]=c8d0bcc9cca99d4f8b62fcc847357931
    [test-clean]=32fa31d27d2e1cad72775fee3f4849a9
    [test-other]=fb5a50374b501bb3bac4815ee91d3135
    [train-clean-100]=2a93770f6d5c6c964bc36631d331a522
    [train-clean-360]=c0e676e450a7ff2f54aeade5171606fa
    [train-other-500]=d1a0fd59409feb2c614ce4d30c387708
  )
  for set in $sets; do
    part=${set//_/-}
    if [ -z "${md5[$part]:-}" ]; then
      echo "$0: $set: not a LibriSpeech subset (${!md5[*]}, with _ for -)" >&2
      exit 1
    fi
    ../../tools/download_and_untar.sh "$mirror/$part.tar.gz" "${md5[$part]}" "$corpus_dir"
  done
fi

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  log "Stage 0: data dirs from $corpus_dir/LibriSpeech into $data_dir"
  for set in $sets; do
    if [ -f "$data_dir/$set/.prep.done" ]; then
      log "$data_dir/$set: prepared already"
      continue
    fi
    local/data_prep.sh "$corpus_dir/LibriSpeech/${set//_/-}" "$data_dir/$set"
    touch "$data_dir/$set/.prep.done"
  done
fi

# Stages 1-5 (normalise text and check models, train, decode, score, biasing) are every
# recipe's: tools/asr_stages.sh, with this corpus's text normalisation and scoring.
text_norm=--lower
text_norm_log="lower-case the transcripts"
score_opts=(--mode word --filter_hallucinations true)
score_log="WER, and WER without hallucinated outputs"
biasing_text=text       # the lower-cased transcripts: words are split at spaces
biasing_opts=(--unit word --lower)
. ../../tools/asr_stages.sh
