#!/usr/bin/env bash
# Every benchmark of the performance issue in one command: setup (nginx with its echo
# module, curl, wget, wget2, aria2, strace, parfive, matplotlib if missing), then
#   compare.py          fetcher vs peers on tmpfs and a real disk, CPU per file, processes
#                       (as root, again with the disk runs on a journaled ext4 image)
#   latency_compare.py  behind 0-100 ms of latency, peers at equal connections, many hosts
#   syscalls.py         system calls per item against wget (strace -f -c, real disk)
#   naming.py           many items sharing one flat name against the indexed layout
#   tune_check.py       `fetcher tune`'s advice against the full run it recommends (tmpfs,
#                       the real disk, and as root a journaled ext4 image on it)
#   deleted_inodes.py   how fast the real disk creates files right after deletions
#   auto_cost.py        the default (--processes auto) against threads alone where it
#                       should not act: a short list, a latency-bound list
#   sweep.py            fetcher's chunksize x workers, with its plot
# and, with --with-cluster (Dask's distributed installed; root for its namespaces),
#   cluster.py          --cluster local:1 vs local:2 behind 100 ms, the client's CPU per
#                       item, two workers in network namespaces, the 100M-URL plan
# Results: benchmarks/results/*.md (with --quick: benchmarks/results/quick/).
#
#   bash benchmarks/run_all.sh                  # full: about 95 minutes on 2 cores
#   bash benchmarks/run_all.sh --quick          # smoke test: about 3 minutes
#   bash benchmarks/run_all.sh --with-cluster   # full, plus cluster.py: about 8 minutes more
#
# Runs with $PYTHON, default the repository's .venv/bin/python (whose `fetcher` is the one
# measured; $FETCHER overrides the command). Exits non-zero if any script found a problem.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv_python="$here/../.venv/bin/python"
if [ -z "${PYTHON:-}" ] && [ -x "$venv_python" ]; then
    python="$venv_python"
else
    python="${PYTHON:-python3}"
fi
quick=()
cluster=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=(--quick) ;;
        --with-cluster) cluster=1 ;;
        *) echo "usage: bash benchmarks/run_all.sh [--quick] [--with-cluster]" >&2; exit 2 ;;
    esac
done
status=0
started=$(date +%s)
step() {
    echo "=== $* ($(( $(date +%s) - started )) s in)" >&2
    "$python" "$@" || status=$?
}
step "$here/compare.py" "${quick[@]}"
step "$here/latency_compare.py" "${quick[@]}"
step "$here/syscalls.py" "${quick[@]}"
step "$here/naming.py" "${quick[@]}"
step "$here/tune_check.py" "${quick[@]}"
step "$here/tune_check.py" --disk "${quick[@]}"
step "$here/deleted_inodes.py" "${quick[@]}"
if [ "$(id -u)" -eq 0 ]; then # the journaled ext4 image is loop-mounted
    step "$here/compare.py" --journaled "${quick[@]}"
    step "$here/tune_check.py" --journaled "${quick[@]}"
    step "$here/deleted_inodes.py" --journaled "${quick[@]}"
fi
step "$here/auto_cost.py" "${quick[@]}"
if [ "${#quick[@]}" -gt 0 ]; then
    step "$here/sweep.py" --quick --runs 1
else
    step "$here/sweep.py" --runs 2 # 2 interleaved runs per point keep the total near 35 min
fi
if [ "$cluster" -eq 1 ]; then
    step "$here/cluster.py" "${quick[@]}"
fi
echo "=== done in $(( $(date +%s) - started )) s, exit $status" >&2
exit "$status"
