#!/usr/bin/env bash
# Installs the Debian packages vgan needs, when missing: ffmpeg (decoding/encoding), libarchive-tools
# (bsdtar, to extract UCF101's RAR archive) and postgresql (one registry test). Idempotent.
set -euo pipefail
missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v bsdtar >/dev/null 2>&1 || missing+=(libarchive-tools)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "vgan needs these Debian packages: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}" >&2
    command -v ffmpeg >/dev/null 2>&1 || exit 1   # only ffmpeg is required to run the pipeline
    exit 0
fi
echo "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
