#!/usr/bin/env bash
# pcscf against Kamailio under SIPp registration load, in one run.
#
#   benches/pcscf_load.sh [SECONDS] [--users N] [--kamailio-children C] [--fixed RATE]
#
# The highest registration rate (SIPp -r, registrations per second) that a
# registrar sustains for SECONDS (default 30) with zero failed
# registrations, over N subscribers (default 10 000; IMPIs user00000...
# from a SIPp -inf file, sequential, one K/OP or one password for all):
#   - pcscf --ipsec none, AKAv1-MD5 (SIPp computes RES from aka_K/aka_OP and
#     checks our AUTN); --xres-without-zero-byte, since SIPp takes RES as a
#     C string; --quiet (no ladder line per message: Kamailio logs none
#     either);
#   - Kamailio (Debian kamailio, tools/tests/ims/kamailio.cfg: usrloc in
#     memory, digest MD5 with qop=auth via pv_auth_check), C UDP workers
#     (default 1: pcscf is one thread).
# Same scenario shape for both (REGISTER, 401, REGISTER with credentials,
# 200). SIPp gets 4 MiB socket buffers (-buff_size; its default of 64 KiB
# overflowed from about 20 000 reg/s, so the load generator itself lost
# responses: retransmissions, then receive timeouts). A rate passes when SIPp reports every call successful (exit 0, no
# retransmission timeout: -recv_timeout 4s) and the run ends within
# SECONDS + 3 s. Search: double from 100/s until a failure, bisect to 5 %,
# with runs of SECONDS/3; then confirm the best at SECONDS, stepping down
# 5 % until it holds. Every run starts on a freshly started registrar: a
# run at overload leaves the pcscf a backlog and a million transactions
# that Timer J keeps for 32 s (RFC 3261 §17.2.2), which the next run
# would inherit (stateless, Kamailio here keeps none). Prints both rates, their ratio, SIPp's CPU time
# per registration in each confirming run (the load generator's own cost,
# which should be about the same for both) and the registrar's (all its
# processes, from /proc: user + system). On a small machine SIPp's own CPU
# bounds both rates (a SIPp at 35 us per registration saturates a CPU near
# 28 000/s): the registrars' CPU per registration then says what the
# rates cannot. Then, since the maximum rates move by a fifth from run to
# run on a shared machine, the CPU time per registration at one rate both
# sustain (--fixed RATE; default 60 % of the lower maximum, 0 skips it):
# three runs of SECONDS for each registrar, alternating, each on a freshly
# started registrar (no state left from earlier runs: the pcscf keeps
# every server transaction for Timer J, 32 s), the medians and their
# ratio. Everything on 127.0.0.1.
#
# Needs sipp (sip-tester), kamailio, and a release build of pcscf (built
# here). Only the ratio within one run means anything.
set -u
cd "$(dirname "$0")/.."
secs=30
users=10000
kchildren=1
fixed=""
while [ $# -gt 0 ]; do
  case "$1" in
    --fixed) fixed=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --kamailio-children) kchildren=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//; /^set -u/d'; exit 0 ;;
    [0-9]*) secs=$1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$fixed" in *[!0-9]*) echo "--fixed needs a rate" >&2; exit 2 ;; esac
for p in sipp kamailio; do
  command -v "$p" >/dev/null || { echo "needs $p" >&2; exit 2; }
done
cargo build --release -q -p tools --bin pcscf || exit 2
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

K=fec86ba6eb707ed08905757b1bb44b8f
OP=dbc59adcb6f9a0ef735477b7fadf8374
AMF=725c
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Subscribers and the SIPp injection file.
python3 - "$work" "$users" "$K" "$OP" "$AMF" <<'PYEOF'
import sys
work, n, k, op, amf = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
with open(f"{work}/subs.toml", "w") as f:
    f.write('realm = "ims.example.org"\n')
    for i in range(n):
        u = f"user{i:05d}"
        f.write(f'\n[[subscriber]]\nimpi = "{u}@ims.example.org"\n'
                f'impus = ["sip:{u}@ims.example.org"]\nk = "{k}"\nop = "{op}"\n'
                f'amf = "{amf}"\nsqn = "000000000020"\n')
# SIPp expands no keyword inside [authentication]: the whole keyword is a
# field of the injection file (SIPp's documented way), one file per scheme.
schemes = {"aka": f"aka_K=0x{k} aka_OP=0x{op} aka_AMF=0x{amf}", "digest": "password=secret"}
for name, creds in schemes.items():
    with open(f"{work}/{name}.csv", "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(n):
            u = f"user{i:05d}"
            f.write(f"{u};[authentication username={u}@ims.example.org {creds}]\n")
PYEOF

scenario() {
  cat <<EOF
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registration load">
  <send retrans="500">
    <![CDATA[
REGISTER sip:ims.example.org SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[field0]@ims.example.org>;tag=[pid]SIPpTag00[call_number]
To: <sip:[field0]@ims.example.org>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Expires: 3600
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
REGISTER sip:ims.example.org SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[field0]@ims.example.org>;tag=[pid]SIPpTag00[call_number]
To: <sip:[field0]@ims.example.org>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Expires: 3600
Max-Forwards: 70
[field1]
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
EOF
}
scenario > "$work/registration.xml"

# The start_* functions run in this shell (not in $(...)), so cleanup
# sees the pids they add; each sets the port in its variable.
start_pcscf() {
  local port; port=$(free_port)
  setsid target/release/pcscf --subscribers "$work/subs.toml" --listen "127.0.0.1:$port" \
    --ipsec none --xres-without-zero-byte --quiet > /dev/null 2> "$work/pcscf.err" &
  pids+=($!)
  wait_up "$port" pcscf
  pport=$port
}

start_kamailio() {
  local port; port=$(free_port)
  sed -e "s/@LISTEN@/127.0.0.1:$port/" \
      -e "s/^children=1/children=$kchildren/" \
      -e 's/^debug=2/debug=1/' \
      -e 's/@PASSWORDS@/\t\t$var(pw) = "secret";/' \
      -e '/xlog("L_NOTICE", "REGISTERED/d' \
      tools/tests/ims/kamailio.cfg > "$work/kamailio.cfg"
  setsid kamailio -f "$work/kamailio.cfg" -DD -E -m 256 -M 16 -Y "$work" -w "$work" \
    > /dev/null 2> "$work/kamailio.err" &
  pids+=($!)
  wait_up "$port" kamailio
  kport=$port
}

# Up when an OPTIONS gets an answer.
wait_up() {
  python3 - "$1" "$2" <<'PYEOF' >&2 || exit 2
import socket, sys, time
port, name = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.settimeout(0.2)
me = s.getsockname()
msg = (f"OPTIONS sip:ims.example.org SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me[1]};branch=z9hG4bKup\r\n"
       "Max-Forwards: 70\r\nFrom: <sip:probe@ims.example.org>;tag=p\r\nTo: <sip:ims.example.org>\r\n"
       "Call-ID: up\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
t0 = time.time()
while time.time() - t0 < 20:
    s.sendto(msg, ("127.0.0.1", port))
    try:
        if s.recv(4096).startswith(b"SIP/2.0"):
            sys.exit(0)
    except socket.timeout:
        pass
sys.exit(f"{name} did not answer on port {port}")
PYEOF
}

# CPU seconds (user + system) used so far by the processes of group $1
# (the registrar, started with setsid).
group_cpu() {
  local hz; hz=$(getconf CLK_TCK)
  # /proc/PID/stat after "PID (COMMAND) " (a command may hold spaces):
  # the process group is the 3rd field, utime and stime the 12th and 13th.
  cat /proc/[0-9]*/stat 2>/dev/null |
    awk -v g="$1" -v hz="$hz" '{ sub(/^.*\) /, "") } $3 == g { t += $12 + $13 } END { printf "%.2f\n", t / hz }'
}

# One SIPp run: rate, duration. Prints "ok CPU REGCPU" (SIPp's and the
# registrar's us per registration) or "fail REASON".
run_sipp() { # $1 scheme (aka, digest) $2 port $3 rate $4 seconds
  local calls=$(( $3 * $4 )) t0 t1 rc cpu r0 r1
  r0=$(group_cpu "$regpg")
  t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$work/time" \
    sipp "127.0.0.1:$2" -sf "$work/registration.xml" -inf "$work/$1.csv" -r "$3" -m "$calls" \
      -i 127.0.0.1 -p "$(free_port)" -nostdin -recv_timeout 4s -buff_size 4194304 \
      -timeout "$(( $4 + 30 ))s" -timeout_error \
      -trace_stat -stf "$work/stat.csv" > /dev/null 2> "$work/sipp.err"
  rc=$?
  t1=$(date +%s.%N)
  r1=$(group_cpu "$regpg")
  cpu=$(awk '{print $1 + $2}' "$work/time" 2>/dev/null || echo 0)
  if [ "$rc" -ne 0 ]; then
    # SIPp's first complaint says why (a fatal error for exit 255).
    echo "fail sipp-exit-$rc: $(grep -v '^Resolving' "$work/sipp.err" | head -1 | cut -c1-160)"
    return
  fi
  if python3 -c "import sys; sys.exit(0 if $t1 - $t0 <= $4 + 3 else 1)"; then
    python3 -c "print('ok', round($cpu / $calls * 1e6, 1), round(($r1 - $r0) / $calls * 1e6, 1))"
  else
    echo "fail slow"
  fi
}

# run_sipp, once more after a fatal error of SIPp itself (exit 255: one run
# in the search once died in SIPp's own template parser on its injected
# [authentication] field, which nothing the registrar sends can cause); a
# failed registration (exit 1) or a slow run is never retried. The retry is
# shown in the run's line.
attempt() { # as run_sipp
  local out
  out=$(run_sipp "$@")
  case "$out" in
    "fail sipp-exit-255"*) echo "retried after: ${out#fail }; $(run_sipp "$@")" ;;
    *) echo "$out" ;;
  esac
}

# One attempt on a freshly started registrar ($1 pcscf or kamailio, then
# attempt's arguments but the port); prints attempt's result. Not in
# $(...): the start_* functions must add their pids to this shell's list.
fresh_attempt() {
  local port
  stop_registrar
  case "$1" in
    pcscf) start_pcscf || exit 2; port=$pport ;;
    *) start_kamailio || exit 2; port=$kport ;;
  esac
  regpg=${pids[0]}
  ATTEMPT=$(attempt "$2" "$port" "$3" "$4")
}

# The highest sustained rate of one server ($1 name, $2 scheme, $3 pcscf
# or kamailio), each run on a fresh registrar; sets SEARCH to "RATE SIPP_CPU
# REGISTRAR_CPU" ("0 0 0" when even 100/s fails).
search() {
  local lo=0 hi=0 r=100 short=$(( secs / 3 > 3 ? secs / 3 : 3 )) out
  SEARCH="0 0 0"
  while [ "$r" -le 100000 ]; do
    fresh_attempt "$3" "$2" "$r" "$short"; out=$ATTEMPT
    echo "  $1 $r/s for ${short}s: $out" >&2
    case "$out" in ok*|*"; ok "*) lo=$r; r=$(( r * 2 )) ;; *) hi=$r; break ;; esac
  done
  if [ "$lo" -eq 0 ]; then echo "  $1 fails at 100/s: see $work/sipp.err" >&2; return; fi
  [ "$hi" -eq 0 ] && hi=$(( lo * 2 ))
  while [ $(( (hi - lo) * 20 )) -gt "$hi" ]; do
    r=$(( (lo + hi) / 2 ))
    fresh_attempt "$3" "$2" "$r" "$short"; out=$ATTEMPT
    echo "  $1 $r/s for ${short}s: $out" >&2
    case "$out" in ok*|*"; ok "*) lo=$r ;; *) hi=$r ;; esac
  done
  r=$lo
  while [ "$r" -gt 0 ]; do
    fresh_attempt "$3" "$2" "$r" "$secs"; out=$ATTEMPT
    echo "  $1 $r/s for ${secs}s: $out" >&2
    case "$out" in ok*|*"; ok "*) SEARCH="$r ${out##*ok }"; return ;; esac
    r=$(( r * 95 / 100 ))
  done
}

echo "registration load: $users subscribers, ${secs}s per confirming run, Kamailio children=$kchildren" >&2
stop_registrar() {
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  pids=()
}
search "pcscf (AKAv1-MD5)" aka pcscf
read -r prate pcpu preg <<< "$SEARCH"
search "kamailio (digest MD5)" digest kamailio
read -r krate kcpu kreg <<< "$SEARCH"
stop_registrar

# CPU per registration at one rate, fresh registrars, alternating.
[ -n "$fixed" ] || fixed=$(( (prate < krate ? prate : krate) * 60 / 100 ))
fixed_line=""
if [ "$fixed" -gt 0 ]; then
  # One run on a freshly started registrar ($1 pcscf or kamailio, $2 its
  # scheme, $3 the run's number); sets S_CPU and R_CPU (SIPp's and the
  # registrar's us per registration), or fails. Not in $(...): the start_*
  # functions must add their pids to this shell's list.
  fixed_run() {
    local out
    fresh_attempt "$1" "$2" "$fixed" "$secs"; out=$ATTEMPT
    echo "  fixed rate, run $3: $1 $fixed/s for ${secs}s: $out" >&2
    stop_registrar
    case "$out" in ok*|*"; ok "*) read -r S_CPU R_CPU <<< "${out##*ok }" ;; *) return 1 ;; esac
  }
  pf=() kf=() ps=() ks=()
  for i in 1 2 3; do
    fixed_run pcscf aka "$i" && { ps+=("$S_CPU"); pf+=("$R_CPU"); }
    fixed_run kamailio digest "$i" && { ks+=("$S_CPU"); kf+=("$R_CPU"); }
  done
  fixed_line=$(python3 - "$fixed" "${pf[*]:-}" "${kf[*]:-}" "${ps[*]:-}" "${ks[*]:-}" <<'PYEOF'
import statistics, sys
rate = sys.argv[1]
p, k, sp, sk = ([float(x) for x in a.split()] for a in sys.argv[2:6])
if not p or not k:
    print(f"at a fixed {rate}/s: a registrar failed every run (see the lines above)")
else:
    mp, mk = statistics.median(p), statistics.median(k)
    print(f"at a fixed {rate}/s, {len(p)}+{len(k)} runs on fresh registrars: registrar CPU us/reg "
          f"pcscf {mp:.1f} (runs {' '.join(map(str, p))}), Kamailio {mk:.1f} (runs {' '.join(map(str, k))}): "
          f"Kamailio/pcscf {mk / mp:.2f}x; SIPp CPU us/reg {statistics.median(sp):.1f} / {statistics.median(sk):.1f}")
PYEOF
)
fi
printf '\n%-28s %12s %18s %22s\n' "registrar" "reg/s (${secs}s)" "SIPp CPU us/reg" "registrar CPU us/reg"
printf '%-28s %12s %18s %22s\n' "pcscf, AKAv1-MD5" "$prate" "$pcpu" "$preg"
printf '%-28s %12s %18s %22s\n' "Kamailio, digest MD5" "$krate" "$kcpu" "$kreg"
python3 -c "print(f'ratio pcscf/Kamailio: {$prate / max($krate, 1):.2f}x; registrar CPU per registration, Kamailio/pcscf: {$kreg / max($preg, 0.001):.2f}x')"
[ -z "$fixed_line" ] || echo "$fixed_line"
