#!/usr/bin/env bash
# A local S3 API for the object-storage tests: moto's server, from PyPI, in its own venv.
# Usage: tools/s3/install-moto.sh DIR   (then DIR/bin/moto_server exists)
# The tests run this themselves when no server is found; .ci/run runs it first so the
# install is not inside a test's time.
set -euo pipefail
dir="${1:?usage: install-moto.sh DIR}"
if [ -x "$dir/bin/moto_server" ]; then exit 0; fi
python3 -m venv "$dir"
"$dir/bin/pip" install --quiet --disable-pip-version-check "moto[server]==5.2.5"
test -x "$dir/bin/moto_server"
