#!/usr/bin/env bash
# The Python side of the interop tests and benchmarks: a virtualenv in
# .venv-interop holding Kombu (the test peer) with the optional codecs its
# serializers and compressions need, and what its Redis transport imports
# (redis, packaging). Created on first use, reused after; prints the
# interpreter's path on stdout (everything else goes to stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-interop
py="$venv/bin/python"
packages=("kombu>=5.3,<6" msgpack pyyaml brotli zstandard "backports.zstd; python_version<'3.14'" redis packaging)
probe="import kombu, msgpack, yaml, brotli, zstandard, redis, packaging"
if ! [ -x "$py" ] || ! "$py" -c "$probe" >/dev/null 2>&1; then
  echo "python-env: creating $venv with ${packages[*]}" >&2
  python3 -m venv "$venv" >&2
  "$py" -m pip install --quiet --disable-pip-version-check "${packages[@]}" >&2
fi
echo "$PWD/$py"
