#!/usr/bin/env bash
# The long background runs of issues 15 (solvated alanine dipeptide) and 16 (silicon), in benchmarks/out/.
#
#   bash benchmarks/long_runs.sh start [RUN ...]   # continue (--restart) or begin each run in the background
#   bash benchmarks/long_runs.sh status            # simulated time and state of each run
#   bash benchmarks/long_runs.sh pause|resume|stop [RUN ...]
#
# RUN is one of: si216 si64 solv_hmr_deepves solv_hmr_ref (default for start: si216 solv_hmr_deepves
# solv_hmr_ref). The runs use the code of a detached worktree (WORKTREE, default /work/wt_runs, made at
# HEAD when missing) through PYTHONPATH: TorchScript re-reads a module's source when it scripts the bias,
# so editing the checkout under a running job kills it at its next export. Each run writes
# benchmarks/out/RUN.log and benchmarks/out/RUN.pid; nice levels put the solvated Deep-VES run first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/benchmarks/out"
WORKTREE=${WORKTREE:-/work/wt_runs}
mkdir -p "$OUT"

declare -A CMD NICE
CMD[si216]="deepves --system silicon --time 30ns --out si216 --no-progress"
CMD[si64]="deepves --system silicon-64 --time 30ns --out si64 --no-progress"
CMD[solv_hmr_deepves]="deepves --system alanine-dipeptide-solvated-hmr --time 20ns --out solv_hmr_deepves --async process --sample-stride 25 --push-interval 8 --no-progress"
CMD[solv_hmr_ref]="reference --system alanine-dipeptide-solvated-hmr --time 50ns --out solv_hmr_ref --no-progress"
NICE[si216]=3; NICE[si64]=5; NICE[solv_hmr_deepves]=0; NICE[solv_hmr_ref]=3

# a pid file left by an earlier session may name a reused pid: check that it is still our run
running() { [ -f "$OUT/$1.pid" ] && kill -0 "$(cat "$OUT/$1.pid")" 2>/dev/null &&
            tr '\0' ' ' < "/proc/$(cat "$OUT/$1.pid")/cmdline" 2>/dev/null | grep -q -- "--out $1 "; }

start() {
    if [ ! -d "$WORKTREE" ]; then git worktree add --detach "$WORKTREE" HEAD; fi
    for run in "$@"; do
        if running "$run"; then echo "$run: already running (pid $(cat "$OUT/$run.pid"))"; continue; fi
        restart=""
        if [ -e "$OUT/$run/checkpoint.pt" ] || [ -e "$OUT/$run/checkpoint.pkl" ]; then restart="--restart"; fi
        (cd "$OUT"
         PYTHONPATH="$WORKTREE" OMP_NUM_THREADS=1 nohup nice -n "${NICE[$run]}" \
             python -m openmm_nnbias.cli ${CMD[$run]} $restart >> "$run.log" 2>&1 &
         echo $! > "$run.pid")
        echo "$run: started (pid $(cat "$OUT/$run.pid")) $restart"
    done
}

status() {
    for run in si216 si64 solv_hmr_deepves solv_hmr_ref; do
        [ -d "$OUT/$run" ] || continue
        state=$(running "$run" && echo running || echo stopped)
        if [ -f "$OUT/$run/ves.log" ]; then
            last=$(grep -v '^#' "$OUT/$run/ves.log" | tail -n 1 | awk '{printf "%.3f ns, KL %s, lr %s, %s", $2/1000, $4, $5, $7}')
        else
            last=$(grep -v '^#' "$OUT/$run/colvar" | tail -n 1 | awk '{printf "%.3f ns", $1/1000}')
        fi
        echo "$run: $state; $last"
    done
}

signal() {
    sig=$1; shift
    for run in "$@"; do
        if running "$run"; then pkill "-$sig" -P "$(cat "$OUT/$run.pid")" 2>/dev/null || true
            kill "-$sig" "$(cat "$OUT/$run.pid")"; echo "$run: $sig"; fi
    done
}

action=${1:-status}; shift || true
runs=("$@")
if [ ${#runs[@]} -eq 0 ]; then
    if [ "$action" = start ]; then runs=(si216 solv_hmr_deepves solv_hmr_ref); else runs=(si216 si64 solv_hmr_deepves solv_hmr_ref); fi
fi
for run in "${runs[@]}"; do
    [ -n "${CMD[$run]:-}" ] || { echo "unknown run '$run' (si216 si64 solv_hmr_deepves solv_hmr_ref)" >&2; exit 2; }
done
case "$action" in
    start) start "${runs[@]}" ;;
    status) status ;;
    pause) signal STOP "${runs[@]}" ;;
    resume) signal CONT "${runs[@]}" ;;
    stop) signal TERM "${runs[@]}" ;;
    *) echo "usage: bash benchmarks/long_runs.sh start|status|pause|resume|stop [RUN ...]" >&2; exit 2 ;;
esac
