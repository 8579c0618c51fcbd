#!/usr/bin/env bash
# Installs the Debian packages vgan needs, when missing: ffmpeg (required: decoding/encoding), and
# libarchive-tools (bsdtar, for UCF101's RAR archive), postgresql (one registry test), chromium (draws
# the `dvc plots show` page offline in a test) and qemu-user (an emulated AVX2-only CPU for the CPU pin's
# test), which are optional: without them those tests skip with the reason. Idempotent.
set -uo pipefail

missing_required=() missing_optional=()
{ command -v ffmpeg && command -v ffprobe; } >/dev/null 2>&1 || missing_required+=(ffmpeg)
command -v bsdtar >/dev/null 2>&1 || missing_optional+=(libarchive-tools)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing_optional+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing_optional+=(chromium)
command -v qemu-x86_64 >/dev/null 2>&1 || missing_optional+=(qemu-user)
[ ${#missing_required[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "vgan needs these Debian packages: ${missing_required[*]} ${missing_optional[*]}." \
         "Install them with: sudo apt-get install -y ${missing_required[*]} ${missing_optional[*]}" >&2
    [ ${#missing_required[@]} -eq 0 ]   # fail only when ffmpeg is missing
    exit
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {  # the package lists may be missing or stale on a fresh machine: update once, then retry
    apt-get install -y -qq "$@" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$@" >/dev/null; }
}
if [ ${#missing_required[@]} -gt 0 ]; then
    echo "installing ${missing_required[*]} with apt-get"
    apt_install "${missing_required[@]}" || { echo "could not install ${missing_required[*]}" >&2; exit 1; }
fi
for package in "${missing_optional[@]}"; do
    echo "installing $package with apt-get"
    apt_install "$package" || echo "warning: could not install $package; the tests that need it will skip" >&2
done
exit 0
