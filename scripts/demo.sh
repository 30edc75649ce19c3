#!/usr/bin/env bash
# The README's demo on the embedded default: train a small BEExformer on rotten_tomatoes,
# build its Cortex-M4 firmware, boot it in QEMU (mps2-an386) and stream sentences to it
# through the host tool. Reuses runs/demo if it already holds an artifact.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RUN=${RUN:-runs/demo}
BOARD=${BOARD:-mps2-an386}

if [ ! -f "$RUN/artifact/meta.json" ]; then
    echo "== 1/4 train (binarized BEExformer, rotten_tomatoes, default settings)"
    $PY -m beexgen.cli train rotten_tomatoes --out "$RUN"
else
    echo "== 1/4 reuse $RUN (delete it to retrain)"
    $PY -m beexgen.cli eval "$RUN"
fi

echo "== 2/4 size on the real board (nucleo-f411re: 512 KB flash, 128 KB RAM)"
$PY -m beexgen.cli build "$RUN/artifact" --target cortex-m4 --board nucleo-f411re

echo "== 3/4 firmware for $BOARD, booted in QEMU"
PORTFILE=$(mktemp)
$PY -m beexgen.cli emulate "$RUN/artifact" --board "$BOARD" --port-file "$PORTFILE" &
EMU=$!
trap 'kill $EMU 2>/dev/null || true; wait $EMU 2>/dev/null || true; rm -f "$PORTFILE"' EXIT
for _ in $(seq 1 600); do [ -s "$PORTFILE" ] && break; kill -0 $EMU 2>/dev/null || exit 1; sleep 0.2; done
PORT=$(cat "$PORTFILE")

echo "== 4/4 stream sentences over the serial line: $PY -m beexgen.host.infer --port $PORT"
$PY -m beexgen.host.infer --port "$PORT" --artifact "$RUN/artifact" examples/rotten_tomatoes.tsv
