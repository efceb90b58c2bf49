#!/usr/bin/env bash
# The cost of protection and the gain of SigComp for the bundled UA, in one
# run:
#
#   benches/imsua_demo.sh [RUNS] [--pin] [--groups G]
#
# 1. Registration time: RUNS (default 20) `imsua register` against a pcscf
#    with --ipsec none (AKA, no sec-agree, no SigComp) and RUNS against a
#    pcscf with --ipsec udp --sigcomp (AKA, sec-agree, four SAs, ESP in
#    UDP, SigComp), alternating, with RUNS against --ipsec udp without
#    SigComp in between (what ESP and sec-agree cost alone); the time is
#    the UA's own (the `us` of its registered event: first REGISTER to the
#    200), so process start-up is not counted. Prints the medians and the
#    ratios to none (target for udp+sigcomp <= 1.5), and the same for the
#    whole `imsua register` run (start to exit, with the de-registration).
#    The runs are split into G groups (default 5), each against three
#    freshly started pcscfs, as a long-lived process's times differ from
#    one process to the next: one set of pcscfs for the whole run gave
#    ratios of 2.05, 1.93 and 1.59 in three consecutive runs, and six
#    groups of one run 1.63 to 2.01, so one set is one sample. Also prints
#    each group's ratio.
# 2. Bytes of the whole demo: `imsua demo` with SigComp and with
#    --no-sigcomp, each as a ratio of the SIP they carry (UDP payloads
#    before ESP, from the three processes' stopped events), and the IP
#    bytes of the two captures (every packet, ESP included) as a ratio.
#
# With --pin the pcscfs run on CPU 1 and each imsua on CPU 0 (taskset), the
# same for every mode: on a 2-CPU machine the scheduler otherwise sometimes
# puts both on one CPU, where the woken receiver preempts the sender, and
# the medians move by 20 % from run to run.
#
# Needs a release build of imsua and pcscf (built here). Everything on
# 127.0.0.1. Only the ratios within one run mean anything.
set -u
cd "$(dirname "$0")/.."
runs=20
groups=5
pin_p=() pin_u=()
usage() { echo "usage: $0 [RUNS] [--pin] [--groups G]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//; /^set -u/d'; exit 0 ;;
    --pin) pin_p=(taskset -c 1) pin_u=(taskset -c 0) ;;
    --groups)
      shift
      case "${1:-}" in *[!0-9]*|''|0) usage ;; esac
      groups=$1 ;;
    *[!0-9]*|'') usage ;;
    *) runs=$1 ;;
  esac
  shift
done
[ "$groups" -le "$runs" ] || { echo "--groups must not exceed RUNS ($runs)" >&2; exit 2; }
cargo build --release -q -p tools --bin pcscf --bin imsua || exit 2
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
K=fec86ba6eb707ed08905757b1bb44b8f
OP=dbc59adcb6f9a0ef735477b7fadf8374
{
  echo 'realm = "ims.example.org"'
  for u in bob; do
    printf '[[subscriber]]\nimpi = "%s@ims.example.org"\nimpus = ["sip:%s@ims.example.org"]\nk = "%s"\nop = "%s"\namf = "725c"\nsqn = "000000000020"\n' "$u" "$u" "$K" "$OP"
  done
} > "$work/subs.toml"
B=target/release
start_pcscf() { # name, args... (run in this shell, not in $(...), so cleanup sees its pid)
  local name=$1; shift
  "${pin_p[@]}" "$B/pcscf" --subscribers "$work/subs.toml" --listen 127.0.0.1:0 --quiet "$@" > "$work/$name.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '"listening"' "$work/$name.out" 2>/dev/null && break
    sleep 0.05
  done
}
address_of() { sed -n 's/.*"event": "listening", "address": "\([^"]*\)".*/\1/p' "$work/$1.out" | head -1; }
U=(--impi bob@ims.example.org --impu sip:bob@ims.example.org --k "$K" --op "$OP")
echo "registration time, $runs runs each, alternating, in $groups groups of fresh pcscfs"
for g in $(seq "$groups"); do
  pids=()
  start_pcscf plain --ipsec none
  start_pcscf prot --ipsec udp --port-c 0 --port-s 0 --sigcomp
  start_pcscf esp --ipsec udp --port-c 0 --port-s 0
  plain=$(address_of plain)
  prot=$(address_of prot)
  esp=$(address_of esp)
  [ -n "$plain" ] && [ -n "$prot" ] && [ -n "$esp" ] || { echo "a pcscf did not start" >&2; exit 2; }
  # This group's share of the runs (the first ones take the remainder).
  n=$(( runs / groups + (g <= runs % groups ? 1 : 0) ))
  for i in $(seq "$n"); do
    t0=$(date +%s%N)
    "${pin_u[@]}" "$B/imsua" "${U[@]}" --pcscf "$plain" --ipsec none register | grep '"registered"' | sed "s/^/$g /" >> "$work/plain.ms" || { echo "group $g run $i: registration failed (none)" >&2; exit 1; }
    t1=$(date +%s%N)
    "${pin_u[@]}" "$B/imsua" "${U[@]}" --pcscf "$prot" --ipsec udp --sigcomp register | grep '"registered"' | sed "s/^/$g /" >> "$work/prot.ms" || { echo "group $g run $i: registration failed (udp+sigcomp)" >&2; exit 1; }
    t2=$(date +%s%N)
    "${pin_u[@]}" "$B/imsua" "${U[@]}" --pcscf "$esp" --ipsec udp register | grep '"registered"' | sed "s/^/$g /" >> "$work/esp.ms" || { echo "group $g run $i: registration failed (udp)" >&2; exit 1; }
    echo $(( (t1 - t0) / 1000 )) >> "$work/plain.wall"
    echo $(( (t2 - t1) / 1000 )) >> "$work/prot.wall"
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  echo "  group $g of $groups: $n runs each"
done
pids=()
echo "the demo, with and without SigComp"
"$B/imsua" demo --json --pcap "$work/sc.pcap" > "$work/sc.out" || { echo "the demo failed" >&2; tail -20 "$work/sc.out"; exit 1; }
"$B/imsua" demo --json --no-sigcomp --pcap "$work/plain.pcap" > "$work/nosc.out" || { echo "the demo without SigComp failed" >&2; exit 1; }
python3 - "$work" <<'PYEOF'
import json, statistics, struct, sys
w = sys.argv[1]
def ms(f, group=None):
    # Lines: "<group> <registered event>".
    rows = [l.split(" ", 1) for l in open(f"{w}/{f}")]
    return [json.loads(j)["us"] / 1000 for g, j in rows if group is None or g == group]
a, b, e = ms("plain.ms"), ms("prot.ms"), ms("esp.ms")
ma, mb, me = statistics.median(a), statistics.median(b), statistics.median(e)
print(f"  --ipsec none:            median {ma:.3f} ms (min {min(a):.3f}, max {max(a):.3f})")
print(f"  --ipsec udp:             median {me:.3f} ms (min {min(e):.3f}, max {max(e):.3f})")
print(f"  --ipsec udp --sigcomp:   median {mb:.3f} ms (min {min(b):.3f}, max {max(b):.3f})")
print(f"  ratio udp / none: {me / ma:.2f}x (ESP and sec-agree alone)")
print(f"  ratio udp+sigcomp / none: {mb / ma:.2f}x (target <= 1.5)")
groups = sorted({l.split(" ", 1)[0] for l in open(f"{w}/plain.ms")}, key=int)
if len(groups) > 1:
    per = [statistics.median(ms("prot.ms", g)) / statistics.median(ms("plain.ms", g)) for g in groups]
    print(f"  ratio udp+sigcomp / none by group of fresh pcscfs: lowest {min(per):.2f}x, highest {max(per):.2f}x ({', '.join(f'{r:.2f}' for r in per)})")
wa = [int(l) / 1000 for l in open(f"{w}/plain.wall")]
wb = [int(l) / 1000 for l in open(f"{w}/prot.wall")]
print(f"  whole run of imsua register (start, register, de-register, exit): none {statistics.median(wa):.1f} ms, udp+sigcomp {statistics.median(wb):.1f} ms: {statistics.median(wb) / statistics.median(wa):.2f}x")
def pcap_bytes(f):
    d = open(f, "rb").read()
    off, total, n = 24, 0, 0
    while off + 16 <= len(d):
        incl = struct.unpack("<I", d[off + 8:off + 12])[0]
        total += incl; n += 1; off += 16 + incl
    return total, n
sc = json.loads(open(f"{w}/sc.out").read().splitlines()[-1])
nosc = json.loads(open(f"{w}/nosc.out").read().splitlines()[-1])
print(f"  demo with SigComp:    {sc['sent_bytes']} B on the wire for {sc['sent_sip_bytes']} B of SIP: {100 * sc['sent_bytes'] / sc['sent_sip_bytes']:.1f} %")
print(f"  demo without SigComp: {nosc['sent_bytes']} B on the wire for {nosc['sent_sip_bytes']} B of SIP")
print(f"  UDP payloads, with / without SigComp: {100 * sc['sent_bytes'] / nosc['sent_bytes']:.1f} %")
(ip_sc, n_sc), (ip_no, n_no) = pcap_bytes(f"{w}/sc.pcap"), pcap_bytes(f"{w}/plain.pcap")
print(f"  IP bytes of the captures (ESP included): {ip_sc} ({n_sc} packets) vs {ip_no} ({n_no} packets): {100 * ip_sc / ip_no:.1f} %")
PYEOF
