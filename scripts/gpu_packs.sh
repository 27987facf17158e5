#!/usr/bin/env bash
# Build, on this CPU machine, what scripts/gpu_train.sh carries to a lent GPU machine, and check it fits
# the 64 MiB the device tool moves (the repository's tracked files, the shipped model among them, count).
#   bash scripts/gpu_packs.sh            (needs ../shared and packs/pseudo-selftrain.json from
#                                         `closetai pseudo-label ../shared/data/ccp --out packs/pseudo-selftrain.json`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
QUALITY=${QUALITY:-65}  # 75 made the CCP pack 36 MiB: with the 31 MiB of tracked files, over 64
"$PY" -m closetai prepare ../shared/data/ccp --person --like models/closetai-ccp15.pt --out packs/ccp448p \
  --short-side 448 --quality "$QUALITY"
if [ -f packs/pseudo-selftrain.json ]; then
  "$PY" -m closetai prepare packs/pseudo-selftrain.json --out packs/pseudo448 --short-side 448 --quality "$QUALITY" \
    --val-fraction 0
fi
rm -rf .whl && mkdir -p .whl
# The registry mirror answered this once with a bare exit 1 (nothing printed under -q): try twice, loudly.
for attempt in 1 2; do
  if "$PY" -m pip download pycocotools --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --no-deps -d .whl >/tmp/gpu_packs_pip.log 2>&1; then
    break
  fi
  [ "$attempt" = 2 ] && { echo "could not download the pycocotools wheel:" >&2; tail -5 /tmp/gpu_packs_pip.log >&2; exit 1; }
done
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
# only the paths that exist: du exits 1 on a missing one, which set -o pipefail turned into a silent exit
carried=$(du -cb $(ls -d packs/ccp448p packs/pseudo448 .whl 2>/dev/null) | tail -1 | cut -f1)
total=$(( (tracked + carried) / 1048576 ))
echo "tracked files $(( tracked / 1048576 )) MiB + carried $(( carried / 1048576 )) MiB = ${total} MiB (limit 64)"
if [ "$total" -gt 62 ]; then
  echo "too large for the device tool: lower QUALITY (now $QUALITY) or leave packs/pseudo448 out" >&2
  exit 1
fi
