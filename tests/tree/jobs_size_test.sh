#!/usr/bin/env bash
# jobs_size_test.sh - entry programs stay thin (CONTRIBUTING.md, "Layering and style"): every
# jobs/cmd_*.c is under 200 lines and no function in jobs/*.c is longer than 80 lines
# (signature to closing brace). Longer code means library policy leaked into the CLI.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
python3 - jobs/*.c <<'PY'
import re, sys
fail = 0
for path in sys.argv[1:]:
    lines = open(path).read().split('\n')
    if re.search(r'/cmd_[a-z_]+\.c$', path) and len(lines) - 1 >= 200:
        print(f"{path}: {len(lines) - 1} lines (limit: under 200)"); fail = 1
    depth, start, name = 0, None, None
    for i, l in enumerate(lines):
        code = re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'|/\*.*?\*/|//.*', '', l)
        if depth == 0 and re.match(r'^[A-Za-z_].*\(', l) and not l.startswith(('#', 'typedef')):
            m = re.search(r'([A-Za-z_][A-Za-z_0-9]*)\s*\(', l)
            start, name = i, m.group(1) if m else '?'
        opened = depth
        depth += code.count('{') - code.count('}')
        if opened > 0 and depth == 0 and start is not None and l.startswith('}'):
            n = i - start + 1
            if n > 80: print(f"{path}:{start + 1}: {name} has {n} lines (limit 80)"); fail = 1
            start = None
        elif depth == 0 and code.rstrip().endswith(';'):
            start = None
sys.exit(fail)
PY
rc=$?
[[ $rc == 0 ]] && echo "jobs_size: cmd_*.c under 200 lines, functions within 80 lines"
exit $rc
