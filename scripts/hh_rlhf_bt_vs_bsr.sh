#!/usr/bin/env bash
# Held-out accuracy of BT vs BSR on the 2,312 HH-RLHF harmless-base pairs beside the repo (MiniLM-L6, CPU).
# Usage: bash scripts/hh_rlhf_bt_vs_bsr.sh [extra LightningCLI overrides]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
DATA=../shared/data/hh_rlhf_harmless_base_test.jsonl.gz
for reg in NoRegularizer BatchSumToZero; do
  root=artifacts/hh_rlhf_minilm/$reg
  $PY -m bsr_lightning fit --config configs/reward/hh_rlhf_minilm.yaml --data.path "$DATA" \
    --model.regularizer "bsr_lightning.reward.regularizers.$reg" --trainer.default_root_dir "$root" \
    --trainer.enable_progress_bar false "$@"
  $PY - "$root" <<'PY'
import csv, glob, sys
path = sorted(glob.glob(f"{sys.argv[1]}/lightning_logs/version_*/metrics.csv"))[-1]
rows = [r for r in csv.DictReader(open(path)) if r.get("val/accuracy")]
print(f"{sys.argv[1]}: val/accuracy={float(rows[-1]['val/accuracy']):.4f} "
      f"val/hidden_norm_std={float(rows[-1]['val/hidden_norm_std']):.3f} ({len(rows)} validations)")
PY
done
