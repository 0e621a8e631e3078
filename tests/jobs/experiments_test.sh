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
exit $fail
