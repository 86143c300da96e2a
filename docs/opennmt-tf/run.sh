#!/bin/bash
# Trains OpenNMT-tf 2.32 for MINUTES on the files prep.py wrote to DATA, then scores the last
# checkpoint on the validation split and prints one JSON line.
#   python3.11 -m venv /tmp/onmt && /tmp/onmt/bin/pip install "OpenNMT-tf==2.32.0" "tensorflow==2.13.*"
#   python docs/opennmt-tf/prep.py DATA                               # the kit's virtualenv
#   docs/opennmt-tf/run.sh /tmp/onmt/bin DATA 5
set -euo pipefail
BIN=$1; DATA=$(realpath "$2"); MINUTES=$3; HERE=$(dirname "$(realpath "$0")")
rm -rf "$DATA/model"; sed "s#DATA/#$DATA/#g" "$HERE/config.yml" > "$DATA/config.yml"
/usr/bin/time -f "%M" -o "$DATA/peak_kb" "$BIN/onmt-main" --model "$HERE/model.py" --config "$DATA/config.yml" \
  --auto_config train > "$DATA/train.log" 2>&1 &
TIMER=$!
until grep -q "Step = " "$DATA/train.log" 2>/dev/null; do sleep 1; done   # timed from the first step
sleep $((MINUTES * 60)); kill "$(pgrep -P $TIMER)"; wait $TIMER || true
"$BIN/onmt-main" --model "$HERE/model.py" --config "$DATA/config.yml" --auto_config eval > "$DATA/eval.log" 2>&1
python3 - "$DATA" <<'PY'
import json, re, sys
data = sys.argv[1]
rates = [float(m) for m in re.findall(r"tokens/s = \d+ \(\d+ source, (\d+) target\)", open(f"{data}/train.log").read())]
loss = re.findall(r"Evaluation result for step (\d+): loss = ([0-9.]+)", open(f"{data}/eval.log").read())[-1]
print(json.dumps({"target_tokens_per_s": round(sum(rates[2:]) / len(rates[2:]), 1), "reports": len(rates),
                  "eval_step": int(loss[0]), "val_loss": float(loss[1]),
                  "peak_rss_mb": round(int(open(f"{data}/peak_kb").read().split()[-1]) / 1024)}))
PY
