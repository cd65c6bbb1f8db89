#!/usr/bin/env bash
# Every benchmark of the performance issue in one command: setup (nginx, curl, wget2, aria2,
# parfive, matplotlib if missing), fetcher against its peers (compare.py), then the
# chunksize x workers sweep with its plot (sweep.py). Results: benchmarks/results/.
#
#   bash benchmarks/run_all.sh           # full: about 15 minutes on 2 cores
#   bash benchmarks/run_all.sh --quick   # smoke test: about 2 minutes
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
quick=()
case "${1:-}" in
    --quick) quick=(--quick) ;;
    "") ;;
    *) echo "usage: bash benchmarks/run_all.sh [--quick]" >&2; exit 2 ;;
esac
status=0
"$python" "$here/compare.py" "${quick[@]}" || status=$?
if [ "${#quick[@]}" -gt 0 ]; then
    "$python" "$here/sweep.py" --quick --runs 1 || status=$?
else
    "$python" "$here/sweep.py" || status=$?
fi
exit "$status"
