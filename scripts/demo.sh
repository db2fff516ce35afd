#!/usr/bin/env bash
# The whole story on the CPU in minutes: demo data -> paired generation -> training (baseline and
# full privileged-information method) -> evaluation -> runs/demo/report.md.
# Called by `make demo`; every step is a plain CLI call a user can run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${DEMO_DATA:-data/demo}
PAIRS=${DEMO_PAIRS:-data/demo_pairs}
RUN=${DEMO_RUN:-runs/demo}
SEED=${DEMO_SEED:-0}
# extra options for every fer-pi pretrain/train call, e.g. a quicker check on a loaded machine:
# DEMO_TRAIN_ARGS="--image-size 32 --set pretrain_epochs=3 --set epochs=2" make demo
read -r -a TRAIN_ARGS <<< "${DEMO_TRAIN_ARGS:-}"
start=$(date +%s)
step() { printf '\n== [%ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

step "1/6 build the embedded demo dataset (RAF-DB layout) -> $DATA"
if [ -f "$DATA/demo_info.json" ]; then echo "already built: $DATA (delete it to rebuild)"
else $BIN/occsynth demo-data "$DATA" --seed "$SEED"; fi

step "2/6 generate clean/occluded/mask pairs -> $PAIRS"
# 20 % of train -> val (checkpoint selection and curves; the demo photos carry no identity in the
# rafdb reader, so by sample); 30 % of each category's templates held out of train/val: half of
# the test pairs are occluded by those unseen templates, half by seen ones
GEN_OPTS=(--val-fraction 0.2 --holdout-templates 0.3)
if [ -f "$PAIRS/dataset.json" ] && ! grep -q '"holdout_templates": 0.3' "$PAIRS/dataset.json"; then
  echo "$PAIRS was made by an older make demo (no val split / template holdout): regenerating it"
  OVERWRITE=--overwrite
fi
$BIN/occsynth generate --src rafdb --root "$DATA" --templates assets --out "$PAIRS" \
    --landmarks aligned --seed "$SEED" --workers 2 "${GEN_OPTS[@]}" ${OVERWRITE:-}

step "3/6 contact sheet of generated pairs -> $RUN/pairs_preview.png"
rm -rf "$RUN"; mkdir -p "$RUN"   # runs are cheap: a re-run starts them afresh
$BIN/occsynth preview --templates assets --src "$DATA/Image/aligned" -n 8 --seed "$SEED" -o "$RUN/pairs_preview.png"

step "4/6 pretrain teacher (clean) and student (occluded) once, shared by both methods"
# best.pt is the epoch with the best occluded val accuracy when the pairs have a val split, else
# the last epoch (nothing is ever selected on test)
$BIN/fer-pi pretrain --data "$PAIRS/manifest.csv" --size demo --seed "$SEED" \
    --out "$RUN/pretrain" ${TRAIN_ARGS[@]+"${TRAIN_ARGS[@]}"}

step "5/6 fine-tune: baseline (CE only) and full method (sim + LIR + adv + rec)"
for preset in resnet full; do
  $BIN/fer-pi train --data "$PAIRS/manifest.csv" --preset "$preset" --size demo --seed "$SEED" \
      --pretrained-run "$RUN/pretrain" --out "$RUN/$preset" ${TRAIN_ARGS[@]+"${TRAIN_ARGS[@]}"}
  $BIN/fer-pi evaluate "$RUN/$preset/best.pt" --data "$PAIRS/manifest.csv" --by category --out "$RUN/$preset/eval"
done

step "6/6 report -> $RUN/report.md"
$BIN/fer-pi report --run-dir "$RUN" --out "$RUN/report.md"
step "done: open $RUN/report.md"
