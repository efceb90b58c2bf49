//! `pcscf`: a test P-CSCF for `imsua` and SIPp, with the registrar, the AKA
//! centre, a MESSAGE relay, an SMS service centre and a presence agent
//! folded in. Decisions are `gm`'s (`gm::reg::Network`, `gm::txn`,
//! `gm::pager`, `gm::sms::service::SmsCentre`, `gm::presence::Agent`);
//! this file moves the bytes and prints.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use clap::{CommandFactory, Parser};
use gm::network::Output;
use gm::presence::{Agent, Compositor};
use gm::reg::{Flow, Network, NetworkConfig, SaSet, Side};
use gm::sip::Message;
use gm::sms::service::{CentreEvent, SmsCentre};
use gm::txn::{Reliability, Timers, Transactions};
use tools::ims::comp::{Incoming, SipComp};
use tools::ims::{Hop, Ipsec, Ladder, OsRandom, Recv, Stop, Transport, json_line};
use tools::json::Json;

const AFTER_HELP: &str = "\
A TEST AND DEMO PEER, not a production P-CSCF: it is also the registrar, the
S-CSCF and the HSS (the subscribers' K and OP/OPc are in the table), relays
MESSAGE between UEs registered to it, is an SMS service centre and the
presence agent of the IMPUs in the table, and keeps nothing across runs.

Presence (RFC 3856, RFC 3903, RFC 6665, PIDF RFC 3863): a registered UE may
PUBLISH (Event: presence, application/pidf+xml) for its own IMPUs only
(else 403) and SUBSCRIBE to the presence of any IMPU of the table (else
404). Watcher authorisation is not done: every subscription is accepted,
active at once. A SUBSCRIBE gets 200 and an immediate NOTIFY with the
composed state (no tuples while nothing is published); refreshes and
Expires: 0 (a final NOTIFY, terminated) are handled; every change of a
resource's state is notified to its watchers, at the flow their
registration came from (over their SAs with --ipsec udp, SigComp as for
any message). A watcher that is no longer registered, or answers 481, is
dropped.

Subscriber table (TOML):
  realm = \"ims.example.org\"
  [[subscriber]]
  impi = \"alice@ims.example.org\"
  impus = [\"sip:alice@ims.example.org\"]
  k = \"fec86ba6eb707ed08905757b1bb44b8f\"
  op = \"dbc59adcb6f9a0ef735477b7fadf8374\"    # or opc = \"...\"
  amf = \"725c\"
  sqn = \"9d0277595ffc\"                       # 48 bits, hex
  msisdn = \"+15555550101\"                    # optional: E.164, for SMS

Output: one line per SIP message on stdout (UTC time, <- or ->, peer, method
or status, size, the SPI of the SA that carried it, TCP when over TCP; -v adds
the whole message and a line per datagram dropped on a protected port) and one
JSON line per event (listening; registered, with the transport it came over;
deregistered, relayed, authentication-failed,
sms: a decision of the service centre, see SMS; published: a PUBLISH
accepted, with resource, etag (null once removed) and basic (the composed
state: open, closed, or null when nothing is published); watcher: a
subscription made, refreshed or ended, with resource, watcher and state
(active, terminated); sa: an SA added or removed, with its keys under
--show-keys (when removed: the packets and bytes it carried and, with
--show-keys, its setkey -D text); dropped: a datagram a protected port did not
deliver (clear text, an unknown SPI, a bad ICV) or a TCP connection closed for
what it carried (no Content-Length, a message too long), with from, port and
reason;
stopped, with the count of datagrams
dropped, messages sent and compressed, sent_bytes on the wire (UDP or TCP
payloads before ESP) and sent_sip_bytes (the same messages as SIP), SigComp failures,
NACKs sent, unreadable datagrams).

Modes:
  --ipsec none  SIP in clear over UDP and TCP (a TCP listener on the same
                port: RFC 3261 §18; responses go back on the connection
                their request came on, and a UE registered over TCP gets
                its requests over TCP), registration without sec-agree.
                With --ipsec tun the same on all three ports (TCP over the
                SAs: the UE's port-c to our port-s, our port-c to its
                port-s).
  --ipsec udp   sec-agree required, mod=UDP-enc-tun only (TS 33.203): after
                the 401, SIP goes as ESP in UDP (RFC 3948, tunnel mode)
                between the UE's port-c/port-s and ours (--port-c, --port-s),
                SAs held in this process (no root); SPIs are random. Nothing
                goes in clear to a UE reached over SAs, and datagrams in clear
                on our port-c/port-s are dropped. --pcap writes the packets as
                on the wire; with the keys of --show-keys Wireshark decrypts
                them (Decode As UDP port -> UDPENCAP for the four ports).
                A UE whose re-registration offers new SPIs and a new
                port-c is re-authenticated (SA handover, TS 33.203 §7.4):
                its new SAs use our second client port (--alt-port-c) if
                its old ones use --port-c, and the other way round; the
                old SAs go once the new ones carried the 200.
  --ipsec tun   (root) sec-agree required, mod=trans only: the SAs and
                policies go into this namespace's ipsecd (--ipsecd-socket)
                under the owner tag pcscf-PORT (PORT: --listen's), with each
                challenge's SPIs held there first (getspi), so ESP
                transport mode leaves its TUN as on a real Gm interface; SIP
                uses plain sockets on port-c/port-s, and ipsecd's guards drop
                clear text to or from them. At start and exit everything of
                that tag is removed (a crashed run's too). --listen must be
                an interface address, not loopback. SA handover as with
                udp, the new set's SPIs held at ipsecd too.
  --sigcomp     with --ipsec udp or tun (a Gm compartment needs SAs; refused
                with --ipsec none): SigComp (RFC 3320, RFC 3486, RFC 5049)
                per registered UE, one compartment per UE, opened when its
                SAs are installed (the 401 goes uncompressed), carried over
                to the new SAs of a handover, closed when the last go. What goes to a UE's protected ports is
                compressed once the UE showed it speaks SigComp (SigComp
                over its SAs, or comp=sigcomp in a request's Via, RFC 3486
                §4; a UE without it gets plain SIP); what comes over its
                SAs may create states. The
                ladder shows both sizes (412 B (SigComp, 980 B SIP)); SigComp
                that fails to decompress is dropped and NACKed (RFC 4077), a
                line with -v. By default the bytecode travels in the first
                message and there is no shared compression, so tshark
                decompresses every message; --sigcomp-full turns on locally
                available bytecode and shared compression.

SMS over IP (TS 24.341): a MESSAGE whose Request-URI is the service centre's
PSI (--sms-centre, default sip:+15555550000@<realm>; its number is the RP
address) goes to the centre, from a registered UE only (else 403). An RP-DATA
(SMS-SUBMIT) is answered 202, then the sender gets a MESSAGE with RP-ACK, or
RP-ERROR (cause 1 for a number no subscriber has), and the recipient, found
by its msisdn, an RP-DATA (SMS-DELIVER) in a MESSAGE to where it registered
(over its SAs, SigComp as for any message), which it answers 200 and then
acknowledges with RP-ACK in its own MESSAGE. Each part of a long text is an
RP-DATA of its own. Event lines: sms with result submitted (from, to, rp_mr,
part, parts), delivered (to, rp_mr), failed (from or to, cause and reason
for an RP-ERROR, status for a MESSAGE the recipient did not take). A msisdn
is listed as a tel: URI in the subscriber's P-Associated-URI.

Exit status: 0 stopped by SIGTERM/SIGINT, 2 usage, subscriber file or
socket error (one line naming the file). It never exits 1.

Examples:
  pcscf --subscribers subs.toml --listen 127.0.0.1:5060
  pcscf --subscribers subs.toml --listen 127.0.0.1:5060 -v
  pcscf --subscribers subs.toml --ipsec udp --port-c 5066 --port-s 5068 --pcap gm.pcap --show-keys
  pcscf --subscribers subs.toml --ipsec udp --sigcomp -v
  pcscf --subscribers subs.toml --ipsec tun --listen 10.0.0.1:5060 --sigcomp
  imsua --impi alice@ims.example.org --impu sip:alice@ims.example.org \\
        --k ... --op ... --pcscf 127.0.0.1:5060 register";

/// A test P-CSCF: AKA registration and a MESSAGE relay over UDP and TCP.
#[derive(Parser)]
#[command(
    name = "pcscf",
    version,
    about = "A test/demo P-CSCF (with registrar, AKA centre and presence agent): AKA registration, MESSAGE relay and presence over UDP (and TCP with --ipsec none or tun)",
    after_help = AFTER_HELP
)]
struct Cli {
    /// The subscriber table (TOML).
    #[arg(long)]
    subscribers: PathBuf,
    /// The address and port to listen on: UDP, and TCP too with --ipsec
    /// none or tun.
    #[arg(long, default_value = "127.0.0.1:5060")]
    listen: SocketAddr,
    /// How SIP is protected: none (in clear), udp (ESP in UDP, sec-agree
    /// mod=UDP-enc-tun, in this process) or tun (ESP transport mode by
    /// ipsecd, sec-agree mod=trans; root).
    #[arg(long, default_value = "none", value_parser = Ipsec::parse)]
    ipsec: Ipsec,
    /// ipsecd's control socket with --ipsec tun (default: this network
    /// namespace's daemon).
    #[arg(long, value_name = "PATH")]
    ipsecd_socket: Option<PathBuf>,
    /// Our protected client port with --ipsec udp or tun.
    #[arg(long, default_value_t = 5066)]
    port_c: u16,
    /// Our protected server port with --ipsec udp or tun.
    #[arg(long, default_value_t = 5068)]
    port_s: u16,
    /// Our second protected client port with --ipsec udp or tun (0, the
    /// default: any free port): a UE whose re-registration offers new SAs
    /// is re-authenticated, and its new SAs use the one of our two client
    /// ports its old ones do not (the `listening` event says which).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    alt_port_c: u16,
    /// Write every packet sent and received to this pcap file, as on the
    /// wire (--ipsec udp).
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Print the SAs' keys in the sa event lines (to decrypt a capture;
    /// test and demo runs only).
    #[arg(long)]
    show_keys: bool,
    /// SigComp over the SAs, a compartment per registered UE (needs
    /// --ipsec udp or tun).
    #[arg(long)]
    sigcomp: bool,
    /// With --sigcomp: locally available bytecode and shared compression
    /// (smaller; a decompressor without our bytecode, e.g. tshark, cannot
    /// read the messages).
    #[arg(long, requires = "sigcomp")]
    sigcomp_full: bool,
    /// The SMS service centre's PSI; its E.164 number is the RP address
    /// (default: `sip:+15555550000@<realm>`).
    #[arg(long, value_name = "URI")]
    sms_centre: Option<String>,
    /// SIP timer T1 (e.g. 500ms, the default; tests use less).
    #[arg(long, value_parser = tools::ims::parse_duration)]
    t1: Option<Duration>,
    /// Draw RAND, SPIs and tags from this seed instead of the OS
    /// (reproducible test runs; never for real subscribers).
    #[arg(long)]
    seed: Option<u64>,
    /// Draw RAND again while XRES has a zero byte, for UEs that take RES
    /// as a C string (SIPp: a zero byte ends its password, and about one
    /// challenge in 30 would fail). For SIPp load runs.
    #[arg(long)]
    xres_without_zero_byte: bool,
    /// Print no ladder line (events only): for load runs, where a line
    /// per message costs a parse and a write.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Print whole messages.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.sigcomp && !cli.ipsec.sec_agree() {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--sigcomp needs --ipsec udp or tun: a Gm compartment is opened per SA set (TS 24.229 §8.1.1)",
            )
            .exit();
    }
    let result = run(&cli);
    flush_events();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcscf: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Everything the relay keeps between datagrams.
struct Pcscf {
    transport: Transport,
    /// The role: registrar, relay, presence agent, service centre.
    core: gm::network::Pcscf,
    rng: OsRandom,
    ladder: Ladder,
    start: Instant,
    show_keys: bool,
    /// SigComp (or not) between the transactions and the transport.
    comp: SipComp,
}

fn run(cli: &Cli) -> Result<()> {
    let stop = Stop::install()?;
    let table = tools::ims::load_subscribers(&cli.subscribers)?;
    // Only --ipsec tun talks to ipsecd (the default socket costs a stat).
    let socket = match (cli.ipsec, &cli.ipsecd_socket) {
        (Ipsec::Tun, None) => tools::ipsecd::instance::default_socket(),
        (_, given) => given.clone().unwrap_or_default(),
    };
    let mut transport = Transport::bind(
        cli.ipsec,
        cli.listen,
        (cli.port_c, cli.port_s),
        (&socket, &format!("pcscf-{}", cli.listen.port())),
        // TCP beside UDP, except over ESP in UDP (UDP datagrams only).
        match cli.ipsec {
            Ipsec::None | Ipsec::Tun => tools::ims::Tcp::Accept,
            Ipsec::Udp => tools::ims::Tcp::Off,
        },
    )?;
    if let Some(p) = &cli.pcap {
        transport.capture(p)?;
    }
    let local = transport.local_addr()?;
    let (port_c, port_s) = transport
        .protected_ports()?
        .unwrap_or((local.port(), local.port()));
    // --ipsec udp: a second client port, for SA handovers at re-registration.
    let alt_port_c = transport.bind_alt_port(cli.alt_port_c)?;
    let mut config = NetworkConfig::new(&table.realm, local.ip(), port_c, port_s);
    config.alt_port_c = alt_port_c;
    // --ipsec none: no sec-agree (an ipsec-3gpp offer gets 494, as this
    // process could not carry the SAs); udp: sec-agree required, in
    // mod=UDP-enc-tun only.
    config.allow_unprotected = cli.ipsec == Ipsec::None;
    config.xres_without_zero_byte = cli.xres_without_zero_byte;
    config.modes = cli.ipsec.sa_mode().into_iter().collect();
    // The UE's requests come back here (this P-CSCF is also the S-CSCF).
    config.service_routes = vec![format!("<sip:orig@{local};lr>")];
    config.port = local.port();
    let mut net = Network::new(config);
    // --ipsec tun: each challenge's SPIs are held at ipsecd, so no other
    // owner's SA there can have them.
    let spis = match &transport {
        Transport::Tun(t) => {
            net.set_spi_source(Box::new(t.spi_source()));
            "ipsecd"
        }
        _ => "random",
    };
    let centre_uri = cli
        .sms_centre
        .clone()
        .unwrap_or_else(|| gm::sms::sip::default_centre(&table.realm));
    let digits = gm::sms::sip::e164(&centre_uri).ok_or_else(|| {
        anyhow!("--sms-centre {centre_uri:?}: no E.164 number (sip:+digits@host or tel:+digits)")
    })?;
    let mut centre = SmsCentre::new(gm::sms::Address::international(&digits));
    for (number, impu) in &table.numbers {
        centre.subscriber(number, impu);
    }
    let mut impus = HashMap::new();
    let resources: Vec<String> = table
        .subscribers
        .iter()
        .flat_map(|(_, s)| s.impus.iter().cloned())
        .collect();
    let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
    let sent_by = SocketAddr::new(local.ip(), port_s);
    // RFC 3856 §6.4: an hour by default; between a minute and two hours.
    let agent = Agent::new(
        Compositor::new(&resources, 3600, 60, 7200),
        &format!("sip:{sent_by}"),
        60,
        3600,
        7200,
    );
    for (impi, s) in table.subscribers {
        impus.insert(impi.clone(), s.impus.clone());
        net.add_subscriber(&impi, s);
    }
    let mut timers = Timers::default();
    if let Some(t1) = cli.t1 {
        timers.t1 = t1;
    }
    let start = Instant::now();
    let mut core = gm::network::Pcscf::new(
        net,
        Transactions::new(timers),
        agent,
        (centre, centre_uri.clone()),
        impus,
        gm::network::Addresses { local, sent_by },
    );
    // The service centre's timestamps: UTC from the system clock.
    core.set_utc_offset(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    );
    let mut p = Pcscf {
        transport,
        core,
        rng: match cli.seed {
            Some(s) => OsRandom::seeded(s),
            None => OsRandom::new()?,
        },
        ladder: Ladder::new(cli.verbose, cli.quiet),
        start,
        show_keys: cli.show_keys,
        // A UE gets SigComp once it shows it speaks it (RFC 3486 §4).
        comp: SipComp::new(tools::ims::comp::mode(cli.sigcomp, cli.sigcomp_full))?.wait_for_peers(),
    };
    let mut listening = Json::obj();
    listening
        .set("event", "listening")
        .set("address", local.to_string())
        .set("ipsec", cli.ipsec.name())
        .set("sigcomp", cli.sigcomp)
        .set("sms_centre", centre_uri);
    if cli.ipsec.sec_agree() {
        listening.set("spis", spis);
        listening
            .set("port_c", Json::Int(i64::from(port_c)))
            .set("port_s", Json::Int(i64::from(port_s)));
        if let Some(p) = alt_port_c {
            listening.set("alt_port_c", Json::Int(i64::from(p)));
        }
    }
    event(&mut listening);
    if cli.quiet {
        EVENTS.with_borrow_mut(|e| *e = Some(Events::default()));
    }
    let mut buf = tools::ims::esp_udp::recv_buffer();
    while !stop.is_set() {
        let now = p.start.elapsed();
        let next = p.core.poll_timeout();
        let mut wait = next
            .map_or(Stop::POLL, |t| t.saturating_sub(now))
            .min(Stop::POLL);
        let waiting = events_waiting();
        if waiting.is_some() {
            wait = wait.min(Events::IDLE);
        }
        if waiting.is_some_and(|since| since.elapsed() >= Events::LATEST) {
            flush_events();
        }
        match p.transport.recv(&mut buf, wait)? {
            Some(Recv::Message(d)) => {
                let wire = buf.get(d.range.clone()).unwrap_or_default();
                let over_sas = d.protected_port.is_some();
                match p.comp.decode(wire, d.from, over_sas) {
                    Incoming::Sip { bytes, compressed } => {
                        let sigcomp = compressed.then_some(wire.len());
                        let hop = Hop {
                            sigcomp,
                            spi: d.spi,
                            tcp: d.stream,
                            ..Hop::default()
                        };
                        let parsed = Message::parse(&bytes);
                        p.ladder.received(d.from, &bytes, parsed.as_ref().ok(), hop);
                        let flow = d.protected_port.map_or(Flow::Unprotected, |port| {
                            Flow::protected(Side::Network, port, d.from.port())
                        });
                        let reliability = d.reliability();
                        p.on_datagram(parsed, d.from, flow, reliability);
                    }
                    Incoming::Nothing(what) => {
                        if p.ladder.verbose {
                            eprintln!("pcscf: {what} from {}", d.from);
                        }
                    }
                    Incoming::Failed { reason, nack } => {
                        if p.ladder.verbose {
                            eprintln!(
                                "pcscf: SigComp from {} failed to decompress: {reason}{}",
                                d.from,
                                if nack.is_some() { "; NACK sent" } else { "" }
                            );
                        }
                        if let Some(n) = nack {
                            p.send_nack(&n, d.from);
                        }
                    }
                }
            }
            // Clear text on a protected port, an unknown SPI, a bad ICV:
            // dropped, and said (exceptional traffic, and what a test of
            // fail-closed waits on).
            Some(Recv::Dropped { from, port, reason }) => {
                let mut j = Json::obj();
                j.set("event", "dropped")
                    .set("from", from.to_string())
                    .set("port", Json::Int(i64::from(port)))
                    .set("reason", reason);
                event(&mut j);
            }
            // Nothing to read for a while: the event lines gathered go.
            None => flush_events(),
        }
        p.on_time();
        p.flush();
    }
    // The SAs still installed go with us.
    match p.transport.close() {
        Ok(sets) => {
            for (set, usage) in &sets {
                p.sa_events(set, "remove", usage);
            }
        }
        Err(e) => eprintln!("pcscf: {e:#}"),
    }
    let mut stopped = Json::obj();
    stopped
        .set("event", "stopped")
        .set("dropped", Json::Int(p.transport.dropped() as i64));
    p.comp.report(&mut stopped);
    event(&mut stopped);
    Ok(())
}

/// The event lines not written yet, with --quiet: there they are the
/// only output, and a write(2) per registration cost more than the rest
/// of its printing. They go together when the loop finds nothing to read
/// for [`Events::IDLE`], at [`Events::FULL`] bytes, or [`Events::LATEST`]
/// after the first of them; without --quiet each line is printed at once,
/// in order with the ladder's.
#[derive(Default)]
struct Events {
    lines: String,
    since: Option<Instant>,
}

impl Events {
    const IDLE: Duration = Duration::from_millis(2);
    const LATEST: Duration = Duration::from_millis(20);
    const FULL: usize = 8192;
}

thread_local! {
    static EVENTS: RefCell<Option<Events>> = const { RefCell::new(None) };
}

fn event(j: &mut Json) {
    let full = EVENTS.with_borrow_mut(|e| match e {
        Some(e) => {
            j.write_line(&mut e.lines);
            e.lines.push('\n');
            e.since.get_or_insert_with(Instant::now);
            e.lines.len() >= Events::FULL
        }
        None => {
            println!("{}", json_line(j));
            false
        }
    });
    if full {
        flush_events();
    }
}

/// Since when event lines wait to be written, if any do.
fn events_waiting() -> Option<Instant> {
    EVENTS.with_borrow(|e| e.as_ref().and_then(|e| e.since))
}

/// Writes the event lines gathered, in one write.
fn flush_events() {
    EVENTS.with_borrow_mut(|e| {
        if let Some(e) = e.as_mut().filter(|e| !e.lines.is_empty()) {
            let mut out = std::io::stdout().lock();
            // As println!: a closed stdout loses the lines, nothing else.
            let _ = out.write_all(e.lines.as_bytes()).and_then(|()| out.flush());
            e.lines.clear();
            e.since = None;
        }
    });
}

impl Pcscf {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// A received message (parsed, or why not) for the P-CSCF role.
    fn on_datagram(
        &mut self,
        parsed: Result<Message<'_>, gm::sip::Error>,
        from: SocketAddr,
        flow: Flow,
        reliability: Reliability,
    ) {
        let mut m = match parsed {
            Ok(m) => m,
            Err(e) => {
                self.comp.unreadable();
                if self.ladder.verbose {
                    eprintln!("pcscf: dropped a datagram from {from}: not SIP ({e})");
                }
                return;
            }
        };
        let now = self.now();
        let mut links = tools::ims::Links(&mut self.transport);
        if m.is_request() {
            if gm::txn::stamp_via(&mut m, from).is_err() {
                return;
            }
            if matches!(flow, Flow::Protected { .. }) {
                self.comp.peer_signalled(&m, from);
            }
            let arrived_on = links.0.arrival_port(flow, Side::Network);
            let arrival = (flow, arrived_on, reliability);
            self.core
                .on_request(&m, from, arrival, now, &mut self.rng, &mut links);
        } else {
            self.core.on_response(&m, now, &mut links);
        }
        self.flush();
    }

    fn on_time(&mut self) {
        let now = self.now();
        let mut links = tools::ims::Links(&mut self.transport);
        self.core.handle_timeout(now, &mut self.rng, &mut links);
    }

    /// Carries out what the role asks, in order: messages to send, SA
    /// changes (with the SigComp compartments that follow them), events
    /// to print. A datagram that cannot leave is reported and left to the
    /// transaction's timers, as a loss.
    fn flush(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Transmit(t) => tools::ims::send_transmit(
                    "pcscf",
                    t,
                    self.core.transactions(),
                    &mut self.comp,
                    &mut self.transport,
                    &self.ladder,
                ),
                Output::InstallSas { set, replaces } => match self.transport.install(&set) {
                    Ok(()) => {
                        // The UE's compartment opens with its SAs (TS
                        // 24.229 §8.1.1); a handover's new set takes the
                        // old one's.
                        match &replaces {
                            Some(old) => self.comp.hand_over(old, &set),
                            None => self.comp.open(&set),
                        }
                        self.sa_events(&set, "add", &[]);
                    }
                    Err(e) => eprintln!("pcscf: {e:#}"),
                },
                Output::UpdateSas(set) => {
                    if let Err(e) = self.transport.update(&set) {
                        eprintln!("pcscf: {e:#}");
                    }
                }
                Output::RemoveSas(set) => {
                    self.comp.close(&set);
                    match self.transport.remove(&set) {
                        Ok(usage) => self.sa_events(&set, "remove", &usage),
                        Err(e) => eprintln!("pcscf: {e:#}"),
                    }
                }
                Output::Event(e) => self.report(e),
            }
        }
        self.ladder.release();
    }

    /// Prints what the role reports, as an event line.
    fn report(&self, e: gm::network::Event) {
        use gm::network::{Event as E, SmsFailure};
        let mut j = Json::obj();
        match e {
            E::Registered {
                impi,
                impu,
                contact,
                expires,
                from,
                ..
            } => {
                let over = match self.transport.protocol(from) {
                    gm::txn::Protocol::Tcp => "tcp",
                    _ => "udp",
                };
                j.set("event", "registered")
                    .set("impi", impi)
                    .set("impu", impu)
                    .set("contact", contact)
                    .set("transport", over)
                    .set("expires", Json::Int(expires.as_secs() as i64));
            }
            E::Deregistered { impi, .. } => {
                j.set("event", "deregistered").set("impi", impi);
            }
            E::AuthenticationFailed { impi, reason } => {
                j.set("event", "authentication-failed")
                    .set("impi", impi)
                    .set("reason", reason);
            }
            E::Relayed { method, to } => {
                j.set("event", "relayed")
                    .set("method", method)
                    .set("to", to.to_string());
            }
            E::Published {
                resource,
                etag,
                basic,
            } => {
                j.set("event", "published")
                    .set("resource", resource)
                    .set("etag", etag.map_or(Json::Null, Json::from))
                    .set("basic", basic.map_or(Json::Null, |b| b.as_str().into()));
            }
            E::Watcher {
                resource,
                watcher,
                active,
            } => {
                j.set("event", "watcher")
                    .set("resource", resource)
                    .set("watcher", watcher)
                    .set("state", if active { "active" } else { "terminated" });
            }
            E::Sms(c) => j = centre_event(&c),
            E::SmsFailed { to, why } => {
                let status = match why {
                    SmsFailure::Status(s) => Json::Int(i64::from(s)),
                    SmsFailure::NotRegistered => "not registered".into(),
                    SmsFailure::NoAnswer => "no answer".into(),
                    SmsFailure::NotSent(e) => e.into(),
                };
                j.set("event", "sms")
                    .set("result", "failed")
                    .set("to", to)
                    .set("status", status);
            }
        }
        event(&mut j);
    }

    fn sa_events(&self, set: &SaSet, action: &str, usage: &[tools::ims::SaUsage]) {
        for mut j in tools::ims::sa_events(set, action, self.show_keys, usage) {
            event(&mut j);
        }
    }

    /// Sends a NACK (RFC 4077) back to where a failed SigComp message came
    /// from.
    fn send_nack(&mut self, nack: &[u8], to: SocketAddr) {
        match self.transport.send_nack(nack, to) {
            Ok(()) => self.comp.nack_sent(nack.len()),
            Err(e) => eprintln!("pcscf: {e:#}"),
        }
    }
}

/// The `sms` event line of a service centre decision.
fn centre_event(e: &CentreEvent) -> Json {
    let mut j = Json::obj();
    j.set("event", "sms");
    match e {
        CentreEvent::Submitted {
            from,
            to,
            rp_mr,
            part,
            parts,
        } => j
            .set("result", "submitted")
            .set("from", format!("+{from}"))
            .set("to", format!("+{to}"))
            .set("rp_mr", Json::Int(i64::from(*rp_mr)))
            .set("part", Json::Int(i64::from(*part)))
            .set("parts", Json::Int(i64::from(*parts))),
        CentreEvent::Refused {
            from,
            to,
            rp_mr,
            cause,
        } => {
            j.set("result", "failed").set("from", from.clone());
            if let Some(to) = to {
                j.set("to", format!("+{to}"));
            }
            j.set("rp_mr", Json::Int(i64::from(*rp_mr)))
                .set("cause", Json::Int(i64::from(*cause)))
                .set("reason", gm::sms::cause_name(*cause))
        }
        CentreEvent::Delivered { to, rp_mr } => j
            .set("result", "delivered")
            .set("to", to.clone())
            .set("rp_mr", Json::Int(i64::from(*rp_mr))),
        CentreEvent::NotDelivered { to, rp_mr, cause } => j
            .set("result", "failed")
            .set("to", to.clone())
            .set("rp_mr", Json::Int(i64::from(*rp_mr)))
            .set("cause", Json::Int(i64::from(*cause)))
            .set("reason", gm::sms::cause_name(*cause)),
    };
    j
}
