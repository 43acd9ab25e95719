# Command-line options for recipe scripts, Kaldi's contract. Source it after the variables:
#
#   stage=0             # first stage to run
#   exp_dir=exp/run     # where the model goes
#   . ../../tools/parse_options.sh
#
# Then `--stage 2`, `--exp-dir d`, `--exp_dir d` and `--exp_dir=d` set those variables.
# An option that names no variable already set is an error (exit 1 with the usage), so a
# typo never goes unnoticed. `--help` prints $help_message if the script sets one, then
# each option with the comment and the value (the default) given on its line above the `.`
# of this file.
# Parsing stops at the first argument that is not an option, or after `--`; the rest
# stay in "$@".

__parse_options_usage() {
  local line name comment
  if [ -n "${help_message:-}" ]; then
    echo "$help_message"
  else
    echo "Usage: $0 [options]"
  fi
  echo "Options:"
  while IFS= read -r line; do
    if [[ $line =~ ^(\.|source)[[:space:]].*parse_options\.sh ]]; then
      break
    fi
    [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]] || continue
    name=${BASH_REMATCH[1]}
    [ "$name" = help_message ] && continue
    comment=
    if [[ $line =~ [[:space:]]#[[:space:]]*(.*)$ ]]; then
      comment=${BASH_REMATCH[1]}
    fi
    if [ -n "${!name-}" ]; then
      printf '  --%-18s %s [%s]\n' "$name" "$comment" "${!name}"
    else
      printf '  --%-18s %s\n' "$name" "$comment"
    fi
  done < "$0"
}

while [ $# -gt 0 ]; do
  case $1 in
    --)
      shift
      break
      ;;
    --help | -h)
      __parse_options_usage
      exit 0
      ;;
    --?*=*)
      __parse_options_name=${1%%=*}
      __parse_options_value=${1#*=}
      shift
      ;;
    --?*)
      if [ $# -lt 2 ]; then
        echo "$0: option $1 needs a value (use $1 \"\" for an empty one)" >&2
        exit 1
      fi
      __parse_options_name=$1
      __parse_options_value=$2
      shift 2
      ;;
    *)
      break
      ;;
  esac
  __parse_options_name=${__parse_options_name#--}
  __parse_options_name=${__parse_options_name//-/_}
  if ! [[ $__parse_options_name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] \
    || ! declare -p "$__parse_options_name" > /dev/null 2>&1; then
    echo "$0: unknown option --$__parse_options_name" >&2
    __parse_options_usage >&2
    exit 1
  fi
  printf -v "$__parse_options_name" '%s' "$__parse_options_value"
done
unset __parse_options_name __parse_options_value
