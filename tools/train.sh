#!/usr/bin/env bash
# Train a WeST model with torchrun (and DeepSpeed), on one node or several.
#
#   tools/train.sh [options] <conf.yaml> <data_path> <exp_dir> [west-train flags...]
#
# <data_path> is what west-train takes (jsonl files / Kaldi dirs, comma-separated). A
# killed run started again resumes from the newest complete checkpoint (west-train does
# that); <exp_dir>/.train.done marks a finished one, which is not trained again. The log
# is appended to <exp_dir>/train.log. With --num_nodes N > 1, run this on every node with
# its --node_rank and the same --master_addr/--master_port.

nproc_per_node=1         # processes (GPUs) per node
num_nodes=1              # nodes taking part
node_rank=0              # this node's rank, 0 .. num_nodes-1
master_addr=localhost    # address of node 0 (several nodes only)
master_port=29500        # free port on node 0 (several nodes only)
deepspeed=               # DeepSpeed config json; empty: plain DDP
llm=                     # LLM, overriding the conf's llm_model_name_or_path
encoder=                 # speech encoder, overriding the conf's whisper_model_name_or_path
help_message="Usage: $0 [options] <conf.yaml> <data_path> <exp_dir> [west-train flags...]"
. "$(dirname "$0")/parse_options.sh"
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "$help_message" >&2
  exit 1
fi
conf=$1
data_path=$2
exp_dir=$3
shift 3

. "$(dirname "$0")/log.sh"

if [ -f "$exp_dir/.train.done" ]; then
  log "$exp_dir: trained already (remove $exp_dir/.train.done to train again)"
  exit 0
fi
mkdir -p "$exp_dir"

if [ "$num_nodes" -eq 1 ]; then
  # A free port of its own, so that runs side by side on one machine do not collide.
  dist=(--standalone --nnodes 1)
else
  dist=(--nnodes "$num_nodes" --node_rank "$node_rank"
    --master_addr "$master_addr" --master_port "$master_port")
fi
flags=(--config "$conf" --data_path "$data_path" --output_dir "$exp_dir")
[ -n "$llm" ] && flags+=(--llm_model_name_or_path "$llm")
[ -n "$encoder" ] && flags+=(--whisper_model_name_or_path "$encoder")
[ -n "$deepspeed" ] && flags+=(--deepspeed "$deepspeed")

log "torchrun ${dist[*]} --nproc_per_node $nproc_per_node -m west.bin.train ${flags[*]} $*"
torchrun "${dist[@]}" --nproc_per_node "$nproc_per_node" \
  -m west.bin.train "${flags[@]}" "$@" 2>&1 | tee -a "$exp_dir/train.log"
touch "$exp_dir/.train.done"
log "$exp_dir: trained"
