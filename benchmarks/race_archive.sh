#!/usr/bin/env bash
# Pack the restart state of a race root (benchmarks/race.py, benchmarks/race4.py) into benchmarks/runs/NAME.tar.xz
# (RACE_ARCHIVE_DIR: another folder).
#
#   bash benchmarks/race_archive.sh benchmarks/out/race_it100 race_it100
#   tar -xJf benchmarks/runs/race_it100.tar.xz -C benchmarks/out     # puts it back; rerun the same `run` command
#
# Every file of the root goes in except temporary files and the Deep-VES updater's own ves/checkpoint.pt (the race
# runners restart from <run>/checkpoint.pt); colvars are thinned to one row per ps (rows whose time in ps is whole,
# the rule of benchmarks/long_runs.sh), so an analysis of a restored colvar must resample to 1 ps; THIN=0 keeps them
# whole (the tetrapeptide race: its WT-metaD and OPES frames lie half-way between whole ps, and its estimates
# reweight the colvar). EXCLUDE=SUB leaves the subfolder SUB of the root out (the tetrapeptide race's finished
# reference, archived on its own).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:?race root}; name=${2:?archive name}
[ -d "$src" ] || { echo "no folder $src" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
base=$(basename "$src")
thin=${THIN:-1}
excl=${EXCLUDE:+$base/$EXCLUDE/*}
(cd "$(dirname "$src")" && find "$base" -type f ! -name '*.tmp*' ! -name lock ! -path '*/ves/checkpoint.pt' ! -name colvar ! -path "${excl:-/}") |
    while read -r f; do mkdir -p "$tmp/$(dirname "$f")"; cp "$(dirname "$src")/$f" "$tmp/$f"; done
(cd "$(dirname "$src")" && find "$base" -type f -name colvar ! -path "${excl:-/}") | while read -r f; do
    mkdir -p "$tmp/$(dirname "$f")"
    awk -v thin="$thin" '/^#/ || thin == 0 {print; next} {r = $1 - int($1 + 0.5); if (r < 1e-6 && r > -1e-6) print}' \
        "$(dirname "$src")/$f" > "$tmp/$f"
done
dest=${RACE_ARCHIVE_DIR:-benchmarks/runs}
mkdir -p "$dest"
tar -cJf "$dest/.$name.tar.xz.tmp" -C "$tmp" "$base" && mv "$dest/.$name.tar.xz.tmp" "$dest/$name.tar.xz"
echo "$dest/$name.tar.xz: $(du -h "$dest/$name.tar.xz" | cut -f1)"
