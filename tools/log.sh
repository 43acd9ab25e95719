# log(): one line with the time and the caller's file:line:function, as icefall's recipes
# print it. Source it from any script of the recipes or tools:
#
#   . "$(dirname "$0")/log.sh"      # a script in tools/
#   . ../../tools/log.sh            # a recipe's run.sh, run from its folder

log() {
  # BASH_SOURCE[1] is the file that called log, which may itself be a sourced script.
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
