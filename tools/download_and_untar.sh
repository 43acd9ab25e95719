#!/usr/bin/env bash
# Download a corpus archive, check its MD5, and unpack it into a folder.
#
#   tools/download_and_untar.sh [--remove_archive true] <url> <md5> <dir>
#
# The archive is kept in <dir> (resumed if partly downloaded; reused if its MD5 matches);
# <dir>/.<archive>.unpacked marks a complete unpack, so a second run does nothing.

remove_archive=false  # delete the archive once unpacked
help_message="Usage: $0 [options] <url> <md5> <dir>"
. "$(dirname "$0")/parse_options.sh"
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "$help_message" >&2
  exit 1
fi
url=$1
md5=$2
dir=$3
name=$(basename "$url")
archive=$dir/$name
marker=$dir/.$name.unpacked

. "$(dirname "$0")/log.sh"

md5_of() {
  if command -v md5sum > /dev/null; then md5sum "$1" | cut -d' ' -f1; else md5 -q "$1"; fi
}

if [ -f "$marker" ]; then
  log "$archive: already unpacked in $dir ($marker)"
  exit 0
fi
mkdir -p "$dir"
if [ -f "$archive" ] && [ "$(md5_of "$archive")" = "$md5" ]; then
  log "$archive: already downloaded"
else
  log "downloading $url to $dir"
  if command -v wget > /dev/null; then
    wget --continue --no-verbose --show-progress -O "$archive" "$url"
  else
    curl --fail --location --continue-at - --output "$archive" "$url"
  fi
  actual=$(md5_of "$archive")
  if [ "$actual" != "$md5" ]; then
    echo "$0: $archive: MD5 $actual, expected $md5; delete it and run again" >&2
    exit 1
  fi
fi
log "unpacking $archive into $dir"
tar -xzf "$archive" -C "$dir"
touch "$marker"
if [ "$remove_archive" = true ]; then
  rm "$archive"
fi
