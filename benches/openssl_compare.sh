#!/usr/bin/env bash
# Side-by-side throughput: opensec (release build of `opensec/examples/speed.rs`)
# against `openssl speed`, same algorithms, same buffer sizes, run alternately
# so that both see the same machine load. Prints one table row per algorithm
# and size: ours MB/s, openssl MB/s (MB = 10^6 bytes) and the ratio ours/openssl.
#
# usage: benches/openssl_compare.sh [--quick] [--seconds S] [--rounds R] [--sizes 64,200,1400,8192] [ALG...]
#   --quick     only the targets: aes-128-cbc-enc, aes-128-cbc-dec, hmac-sha1-96 at 1400 B
#   --seconds   seconds per single measurement (integer, default 1)
#   --rounds    measurements per side; the best of each side is kept (default 3),
#               because the machine is shared and noise only ever slows a run down
#   ALG         any of `speed --list` (default: all)
#
# Both sides process the same buffer in place again and again, one call per
# buffer (openssl: one EVP_*Update / MAC init-update-final per buffer). For
# block ciphers both sides get the size rounded down to whole blocks (column
# `len`, e.g. 1392 for AES at 1400: ESP pads to the block size, and an
# unaligned size would put openssl on its partial-block path).
# Both sides divide by CPU time, not wall time (openssl speed: user time by
# default; ours: thread CPU time), so other load on the machine matters less.
set -euo pipefail

cd "$(dirname "$0")/.."

seconds=1
rounds=3
sizes="64,200,1400,8192"
algs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) algs=(aes-128-cbc-enc aes-128-cbc-dec hmac-sha1-96); sizes=1400 ;;
        --seconds) seconds="$2"; shift ;;
        --rounds) rounds="$2"; shift ;;
        --sizes) sizes="$2"; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) algs+=("$1") ;;
    esac
    shift
done

command -v openssl >/dev/null || { echo "openssl not found in PATH" >&2; exit 1; }

cargo build --quiet --release -p opensec --example speed
speed=target/release/examples/speed
if [ ${#algs[@]} -eq 0 ]; then
    mapfile -t algs < <("$speed" --list)
fi

# The `openssl speed` arguments for each of our algorithm names (empty: openssl
# has no such benchmark).
openssl_args() {
    case "$1" in
        aes-128-cbc-enc) echo "-evp aes-128-cbc" ;;
        aes-128-cbc-dec) echo "-evp aes-128-cbc -decrypt" ;;
        aes-192-cbc-enc) echo "-evp aes-192-cbc" ;;
        aes-192-cbc-dec) echo "-evp aes-192-cbc -decrypt" ;;
        aes-256-cbc-enc) echo "-evp aes-256-cbc" ;;
        aes-256-cbc-dec) echo "-evp aes-256-cbc -decrypt" ;;
        # single DES lives in the legacy provider of OpenSSL 3
        des-cbc-enc) echo "-provider legacy -provider default -evp des-cbc" ;;
        des-cbc-dec) echo "-provider legacy -provider default -evp des-cbc -decrypt" ;;
        des-ede3-cbc-enc) echo "-evp des-ede3-cbc" ;;
        des-ede3-cbc-dec) echo "-evp des-ede3-cbc -decrypt" ;;
        hmac-md5-96) echo "-hmac md5" ;;
        hmac-sha1-96) echo "-hmac sha1" ;;
        hmac-sha256-128) echo "-hmac sha256" ;;
        aes-cmac-96) echo "-cmac aes-128-cbc" ;;
        *) echo "" ;;
    esac
}

block_size() { # alg -> cipher block size (1 for MACs)
    case "$1" in
        aes-*-cbc-*) echo 16 ;;
        des-*) echo 8 ;;
        *) echo 1 ;;
    esac
}

ours_bps() { # alg size -> bytes/s
    "$speed" --seconds "$seconds" --sizes "$2" "$1" 2>/dev/null | awk -F: '/^ours:/ {print $4}'
}

openssl_bps() { # alg size -> bytes/s
    local args
    args=$(openssl_args "$1")
    [ -n "$args" ] || { echo ""; return; }
    # shellcheck disable=SC2086
    openssl speed -mr -seconds "$seconds" -bytes "$2" $args 2>/dev/null | awk -F: '/^\+F:/ {print $4}' | tail -n 1
}

max() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "" || a + 0 >= b + 0) print a; else print b }'; }

echo "# $(date -u +%FT%TZ) $(openssl version | head -n 1)"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); flags: $(grep -o -w -E 'aes|sha_ni|avx2|vaes|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "# command: $0 --seconds $seconds --rounds $rounds --sizes $sizes ${algs[*]}"
echo "# best of $rounds runs of ${seconds}s per side, run alternately"
printf '%-18s %6s %6s %12s %12s %8s\n' algorithm size len "ours_MB/s" "openssl_MB/s" ratio
IFS=, read -r -a size_list <<<"$sizes"
for alg in "${algs[@]}"; do
    bs=$(block_size "$alg")
    for size in "${size_list[@]}"; do
        len=$((size - size % bs))
        ours=""
        theirs=""
        for _ in $(seq "$rounds"); do
            o=$(ours_bps "$alg" "$len")
            ours=$(max "$o" "$ours")
            if [ -n "$(openssl_args "$alg")" ]; then
                t=$(openssl_bps "$alg" "$len")
                [ -n "$t" ] && theirs=$(max "$t" "$theirs")
            fi
        done
        awk -v alg="$alg" -v size="$size" -v len="$len" -v o="$ours" -v t="$theirs" 'BEGIN {
            if (t == "" || t + 0 == 0) {
                printf "%-18s %6d %6d %12.1f %12s %8s\n", alg, size, len, o / 1e6, "n/a", "n/a"
            } else {
                printf "%-18s %6d %6d %12.1f %12.1f %8.2f\n", alg, size, len, o / 1e6, t / 1e6, o / t
            }
        }'
    done
done
