#!/usr/bin/env bash
# Builds librunq_ffi.a, compiles ffi/examples/pipeline.c and pipeline.cpp
# against it, and runs both under valgrind's memcheck. Exits nonzero on any
# memory error, any definite or possible leak, a crash, or a failed check
# inside a program. Installs valgrind with apt-get when it is missing.
# valgrind.supp hides two one-time thread-local allocations of the Rust
# runtime on the C program's main thread (see the comments there).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind not found; installing it with apt-get" >&2
    sudo=""
    if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind >&2
fi

cd "$root"
cargo build -p runq-ffi
target="$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
lib="$target/debug/librunq_ffi.a"
[[ -f "$lib" ]] || { echo "missing $lib" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/runq-valgrind.XXXXXX")"
trap 'rm -rf "$work"' EXIT

"${CC:-cc}" -std=c11 -Wall -Wextra -g -I "$here/include" "$here/examples/pipeline.c" \
    "$lib" -lpthread -ldl -lm -o "$work/pipeline_c"
"${CXX:-c++}" -std=c++17 -Wall -Wextra -g -I "$here/include" "$here/examples/pipeline.cpp" \
    "$lib" -lpthread -ldl -lm -o "$work/pipeline_cpp"

for program in pipeline_c pipeline_cpp; do
    echo "== valgrind $program"
    valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible \
        --suppressions="$here/valgrind.supp" --quiet "$work/$program"
done
echo "valgrind: both programs clean"
