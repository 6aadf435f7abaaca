#!/usr/bin/env bash
# The tetrapeptide race (benchmarks/race4.py) in the background on two cores, resumable across sessions.
#
#   bash benchmarks/race4_runs.sh start            # restore from benchmarks/runs/race4.tar.xz if needed, start both lanes
#   LANES=0 bash benchmarks/race4_runs.sh start    # only lane 0; RACE4_TIME=20ns for longer runs (default 10ns),
#                                                  # RACE4_METHODS=deepves for some methods only
#   bash benchmarks/race4_runs.sh status           # simulated time of every run
#   bash benchmarks/race4_runs.sh pause|resume|stop
#   bash benchmarks/race4_runs.sh archive          # restart state -> benchmarks/runs/race4.tar.xz (+ race4_reference.tar.xz)
#   bash benchmarks/race4_runs.sh commit           # archive, then commit only those files
#   bash benchmarks/race4_runs.sh autocommit MIN   # commit every MIN minutes while a lane runs
#
# Both lanes run at nice 10, so that foreground work goes first (CPU times are unaffected).
# Lane 0 (core 0) and lane 1 (core 1) run the same command, seeds 1-4 of deepves, metad, opes: each run folder holds a
# lock with the pid running it, so each lane takes the next run nobody runs (lane 1 first makes the reference,
# race4.py reference, stage 1 10 ns + 40 ns static-bias MD, when it is missing). Both run the code of a detached worktree (WORKTREE,
# default /work/wt_race4, made at HEAD when missing): TorchScript re-reads a module's source when it scripts
# the bias, so editing the checkout under a running job would kill it. Every command of race4.py continues
# where its files stop, so `start` after a stop (or in a new session, after `restore`) resumes both lanes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${RACE4_OUT:-"$ROOT/benchmarks/out"}
RUN="$OUT/race4"
WORKTREE=${WORKTREE:-/work/wt_race4}
ARCHIVE="$ROOT/benchmarks/runs/race4.tar.xz"  # the runs (once the reference is done, without it)
REF_ARCHIVE="$ROOT/benchmarks/runs/race4_reference.tar.xz"  # the finished reference, packed once (25 MB unpacked)
TIME=${RACE4_TIME:-10ns}  # simulated time per run; runs already longer are kept as they are
METHODS=${RACE4_METHODS:-deepves,metad,opes}  # e.g. RACE4_METHODS=deepves RACE4_TIME=20ns: Deep-VES alone to 20 ns
RACE="run --methods $METHODS --time $TIME --every 1ns --root $RUN"
mkdir -p "$OUT"

# a pid file left by an earlier session may name a reused pid: check that it is still this script's lane
running() { [ -f "$OUT/race4_lane$1.pid" ] && kill -0 "$(cat "$OUT/race4_lane$1.pid")" 2>/dev/null &&
            tr '\0' ' ' < "/proc/$(cat "$OUT/race4_lane$1.pid")/cmdline" 2>/dev/null | grep -q race4_runs; }

restore() {
    if [ ! -d "$RUN" ] && [ -f "$ARCHIVE" ]; then tar -xJf "$ARCHIVE" -C "$OUT"; echo "restored $RUN from $ARCHIVE"; fi
    if [ ! -d "$RUN/reference" ] && [ -f "$REF_ARCHIVE" ]; then
        tar -xJf "$REF_ARCHIVE" -C "$OUT"; echo "restored $RUN/reference from $REF_ARCHIVE"; fi
}

start() {
    [ -d "$WORKTREE" ] || git worktree add --detach "$WORKTREE" HEAD
    restore
    py="PYTHONPATH=$WORKTREE OMP_NUM_THREADS=1 nohup nice -n 10"
    script="$WORKTREE/benchmarks/race4.py"
    lanes=("python $script $RACE --seeds 4"
           "([ -f $RUN/reference/reference.json ] || python $script reference --time 40ns --stage1 10ns --root $RUN) && python $script $RACE --seeds 4")
    for lane in ${LANES:-0 1}; do
        if running "$lane"; then echo "lane $lane: already running"; continue; fi
        (cd "$OUT"; eval "$py taskset -c $lane bash -c '${lanes[$lane]}'" >> "race4_lane$lane.log" 2>&1 &
         echo $! > "race4_lane$lane.pid")
        echo "lane $lane: started (pid $(cat "$OUT/race4_lane$lane.pid"))"
    done
}

status() {
    for lane in 0 1; do echo "lane $lane: $(running "$lane" && echo running || echo stopped)"; done
    for p in "$RUN"/*/*/progress.csv; do
        [ -f "$p" ] || continue
        echo "$(basename "$(dirname "$(dirname "$p")")") seed $(basename "$(dirname "$p")"): $(tail -n 1 "$p" | cut -d, -f1) ns"
    done
    [ -f "$RUN/reference/cost.json" ] && echo "reference cost: $(tr -d '\n ' < "$RUN/reference/cost.json")"
    ls "$RUN/reference"/stage2_static/samples_*.npz 2>/dev/null | wc -l | awk '{print "reference stage 2: " $1 * 0.5 " ns"}'
}

signal() {
    for lane in 0 1; do
        if running "$lane"; then pid=$(cat "$OUT/race4_lane$lane.pid")
            for c in $(pgrep -P "$pid"); do pkill "-$1" -P "$c" 2>/dev/null || true; kill "-$1" "$c" || true; done
            kill "-$1" "$pid"; echo "lane $lane: $1"; fi
    done
}

archive() {  # a copy first (race_archive.sh), so that files written meanwhile do not break the tar
    [ -d "$RUN" ] || { echo "no $RUN"; return 0; }
    if [ -f "$RUN/reference/reference.json" ]; then  # done: its own archive, written once; the runs' leaves it out
        [ -f "$REF_ARCHIVE" ] || { tar -cJf "$REF_ARCHIVE.tmp" -C "$OUT" race4/reference && mv "$REF_ARCHIVE.tmp" "$REF_ARCHIVE"
                                   echo "$REF_ARCHIVE: $(du -h "$REF_ARCHIVE" | cut -f1)"; }
        THIN=0 EXCLUDE=reference bash "$ROOT/benchmarks/race_archive.sh" "$RUN" race4
    else
        THIN=0 bash "$ROOT/benchmarks/race_archive.sh" "$RUN" race4
    fi
}

commit() {
    archive
    files=("$ARCHIVE"); [ -f "$REF_ARCHIVE" ] && files+=("$REF_ARCHIVE")
    git add "${files[@]}"
    for i in 1 2 3 4 5; do
        if git commit -q -m "race4: restart state at $(date -u +%H:%M) UTC" -- "${files[@]}" 2>/dev/null; then
            echo "committed ${files[*]}"; return 0; fi
        git diff --cached --quiet -- "${files[@]}" && { echo "nothing new to commit"; return 0; }
        sleep 5
    done
    echo "commit of $ARCHIVE failed" >&2; return 1
}

case "${1:-status}" in
    start) start ;;
    status) status ;;
    pause) signal STOP ;;
    resume) signal CONT ;;
    stop) signal TERM ;;
    restore) restore ;;
    archive) archive ;;
    commit) commit ;;
    autocommit) while running 0 || running 1; do sleep $(( ${2:-30} * 60 )); commit || true; done ;;
    *) echo "unknown action '$1' (start status pause resume stop restore archive commit autocommit)" >&2; exit 2 ;;
esac
