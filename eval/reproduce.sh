#!/usr/bin/env bash
# Every figure of docs/evaluation.md: replays of the shared outcome files through the policy.
#
#   bash eval/reproduce.sh [OUTCOMES_DIR]      # default: ../shared/data/outcomes
#
# Writes eval/out/<name>.json (router eval replay --json) and .png (--plot, needs
# pip install -e '.[eval]'), and prints one summary line per replay. 15-30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-../shared/data/outcomes}
OUT=eval/out
mkdir -p "$OUT"
R=(python -m router eval)
G=$O/routellm_gsm8k.jsonl M=$O/routellm_mmlu.jsonl DTR=$O/dcrouter_train.jsonl DTE=$O/dcrouter_test.jsonl
RL=eval/maps/routellm.yaml DC=eval/maps/dcrouter.yaml

replay() {  # name, then replay arguments
  local name=$1; shift
  "${R[@]}" replay "$@" --json --plot "$OUT/$name.png" > "$OUT/$name.json"
  python eval/summary.py "$OUT/$name.json"
}

# 1. The policy as shipped, without and with the difficulty estimate (the shipped estimate was
#    fitted on these three files: in-sample for GSM8K, MMLU and dcrouter's training split).
for f in gsm8k mmlu; do
  replay "$f-task-class" "$O/routellm_$f.jsonl" --models $RL --difficulty-weight 0
done
replay dcrouter-task-class "$DTE" --models $DC --difficulty-weight 0

# 2. k-fold within each file: the estimate refitted on the other folds (what a team reaches
#    on its own traffic), on the reasoning route (every row of these files is a reasoning task)
#    and on auto (the classifier sorts the rows into both classes).
for f in gsm8k mmlu; do
  replay "$f-kfold" "$O/routellm_$f.jsonl" --models $RL --route auto:reasoning --refit kfold
  replay "$f-kfold-auto" "$O/routellm_$f.jsonl" --models $RL --refit kfold
done

# 3. Leave one file out: the estimate fitted on the other files only (a new kind of traffic).
replay gsm8k-lofo "$G" --models $RL --route auto:reasoning --train-on "$M" "$DTR"
replay mmlu-lofo "$M" --models $RL --route auto:reasoning --train-on "$G" "$DTR"
replay dcrouter-lofo "$DTE" --models $DC --train-on "$G" "$M"

# 4. dcrouter as a team would do it: capabilities and the estimate measured on the training
#    split, replayed on the test split.
"${R[@]}" calibrate "$DTR" --models $DC --difficulty-out "$OUT/dcrouter_train.json" \
  --map-out "$OUT/dcrouter-calibrated.yaml" > "$OUT/dcrouter-calibrate.txt"
replay dcrouter-team "$DTE" --models "$OUT/dcrouter-calibrated.yaml" \
  --difficulty-model "$OUT/dcrouter_train.json"
replay dcrouter-team-task-class "$DTE" --models "$OUT/dcrouter-calibrated.yaml" \
  --difficulty-weight 0
