#!/usr/bin/env bash
# Times two versions of the library in one process (benchmarks/BatchNorm.Ab): each git revision's src/BatchNorm is built
# with the driver (benchmarks/BatchNorm.AbDriver), and the two builds take turns on the same arrays.
#   benchmarks/ab.sh REV_A REV_B [--shape 256,1024] [--type float|double] [--modes inference,training,backward] [--axis 1] [--rounds 12]
# REV_B may be "." for the working tree. Run it several times: each process gets other pages, the comparison within one
# does not. Tiered compilation is off, so both builds run their optimized code from the first round.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,7p' "$0"; exit 2; }
a=$1; b=$2; shift 2
work=$(mktemp -d)
cleanup() {
  for side in a b; do
    [ -d "$work/$side-src" ] && git -C "$root" worktree remove --force "$work/$side-src" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
for side in a b; do
  rev=$a; [ "$side" = b ] && rev=$b
  if [ "$rev" = . ]; then
    project="$root/src/BatchNorm/BatchNorm.csproj"
  else
    git -C "$root" worktree add --detach "$work/$side-src" "$rev" >/dev/null 2>&1
    project="$work/$side-src/src/BatchNorm/BatchNorm.csproj"
  fi
  dotnet build -c Release "$root/benchmarks/BatchNorm.AbDriver" -p:BatchNormProject="$project" -o "$work/$side" >/dev/null
done
dotnet build -c Release "$root/benchmarks/BatchNorm.Ab" >/dev/null
DOTNET_TieredCompilation=0 dotnet "$root/benchmarks/BatchNorm.Ab/bin/Release/net10.0/BatchNorm.Ab.dll" --a "$work/a" --b "$work/b" "$@"
