#!/usr/bin/env bash
# WeST on AISHELL-1 (openslr SLR33): Qwen2 + Whisper + Conv1d projector, scored by CER.
# Run from this folder; see README.md. Stages:
#   -1 download   0 data dirs   1 normalise text, check models   2 train   3 decode   4 score
#    5 biasing lists of the test sets, decoded and scored by WER, B-WER and U-WER (not run
#      unless asked for: --stage 5 --stop_stage 5)

stage=0                 # first stage to run (-1 downloads the corpus)
stop_stage=4            # last stage to run
corpus_dir=$PWD/download     # holds data_aishell/ (stage -1 downloads there)
mirror=https://www.openslr.org/resources/33  # openslr mirror (also https://us.openslr.org/resources/33, ...)
unpack_dir=             # where the per-speaker wav tars go [default: data_aishell/wav]
data_dir=data           # Kaldi data dirs + data.jsonl: train, dev, test
conf=conf/qwen2-1.5b_whisper-large-v3.yaml   # the experiment (west-train flags)
exp_dir=                # [default: exp/<conf name>]
llm=                    # LLM folder or Hub name, overriding the conf's
encoder=                # Whisper name, .pt or folder, overriding the conf's
fetch_models=true       # stage 1 downloads models not cached yet
train_set=train         # sets trained on together
test_sets=test          # sets decoded and scored (also dev)
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
biasing_extra_text=     # stage 5: more text for the rare words (plain text files)
. ../../tools/parse_options.sh || exit 1  # run from this folder
set -euo pipefail

. ../../tools/log.sh

exp_dir=${exp_dir:-exp/$(basename "$conf" .yaml)}
sets="train dev test"   # AISHELL-1's own split, prepared together

if [ ${stage} -le -1 ] && [ ${stop_stage} -ge -1 ]; then
  log "Stage -1: download AISHELL-1 into $corpus_dir"
  ../../tools/download_and_untar.sh "$mirror/data_aishell.tgz" \
    2f494334227864a8a8fec932999db9d8 "$corpus_dir"
  ../../tools/download_and_untar.sh "$mirror/resource_aishell.tgz" \
    957d480a0fcac85fc18e550756f624e5 "$corpus_dir"
fi

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  log "Stage 0: data dirs from $corpus_dir/data_aishell into $data_dir"
  if [ -f "$data_dir/.prep.done" ]; then
    log "$data_dir: prepared already"
  else
    local/data_prep.sh "$corpus_dir/data_aishell" "$data_dir" "$unpack_dir"
    touch "$data_dir/.prep.done"
  fi
fi

# Stages 1-5 (normalise text and check models, train, decode, score, biasing) are every
# recipe's: tools/asr_stages.sh, with this corpus's text normalisation and scoring.
text_norm=--remove_spaces
text_norm_log="remove the word segmentation from the transcripts"
score_opts=(--mode char --metric CER)
score_log="CER"
# AISHELL-1's transcript is word-segmented; stage 1 keeps it in text.orig. Its words make the
# lists; a list entry is matched as a run of characters (--unit char, scored by CER).
biasing_text=text.orig
biasing_opts=(--unit char)
. ../../tools/asr_stages.sh
