#!/usr/bin/env bash
# Build layers/ffmpeg/build/ffmpeg-layer.zip (bin/ffmpeg); see build.py for the why.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-$here/../../.venv/bin/python}"
[ -x "$py" ] || py=python3
exec "$py" "$here/build.py" "$@"
