#!/usr/bin/env bash
# The long background runs of issues 15 (solvated alanine dipeptide) and 16 (silicon), in benchmarks/out/.
#
#   bash benchmarks/long_runs.sh start [RUN ...]   # continue (--restart) or begin each run in the background
#   bash benchmarks/long_runs.sh status            # simulated time and state of each run
#   bash benchmarks/long_runs.sh pause|resume|stop [RUN ...]
#   bash benchmarks/long_runs.sh archive [RUN ...]   # save each run's restart state to benchmarks/runs/RUN.tar.xz
#   bash benchmarks/long_runs.sh restore [RUN ...]   # unpack it where benchmarks/out/RUN is missing (start does)
#   bash benchmarks/long_runs.sh commit [RUN ...]    # archive, then commit only benchmarks/runs/
#   bash benchmarks/long_runs.sh autocommit MIN      # commit every MIN minutes until every run has stopped
#
# RUN is one of: si216 si64 solv_hmr_deepves solv_hmr_ref villin (default for start: si216 solv_hmr_deepves
# solv_hmr_ref; villin, the solvated villin headpiece biased along Rg and RMSD of its CA atoms, ~70 ms per step
# on one core, i.e. ~1.7 days for its 2 ns, only when named; if WORKTREE predates the villin system, start it
# from a worktree of its own: WORKTREE=/work/wt_villin bash benchmarks/long_runs.sh start villin). The runs use the code of a detached worktree (WORKTREE, default /work/wt_runs, made at
# HEAD when missing) through PYTHONPATH: TorchScript re-reads a module's source when it scripts the bias,
# so editing the checkout under a running job kills it at its next export. Each run writes
# benchmarks/out/RUN.log and benchmarks/out/RUN.pid; nice levels put silicon and the solvated Deep-VES run first.
#
# benchmarks/out/ is not in git and has been lost between sessions, so a run's restart state also lives in
# git: `archive` packs the last checkpoint, ves.log, the FES files and a colvar thinned to one row per
# THIN_PS ps (default 1; the rule of read_colvar(every=); restart truncates rows written after the checkpoint) into benchmarks/runs/RUN.tar.xz,
# and `start` unpacks it when benchmarks/out/RUN is missing. For the metadynamics reference `archive` also keeps
# a copy of the current FES in snapshots/<time ps>.dat (its drift is the reference's own uncertainty).
# Analyses of a restored run therefore see 1-ps frames before the restore and denser ones after: resample to
# one spacing (`--every-ps` of the analysis scripts) before reweighting.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${LONG_RUNS_OUT:-"$ROOT/benchmarks/out"}
WORKTREE=${WORKTREE:-/work/wt_runs}
ARCHIVE=${LONG_RUNS_ARCHIVE:-"$ROOT/benchmarks/runs"}
THIN_PS=${THIN_PS:-1}
mkdir -p "$OUT"

declare -A CMD NICE
CMD[si216]="deepves --system silicon --time 40ns --out si216 --no-progress"
CMD[si64]="deepves --system silicon-64 --time 30ns --out si64 --no-progress"
CMD[solv_hmr_deepves]="deepves --system alanine-dipeptide-solvated-hmr --time 20ns --out solv_hmr_deepves --async process --sample-stride 25 --push-interval 8 --no-progress"
CMD[solv_hmr_ref]="reference --system alanine-dipeptide-solvated-hmr --time 50ns --out solv_hmr_ref --no-progress"
NICE[si216]=0; NICE[si64]=5; NICE[solv_hmr_deepves]=0; NICE[solv_hmr_ref]=4
CMD[villin]="deepves --system villin --time 2ns --out villin --no-progress"
NICE[villin]=5
# on 2 cores: silicon gets core 0 alone (its run is one thread), the solvated pair (Deep-VES with its learner
# process, and the reference) shares core 1; PIN=0 leaves placement to the kernel
declare -A CORE
CORE[si216]=0; CORE[si64]=0; CORE[solv_hmr_deepves]=1; CORE[solv_hmr_ref]=1
CORE[villin]=1

# a pid file left by an earlier session may name a reused pid: check that it is still our run
running() { [ -f "$OUT/$1.pid" ] && kill -0 "$(cat "$OUT/$1.pid")" 2>/dev/null &&
            tr '\0' ' ' < "/proc/$(cat "$OUT/$1.pid")/cmdline" 2>/dev/null | grep -q -- "--out $1 "; }

start() {
    if [ ! -d "$WORKTREE" ]; then git worktree add --detach "$WORKTREE" HEAD; fi
    for run in "$@"; do
        if running "$run"; then echo "$run: already running (pid $(cat "$OUT/$run.pid"))"; continue; fi
        restore "$run"
        restart=""
        if [ -e "$OUT/$run/checkpoint.pt" ] || [ -e "$OUT/$run/checkpoint.pkl" ]; then restart="--restart"; fi
        (cd "$OUT"
         pin=""; if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then pin="taskset -c ${CORE[$run]}"; fi
         PYTHONPATH="$WORKTREE" OMP_NUM_THREADS=1 nohup nice -n "${NICE[$run]}" $pin \
             python -m openmm_nnbias.cli ${CMD[$run]} $restart >> "$run.log" 2>&1 &
         echo $! > "$run.pid")
        echo "$run: started (pid $(cat "$OUT/$run.pid")) $restart"
    done
}

status() {
    for run in si216 si64 solv_hmr_deepves solv_hmr_ref villin; do
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

restore() {  # unpack RUN's archive when benchmarks/out/RUN is missing
    if [ ! -d "$OUT/$1" ] && [ -f "$ARCHIVE/$1.tar.xz" ]; then
        tar -xJf "$ARCHIVE/$1.tar.xz" -C "$OUT"; echo "$1: restored from $ARCHIVE/$1.tar.xz"
    fi
}

archive() {
    mkdir -p "$ARCHIVE"
    for run in "$@"; do
        dir="$OUT/$run"
        [ -d "$dir" ] || continue
        [ -e "$dir/checkpoint.pt" ] || [ -e "$dir/checkpoint.pkl" ] || { echo "$run: no checkpoint yet"; continue; }
        if [ -f "$dir/fes_reference.dat" ]; then
            t=$(grep -v '^#' "$dir/colvar" | tail -n 1 | awk '{printf "%d", $1}')
            mkdir -p "$dir/snapshots"; cp "$dir/fes_reference.dat" "$dir/snapshots/$t.dat"
        fi
        tmp=$(mktemp -d); mkdir "$tmp/$run"
        (cd "$dir" && cp -r $(ls -d checkpoint.* ves.log fes*.dat snapshots 2>/dev/null) "$tmp/$run/")
        awk -v th="$THIN_PS" '/^#/ {print; next} {r = ($1 / th - int($1 / th + 0.5)) * th; if (r < 1e-6 && r > -1e-6) print}' \
            "$dir/colvar" > "$tmp/$run/colvar"
        tar -cJf "$ARCHIVE/.$run.tar.xz.tmp" -C "$tmp" "$run" && mv "$ARCHIVE/.$run.tar.xz.tmp" "$ARCHIVE/$run.tar.xz"
        rm -rf "$tmp"
        echo "$run: archived $(grep -v '^#' "$dir/colvar" | tail -n 1 | awk '{printf "%.3f ns", $1/1000}') ($(du -h "$ARCHIVE/$run.tar.xz" | cut -f1))"
    done
}

commit() {
    archive "$@"
    git add "$ARCHIVE"
    # only benchmarks/runs/: whatever else is staged stays staged
    for i in 1 2 3 4 5; do
        if git commit -q -m "long runs: restart state at $(date -u +%H:%M) UTC" -- "$ARCHIVE" 2>/dev/null; then
            echo "committed benchmarks/runs"; return 0; fi
        git diff --cached --quiet -- "$ARCHIVE" && { echo "nothing new to commit"; return 0; }
        sleep 5  # another git command holds the index
    done
    echo "commit of benchmarks/runs failed" >&2; return 1
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
    if [ "$action" = start ]; then runs=(si216 solv_hmr_deepves solv_hmr_ref); else runs=(si216 si64 solv_hmr_deepves solv_hmr_ref villin); fi
fi
if [ "$action" = autocommit ]; then
    minutes=${runs[0]:-30}; runs=(si216 si64 solv_hmr_deepves solv_hmr_ref villin)
    while :; do
        sleep $((minutes * 60))
        alive=(); for run in "${runs[@]}"; do running "$run" && alive+=("$run"); done
        commit "${alive[@]}" || true
        [ ${#alive[@]} -gt 0 ] || exit 0
    done
fi
for run in "${runs[@]}"; do
    [ -n "${CMD[$run]:-}" ] || { echo "unknown run '$run' (si216 si64 solv_hmr_deepves solv_hmr_ref villin)" >&2; exit 2; }
done
case "$action" in
    start) start "${runs[@]}" ;;
    status) status ;;
    pause) signal STOP "${runs[@]}" ;;
    resume) signal CONT "${runs[@]}" ;;
    stop) signal TERM "${runs[@]}" ;;
    archive) archive "${runs[@]}" ;;
    restore) for run in "${runs[@]}"; do restore "$run"; done ;;
    commit) commit "${runs[@]}" ;;
    *) echo "usage: bash benchmarks/long_runs.sh start|status|pause|resume|stop|archive|restore|commit [RUN ...] | autocommit MIN" >&2; exit 2 ;;
esac
