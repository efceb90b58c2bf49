#!/usr/bin/env bash
# ipsecd against plain veth and against other userspace tunnels, in one run.
#
#   benches/ipsecd_compare.sh [SECONDS] [--runs N] [--no-anchors] [--strace]
#
# Two network namespaces (ipd-a 10.98.0.1, ipd-b 10.98.0.2) joined by a veth
# pair. For each configuration it measures
#   - iperf3 TCP throughput A -> B for SECONDS (receiver side, Mbit/s);
#   - a 200-byte UDP flood A -> B for SECONDS/2 (iperf3 -u -b 0 -l 172):
#     datagrams per second the receiver got;
#   - a 300-byte UDP request/response loop for SECONDS/2: transactions/s and
#     the median round-trip time of the exchanges (one client, one server,
#     python3; the interpreter's own cost is the same in every row, so the
#     "added" RTT column, row median minus plain veth median, is what the
#     tunnel costs; the median, because on a shared machine a preempted
#     thread adds milliseconds to a few exchanges; p99 goes to stderr);
# for (a) plain veth, (b) two ipsecd (release build) protecting everything
# between A and B in ESP transport mode with NULL+HMAC-SHA1-96,
# AES-128-CBC+HMAC-SHA1-96 (raw ESP; ESP in UDP: aes128-udp; raw ESP with
# both daemons polling for 200 us after each packet, --poll-us 200:
# aes128-poll) and 3DES-CBC+HMAC-MD5-96, and (c) the anchors of
# ../shared/anchors (or $IMSEC_ANCHORS): strongSwan's userspace libipsec with the same
# algorithms (ESP in UDP, tunnel mode, via IKEv2) and boringtun (WireGuard,
# one thread). The anchors measure TCP and the request/response loop (the
# anchor script run a second time with its iperf3 pair swapped for the loop,
# through the tunnel it sets up), which puts the RR target beside what
# other userspace tunnels reach on the same machine. Each configuration is measured
# --runs times in a row (default 3) and the median run is reported; the
# spread goes to stderr. For the ipsecd rows the script also prints the
# CPU time both daemons used per request/response exchange (from
# /proc/PID/stat around the loop), which is what polling costs. Every
# figure is printed with its
# ratio to (a) and to the anchor (libipsec with the same algorithms;
# boringtun for AES). Only ratios within one run mean anything: the machine
# is shared and noisy.
#
# --strace: additionally count system calls per packet of both daemons
# (AES-128-CBC, a 20 000-datagram 300-byte UDP flood; strace -c -f): all
# calls of the daemon over the packets it handled.
#
# Needs root, iproute2, nftables, iperf3, python3; the anchors need
# strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins tcpdump,
# boringtun-cli (cargo install boringtun-cli) and wireguard-tools; a missing
# anchor is reported and the rest still printed.
set -u
cd "$(dirname "$0")/.."
secs=10
runs=3
anchors=1
do_strace=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-anchors) anchors=0 ;;
    --strace) do_strace=1 ;;
    --runs) runs=${2:-}; shift ;;
    [0-9]*) secs=$1 ;;
    *) echo "usage: $0 [SECONDS] [--runs N] [--no-anchors] [--strace]" >&2; exit 2 ;;
  esac
  shift
done
case "$runs" in ''|*[!0-9]*|0) echo "--runs needs a positive number" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces)" >&2; exit 2; }
for p in ip nft iperf3 python3; do
  command -v $p >/dev/null || { echo "missing $p" >&2; exit 2; }
done
cargo build -q --release -p tools --bin ipsecd --bin setkey || exit 2
BIN=$PWD/target/release
ANCH=${IMSEC_ANCHORS:-$PWD/../shared/anchors}   # the anchor scripts beside the checkout
A=ipd-a; B=ipd-b; AA=10.98.0.1; BB=10.98.0.2
tmp=$(mktemp -d)
pids=()

stop_pids() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  pids=()
}
cleanup() {
  stop_pids
  ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add $A; ip netns add $B
ip link add ipd-va netns $A type veth peer name ipd-vb netns $B
ip -n $A addr add $AA/24 dev ipd-va; ip -n $B addr add $BB/24 dev ipd-vb
for n in $A $B; do ip -n $n link set lo up; done
ip -n $A link set ipd-va up; ip -n $B link set ipd-vb up

cat > "$tmp/rr.py" <<'EOF'
import socket, sys, time
if sys.argv[1] == "server":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[2], 7000)); s.settimeout(float(sys.argv[3]))
    try:
        while True:
            d, a = s.recvfrom(2048); s.sendto(d, a)
    except socket.timeout:
        pass
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if len(sys.argv) > 4:  # source address (an anchor's traffic selector)
        s.bind((sys.argv[4], 0))
    s.connect((sys.argv[2], 7000)); s.settimeout(1.0)
    m = b"r" * 300
    for _ in range(200):  # warm-up (ARP, caches)
        s.send(m); s.recv(2048)
    n = 0; lost = 0; rtts = []
    end = time.perf_counter() + float(sys.argv[3]); t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        if t >= end:
            break
        s.send(m)
        try:
            s.recv(2048); n += 1
            rtts.append(time.perf_counter() - t)
        except socket.timeout:
            lost += 1
    dt = time.perf_counter() - t0
    rtts.sort()
    med = rtts[len(rtts) // 2] * 1e6 if rtts else 0
    p99 = rtts[len(rtts) * 99 // 100] * 1e6 if rtts else 0
    print("%.0f %.1f %.1f %d" % (n / dt, med, p99, lost))
EOF

# The median of its arguments (numbers; anything else counts as 0).
median() { printf '%s\n' "$@" | awk '{ print ($1 ~ /^[0-9.]+$/) ? $1 : 0 }' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

HZ=$(getconf CLK_TCK)
# CPU time (user + system, clock ticks) the running daemons used so far.
daemon_ticks() {
  local t=0 p f
  for p in "${pids[@]}"; do
    f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + ${f% *} + ${f#* }))
  done
  echo $t
}

# One run of every measurement -> sets TPUT RR RTT P99 FLOOD CPU
measure_once() {
  ip netns exec $B timeout $((secs + 20)) iperf3 -s -B $BB -1 >/dev/null 2>&1 &
  sleep 0.5
  TPUT=$(ip netns exec $A timeout $((secs + 15)) iperf3 -c $BB -t "$secs" -f m 2>/dev/null |
         awk '/receiver/ {print $7}')
  TPUT=${TPUT:-0}
  ip netns exec $B timeout $((secs + 5)) python3 "$tmp/rr.py" server $BB $((secs + 2)) &
  local srv=$!
  sleep 0.3
  local c0; c0=$(daemon_ticks)
  read -r RR RTT P99 _ < <(ip netns exec $A python3 "$tmp/rr.py" client $BB "$(( (secs + 1) / 2 ))")
  local c1; c1=$(daemon_ticks)
  kill $srv 2>/dev/null; wait $srv 2>/dev/null
  RR=${RR:-0}; RTT=${RTT:-0}; P99=${P99:-0}
  # The daemons' CPU time per exchange, in microseconds.
  CPU=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v rr="$RR" -v s="$(( (secs + 1) / 2 ))" -v np="${#pids[@]}" \
    'BEGIN { if (np > 0 && rr + 0 > 0) printf "%.1f", d * 1e6 / hz / (rr * s); else print "-" }')
  # 200-byte datagrams (172 bytes of UDP payload) as fast as iperf3 sends.
  local fs=$(( (secs + 1) / 2 ))
  ip netns exec $B timeout $((fs + 20)) iperf3 -s -B $BB -1 >/dev/null 2>&1 &
  sleep 0.5
  FLOOD=$(ip netns exec $A timeout $((fs + 15)) iperf3 -c $BB -u -b 0 -l 172 -t "$fs" --json 2>/dev/null |
          python3 -c 'import json,sys
try:
    e = json.load(sys.stdin)["end"]; s = e.get("sum_received") or e["sum"]
    print("%.0f" % ((s["packets"] - s.get("lost_packets", 0)) / s["seconds"]))
except Exception:
    print(0)')
  FLOOD=${FLOOD:-0}
}

# measure -> TPUT RR RTT P99 FLOOD: the medians of $runs runs in a row
measure() {
  local t=() r=() l=() p=() f=() c=()
  for _ in $(seq "$runs"); do
    measure_once
    t+=("$TPUT"); r+=("$RR"); l+=("$RTT"); p+=("$P99"); f+=("$FLOOD"); c+=("$CPU")
  done
  echo "  runs: TCP ${t[*]} Mbit/s; RR ${r[*]}/s; flood ${f[*]} pkt/s" >&2
  TPUT=$(median "${t[@]}"); RR=$(median "${r[@]}"); RTT=$(median "${l[@]}")
  P99=$(median "${p[@]}"); FLOOD=$(median "${f[@]}")
  [ "$CPU" = - ] || CPU=$(median "${c[@]}")
}

conf() {  # side "ENC [KEY]" "AUTH KEY" [udp]
  local me peer o i sa=esp mp="" pp=""
  if [ "$1" = a ]; then me=$AA peer=$BB o=0x1001 i=0x1002; else me=$BB peer=$AA o=0x1002 i=0x1001; fi
  [ "${4:-}" = udp ] && { sa=esp-udp; mp="[4500]"; pp="[4500]"; }
  cat <<EOF
spdadd $me $peer any -P out ipsec esp/transport//require;
spdadd $peer $me any -P in ipsec esp/transport//require;
add $me$mp $peer$pp $sa $o -m transport -r 32 -E $2 -A $3;
add $peer$pp $me$mp $sa $i -m transport -r 32 -E $2 -A $3;
EOF
}

start_daemons() {  # "ENC [KEY]" "AUTH KEY" [udp]; fails if a daemon does not answer
  for s in a b; do
    conf $s "$@" > "$tmp/$s.conf"
    # shellcheck disable=SC2086 # $XTRA: extra daemon options of the row
    ip netns exec ipd-$s "$BIN/ipsecd" --foreground --tun ipd-t$s --socket "$tmp/$s.sock" \
      --state-file "$tmp/$s.state" -f "$tmp/$s.conf" $XTRA > "$tmp/$s.log" 2>&1 &
    pids+=($!)
  done
  for s in a b; do
    local ok=0
    for _ in $(seq 100); do "$BIN/setkey" -s "$tmp/$s.sock" -D >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
    [ $ok = 1 ] || { echo "ipsecd $s did not start:" >&2; cat "$tmp/$s.log" >&2; return 1; }
  done
}

declare -A T R L F S C
XTRA=""
measure; T[plain]=$TPUT; R[plain]=$RR; L[plain]=$RTT; F[plain]=$FLOOD
echo "plain veth: $TPUT Mbit/s, $RR RR/s, RTT median $RTT us, p99 $P99 us, flood $FLOOD pkt/s" >&2

AESK=0x00112233445566778899aabbccddeeff
DESK=0x0123456789abcdef23456789abcdef01456789abcdef0123
SHAK=0x0102030405060708090a0b0c0d0e0f1011121314
MD5K=0x0102030405060708090a0b0c0d0e0f10
# aes128-udp: the same SAs as aes128-sha1, carried in UDP 4500 (RFC 3948,
# esp-udp), as both anchors carry theirs; runs of packets then cross the
# kernel in one UDP GSO send and one UDP_GRO read.
# aes128-poll: aes128-sha1 with --poll-us 200 (docs/ipsecd.md, Polling):
# latency for CPU time.
declare -A ENC=([null-sha1]="null" [aes128-sha1]="aes-cbc $AESK" [aes128-poll]="aes-cbc $AESK" [aes128-udp]="aes-cbc $AESK" [3des-md5]="des-ede3-cbc $DESK")
declare -A AUTH=([null-sha1]="hmac-sha1 $SHAK" [aes128-sha1]="hmac-sha1 $SHAK" [aes128-poll]="hmac-sha1 $SHAK" [aes128-udp]="hmac-sha1 $SHAK" [3des-md5]="hmac-md5 $MD5K")
declare -A CARRY=([aes128-udp]=udp)
declare -A XARGS=([aes128-poll]="--poll-us 200")
ROWS="null-sha1 aes128-sha1 aes128-poll aes128-udp 3des-md5"
for alg in $ROWS; do
  XTRA=${XARGS[$alg]:-}
  if ! start_daemons "${ENC[$alg]}" "${AUTH[$alg]}" "${CARRY[$alg]:-}"; then
    T[$alg]=failed; R[$alg]=failed; L[$alg]=failed; F[$alg]=failed; C[$alg]=-; stop_pids; continue
  fi
  measure
  # The row counts only if the traffic really went through ipsecd as ESP.
  prot=$("$BIN/setkey" -s "$tmp/a.sock" --stats | awk '/^out_protected/ {print $2}')
  nosa=$("$BIN/setkey" -s "$tmp/a.sock" --stats | awk '/^out_no_sa/ {print $2}')
  if [ "${prot:-0}" -lt 1000 ]; then
    echo "ipsecd $alg: only ${prot:-0} packets protected: row invalid" >&2
    TPUT=invalid; RR=invalid; RTT=invalid; FLOOD=invalid
  fi
  T[$alg]=$TPUT; R[$alg]=$RR; L[$alg]=$RTT; F[$alg]=$FLOOD; C[$alg]=$CPU
  echo "ipsecd $alg: $TPUT Mbit/s, $RR RR/s, RTT median $RTT us, p99 $P99 us, flood $FLOOD pkt/s, daemons' CPU $CPU us per exchange ($prot packets protected by A, $nosa dropped for want of an SA)" >&2
  if [ $do_strace = 1 ] && [ $alg = aes128-sha1 ] && command -v strace >/dev/null; then
    ip netns exec $B timeout 30 python3 -c "
import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('$BB',7001)); s.settimeout(3)
try:
    while True: s.recv(2048)
except socket.timeout: pass" &
    sink=$!
    sleep 0.3
    a_rx0=$("$BIN/setkey" -s "$tmp/a.sock" --stats | awk '/^tun_rx/ {print $2}')
    b_rx0=$("$BIN/setkey" -s "$tmp/b.sock" --stats | awk '/^in_rx/ {print $2}')
    st=()
    for i in 0 1; do timeout 20 strace -c -f -q -o "$tmp/strace$i" -p "${pids[$i]}" & st+=($!); done
    sleep 1
    ip netns exec $A python3 -c "
import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.connect(('$BB',7001))
for i in range(20000):
    s.send(b'x'*300)
    if i % 50 == 0: time.sleep(0.001)"
    sleep 1
    a_rx=$("$BIN/setkey" -s "$tmp/a.sock" --stats | awk '/^tun_rx/ {print $2}')
    b_rx=$("$BIN/setkey" -s "$tmp/b.sock" --stats | awk '/^in_rx/ {print $2}')
    for p in "${st[@]}"; do kill -INT "$p" 2>/dev/null; done
    for p in "${st[@]}"; do wait "$p" 2>/dev/null; done
    wait $sink 2>/dev/null
    # strace's summary: the "total" line's calls column (4th).
    calls() { awk '$NF == "total" { print $4 }' "$1"; }
    per() { awk -v c="$1" -v n="$2" 'BEGIN { if (n + 0 > 0) printf "%.2f", c / n; else print "n/a" }'; }
    S[a]=$(per "$(calls "$tmp/strace0")" $(( ${a_rx:-0} - ${a_rx0:-0} )))
    S[b]=$(per "$(calls "$tmp/strace1")" $(( ${b_rx:-0} - ${b_rx0:-0} )))
    echo "syscalls, daemon A (sender, $(( ${a_rx:-0} - ${a_rx0:-0} )) packets from the TUN): ${S[a]} per packet" >&2; grep -E "calls|total|read|write|send|recv|poll|futex" "$tmp/strace0" >&2
    echo "syscalls, daemon B (receiver, $(( ${b_rx:-0} - ${b_rx0:-0} )) ESP packets): ${S[b]} per packet" >&2; grep -E "calls|total|read|write|send|recv|poll|futex" "$tmp/strace1" >&2
  fi
  stop_pids
done

# The receiver's rate of iperf3 output, in Mbit/s whatever unit it chose.
mbits() {
  awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /bits\/sec$/) {
         u = $(i + 1); v = $i
         if (u ~ /^G/) v *= 1000; else if (u ~ /^K/) v /= 1000; else if (u ~ /^bits/) v /= 1e6
         printf "%.0f\n", v; exit } }'
}

# The request/response loop through an anchor: its script with the iperf3
# server and client lines replaced by rr.py's (the same addresses); prints
# "RR/s RTT-median p99 lost", or nothing if the script no longer has the
# lines this expects.
anchor_rr() {  # script args...
  local script=$1; shift
  local rs=$(( (secs + 1) / 2 ))
  sed -e "s#iperf3 -s -B \([0-9.]*\) -1 >/dev/null 2>&1 &#python3 $tmp/rr.py server \1 \$((secs + 2)) \&#" \
      -e "s#iperf3 -c \([0-9.]*\) -B \([0-9.]*\) -t \"\$secs\" | tail -4#python3 $tmp/rr.py client \1 $rs \2#" \
      -e "s#^here=.*#here=$ANCH#" "$script" > "$tmp/anchor-rr.sh"
  grep -q "rr.py client" "$tmp/anchor-rr.sh" && grep -q "rr.py server" "$tmp/anchor-rr.sh" || return 0
  # Reads to the end: the script must not die of a closed pipe before its cleanup.
  bash "$tmp/anchor-rr.sh" "$@" 2>/dev/null | awk 'NF == 4 && $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9.]+$/ && !n++'
}
# anchor_measure NAME SCRIPT ARGS...: medians of $runs runs of each into
# AT[NAME] (TCP Mbit/s), AR[NAME] (RR/s) and AL[NAME] (RTT median, us).
anchor_measure() {
  local name=$1; shift
  local vs=() r=() l=() rr
  for _ in $(seq "$runs"); do
    vs+=("$(bash "$@" 2>/dev/null | mbits)")
  done
  for _ in $(seq "$runs"); do
    rr=$(anchor_rr "$@")
    r+=("$(echo "$rr" | awk '{print $1}')"); l+=("$(echo "$rr" | awk '{print $2}')")
  done
  AT[$name]=$(median "${vs[@]}"); AR[$name]=$(median "${r[@]}"); AL[$name]=$(median "${l[@]}")
  [ "${AT[$name]}" = 0 ] && AT[$name]=
  [ "${AR[$name]}" = 0 ] && { AR[$name]=; AL[$name]=; }
  echo "$name: ${AT[$name]:-failed} Mbit/s (runs: ${vs[*]}), ${AR[$name]:-failed} RR/s, RTT median ${AL[$name]:-n/a} us (runs: ${r[*]})" >&2
}

declare -A AT AR AL
if [ $anchors = 1 ]; then
  if command -v swanctl >/dev/null && [ -x /usr/lib/ipsec/charon ] && command -v tcpdump >/dev/null; then
    for alg in null-sha1 aes128-sha1 3des-md5; do
      anchor_measure $alg "$ANCH/libipsec_bench.sh" $alg "$secs" "$tmp/lb-$alg"
    done
  else
    echo "anchor strongSwan libipsec UNAVAILABLE (needs strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins tcpdump)" >&2
  fi
  if command -v boringtun-cli >/dev/null && command -v wg >/dev/null; then
    anchor_measure boringtun "$ANCH/boringtun_bench.sh" "$secs" 1
  else
    echo "anchor boringtun UNAVAILABLE (needs boringtun-cli: cargo install boringtun-cli; wg: wireguard-tools)" >&2
  fi
else
  echo "anchors skipped (--no-anchors)" >&2
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "n/a"; else printf "%.2fx", a / b }'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "n/a"; else printf "%+.1f", a - b }'; }

echo
echo "ipsecd_compare: median of $runs runs; $secs s per iperf3 TCP run, $(( (secs + 1) / 2 )) s of 300-byte UDP request/response and of 200-byte UDP flood, $(nproc) CPUs"
# The anchors' versions, since their figures move with them (boringtun's
# TCP rate has ranged from 455 to 946 Mbit/s on machines of this kind).
if [ $anchors = 1 ]; then
  sv=$(/usr/lib/ipsec/charon --version 2>/dev/null | head -1)
  bv=$(boringtun-cli --version 2>/dev/null | head -1)
  echo "anchors: ${sv:-strongSwan n/a}, ${bv:-boringtun n/a}"
fi
printf "%-30s %10s %8s %12s %12s %10s %8s %10s %9s %11s %8s\n" configuration "TCP Mbit/s" "x plain" "x libipsec" "x boringtun" "UDP RR/s" "x plain" "RTT med us" "added us" "flood pkt/s" "x plain"
printf "%-30s %10s %8s %12s %12s %10s %8s %10s %9s %11s %8s\n" "(a) plain veth" "${T[plain]}" 1.00x - - "${R[plain]}" 1.00x "${L[plain]}" +0.0 "${F[plain]}" 1.00x
for alg in $ROWS; do
  bt=-; anc=${alg/aes128-udp/aes128-sha1}; anc=${anc/aes128-poll/aes128-sha1}
  case $alg in aes128-*) bt=$(ratio "${T[$alg]}" "${AT[boringtun]:-}") ;; esac
  printf "%-30s %10s %8s %12s %12s %10s %8s %10s %9s %11s %8s\n" "(b) ipsecd $alg" "${T[$alg]}" \
    "$(ratio "${T[$alg]}" "${T[plain]}")" "$(ratio "${T[$alg]}" "${AT[$anc]:-}")" "$bt" \
    "${R[$alg]}" "$(ratio "${R[$alg]}" "${R[plain]}")" "${L[$alg]}" "$(sub "${L[$alg]}" "${L[plain]}")" \
    "${F[$alg]}" "$(ratio "${F[$alg]}" "${F[plain]}")"
done
for alg in null-sha1 aes128-sha1 3des-md5; do
  printf "%-30s %10s %8s %12s %12s %10s %8s %10s %9s %11s %8s\n" "(c) strongSwan libipsec $alg" "${AT[$alg]:-n/a}" \
    "$(ratio "${AT[$alg]:-}" "${T[plain]}")" 1.00x - "${AR[$alg]:-n/a}" "$(ratio "${AR[$alg]:-}" "${R[plain]}")" \
    "${AL[$alg]:-n/a}" "$(sub "${AL[$alg]:-}" "${L[plain]}")" n/a -
done
printf "%-30s %10s %8s %12s %12s %10s %8s %10s %9s %11s %8s\n" "(c) boringtun (1 thread)" "${AT[boringtun]:-n/a}" \
  "$(ratio "${AT[boringtun]:-}" "${T[plain]}")" - 1.00x "${AR[boringtun]:-n/a}" "$(ratio "${AR[boringtun]:-}" "${R[plain]}")" \
  "${AL[boringtun]:-n/a}" "$(sub "${AL[boringtun]:-}" "${L[plain]}")" n/a -
echo
echo "targets: AES-128-CBC+HMAC-SHA1-96 >= 3x libipsec: $(ratio "${T[aes128-sha1]}" "${AT[aes128-sha1]:-}") (in UDP $(ratio "${T[aes128-udp]}" "${AT[aes128-sha1]:-}")); >= 2x boringtun: $(ratio "${T[aes128-sha1]}" "${AT[boringtun]:-}") (in UDP $(ratio "${T[aes128-udp]}" "${AT[boringtun]:-}"))"
echo "         3DES+HMAC-MD5-96 >= 1.5x libipsec: $(ratio "${T[3des-md5]}" "${AT[3des-md5]:-}"); 300-byte UDP RR >= 0.7x plain veth: $(ratio "${R[aes128-sha1]}" "${R[plain]}") (libipsec $(ratio "${AR[aes128-sha1]:-}" "${R[plain]}"), boringtun $(ratio "${AR[boringtun]:-}" "${R[plain]}"))"
echo "         with --poll-us 200 (aes128-poll): RR $(ratio "${R[aes128-poll]}" "${R[plain]}") of plain veth; CPU time of both daemons per exchange: ${C[aes128-poll]:-n/a} us, ${C[aes128-sha1]:-n/a} us without polling"
echo "reported: 200-byte UDP flood through two ipsecd (AES): $(ratio "${F[aes128-sha1]}" "${F[plain]}") of plain veth; system calls per packet (--strace): sender ${S[a]:-n/a}, receiver ${S[b]:-n/a}"
