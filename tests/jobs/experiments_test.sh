#!/usr/bin/env bash
# experiments_test.sh - the experiment scripts' --quick forms run on the built program and write
# their tables (and plots when gnuplot is installed) from the metrics of every network.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export SN_CLI="$1"
t=$(mktemp -d /tmp/snexp.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }

"$here/jobs/experiments/degradation.sh" --quick --out "$t/deg" >"$t/deg.log" 2>&1 ||
  die "degradation.sh --quick: $(tail -3 "$t/deg.log")"
/usr/bin/python3 - "$t/deg" <<'PY' || fail=1
import json, os, sys
out = sys.argv[1]
archs = ["plain20", "plain56", "resnet20", "resnet56"]
for a in archs:
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics-%s.jsonl" % a))]
    assert rows[-1]["step"] == 3 and all(0 <= r["val_acc"] <= 1 for r in rows), (a, rows)
table = open(os.path.join(out, "degradation.md")).read().splitlines()
assert sum(1 for l in table if l.startswith("| plain") or l.startswith("| resnet")) == 4, table
print("ok: degradation.sh --quick: 4 networks in the table")
PY
if command -v gnuplot >/dev/null; then
  [[ -s "$t/deg/degradation.png" ]] && echo "ok: degradation.png" || die "no degradation.png"
fi
"$here/jobs/experiments/batchnorm.sh" --quick --out "$t/bn" >"$t/bn.log" 2>&1 ||
  die "batchnorm.sh --quick: $(tail -3 "$t/bn.log")"
/usr/bin/python3 - "$t/bn" <<'PY' || fail=1
import json, os, sys
out = sys.argv[1]
runs = ["%s-lr%s" % (a, lr) for a in ("lenet", "lenet_bn") for lr in ("0.01", "0.1", "0.5")]
status = {l.split()[0]: int(l.split()[2]) for l in open(os.path.join(out, "times.txt"))}
for r in runs:
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics-%s.jsonl" % r))]
    steps = [x["step"] for x in rows]
    # 4 steps per epoch: epoch reports at 4, 8, ..., 20 and --val-every 10's line at step 10
    assert status[r] != 0 or steps == [4, 8, 10, 12, 16, 20], (r, steps)
    assert all("val_acc" in x for x in rows), (r, rows)
table = open(os.path.join(out, "batchnorm.md")).read()
assert all("| %s |" % r in table for r in runs), table
print("ok: batchnorm.sh --quick: 6 runs in the table")
PY
if command -v gnuplot >/dev/null; then
  [[ -s "$t/bn/batchnorm.png" ]] && echo "ok: batchnorm.png" || die "no batchnorm.png"
fi
exit $fail
