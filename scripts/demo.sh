#!/usr/bin/env bash
# dsrepo demo on a fresh machine:   bash scripts/demo.sh
#
# Sets up .venv (pip install -e .), then, in an embedded SQLite project under demo-out/:
# imports two bundled COCO samples (Datumaro's seven-task sample and real COCO panoptic
# ground truth), commits, shows info/stats/a query, exports everything again, and checks
# that every exported file equals its input and every panoptic PNG its original, pixel for pixel.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ ! -x .venv/bin/python ]]; then
    echo "demo: creating .venv" >&2
    "${PYTHON:-python3}" -m venv .venv
fi
echo "demo: installing dsrepo into .venv" >&2
PIP_LOG="$(mktemp)"
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e . >"$PIP_LOG" 2>&1; then
    cat "$PIP_LOG" >&2
    echo "demo: pip install failed (output above)" >&2
    exit 1
fi
rm -f "$PIP_LOG"
.venv/bin/python -m compileall -q repo migrations >/dev/null  # bytecode even where PYTHONDONTWRITEBYTECODE is set

DSREPO=.venv/bin/dsrepo
OUT=demo-out
rm -rf "$OUT"
SEVEN=tests/data/datumaro_coco/coco
PANOPTIC=tests/data/panopticapi_sample/coco

set -x
$DSREPO create -p "$OUT/project"
$DSREPO import -p "$OUT/project" -f coco -n datumaro_sample "$SEVEN"
$DSREPO import -p "$OUT/project" -f coco -n coco_val2017 "$PANOPTIC"
$DSREPO commit -p "$OUT/project" -m "bundled samples"
$DSREPO info -p "$OUT/project"
$DSREPO stats -p "$OUT/project"
$DSREPO query -p "$OUT/project" "SELECT source, task, count(*) AS annotations FROM annotations_v GROUP BY source, task ORDER BY source, task"
$DSREPO export -p "$OUT/project" -f coco -o "$OUT/export" -- --save-images
set +x

.venv/bin/python - "$SEVEN" "$PANOPTIC" "$OUT/export" <<'PY'
"""Every exported file must equal its input after parsing, ints and floats told apart."""
import json, sys
from pathlib import Path

import numpy as np
from PIL import Image

def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b

def ids(path):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint32)
    return rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)

*sources, out = map(Path, sys.argv[1:])
files = pngs = 0
for source in sources:
    for original in sorted((source / "annotations").glob("*.json")):
        exported = out / "annotations" / original.name
        assert same(json.loads(original.read_text()), json.loads(exported.read_text())), f"{exported} differs"
        files += 1
    for png in sorted((source / "annotations").glob("panoptic_*/*.png")):
        assert (ids(png) == ids(out / "annotations" / png.parent.name / png.name)).all(), f"{png.name} differs"
        pngs += 1
print(f"demo: round trip OK: {files} annotation files and {pngs} panoptic PNGs are identical to the inputs")
PY
echo "demo: the project is in $OUT/project, the export in $OUT/export"
