#!/bin/sh
# Checks every CBOR item of every vector in proto/vectors/ against proto/lobbycast.cddl.
#
# Needs the `cddl` tool (`cargo install cddl`); the tests do not. Items of vectors that decode
# (`*.ok.cbor`) must match the schema. Items of malformed or invalid vectors (`*.bad.cbor`)
# should not; those that do are listed as notes: they break a limit CDDL cannot state
# (frag-index < frag-count, first <= last), or the tool reads them leniently.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
items=$(mktemp -d)
trap 'rm -rf "$items"' EXIT
LOBBYCAST_VECTOR_ITEMS="$items" cargo test -q --manifest-path "$root/Cargo.toml" \
    --test vectors packet_vectors >/dev/null
fail=0
count=0
for f in "$items"/*.cbor; do
    count=$((count + 1))
    if cddl --ci validate --cddl "$root/proto/lobbycast.cddl" --cbor "$f" >/dev/null 2>&1; then
        matches=yes
    else
        matches=no
    fi
    name=$(basename "$f")
    case "$name" in
    *.ok.cbor) [ "$matches" = yes ] || { echo "FAIL, does not match the schema: $name"; fail=1; } ;;
    *.bad.cbor) [ "$matches" = no ] || echo "note, matches the schema: $name" ;;
    esac
done
echo "$count items checked"
exit "$fail"
