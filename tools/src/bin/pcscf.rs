//! `pcscf`: a test P-CSCF for `imsua` and SIPp, with the registrar, the AKA
//! centre and a MESSAGE relay folded in. Decisions are `gm`'s
//! (`gm::reg::Network`, `gm::txn`, `gm::pager`); this file moves the bytes
//! and prints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use gm::pager::{Registry, Relay};
use gm::reg::{Flow, Network, NetworkAction, NetworkConfig};
use gm::sip::{Builder, Message};
use gm::txn::{Event, Reliability, RequestVerdict, ResponseVerdict, Timers, Transactions, TxnId};
use tools::ims::{Dir, Ipsec, Ladder, OsRandom, Stop, Transport, json_line, token};
use tools::json::Json;

const AFTER_HELP: &str = "\
A TEST AND DEMO PEER, not a production P-CSCF: it is also the registrar, the
S-CSCF and the HSS (the subscribers' K and OP/OPc are in the table), relays
MESSAGE between UEs registered to it, and keeps nothing across runs.

Subscriber table (TOML):
  realm = \"ims.example.org\"
  [[subscriber]]
  impi = \"alice@ims.example.org\"
  impus = [\"sip:alice@ims.example.org\"]
  k = \"fec86ba6eb707ed08905757b1bb44b8f\"
  op = \"dbc59adcb6f9a0ef735477b7fadf8374\"    # or opc = \"...\"
  amf = \"725c\"
  sqn = \"9d0277595ffc\"                       # 48 bits, hex

Output: one line per SIP message on stdout (UTC time, <- or ->, peer, method
or status, size; -v adds the whole message) and one JSON line per event
(registered, deregistered, relayed).

Modes: --ipsec none only (SIP in clear over UDP, registration without
sec-agree). --ipsec udp (ESP in UDP, in-process SAs) and --ipsec tun come
later, as do SigComp, SMS and presence.

Exit status: 0 stopped by SIGTERM/SIGINT, 2 usage, subscriber file or
socket error (one line naming the file). It never exits 1.

Examples:
  pcscf --subscribers subs.toml --listen 127.0.0.1:5060
  pcscf --subscribers subs.toml --listen 127.0.0.1:5060 -v
  imsua --impi alice@ims.example.org --impu sip:alice@ims.example.org \\
        --k ... --op ... --pcscf 127.0.0.1:5060 register";

/// A test P-CSCF: AKA registration and a MESSAGE relay over UDP.
#[derive(Parser)]
#[command(
    name = "pcscf",
    version,
    about = "A test/demo P-CSCF (with registrar and AKA centre): AKA registration and MESSAGE relay over UDP",
    after_help = AFTER_HELP
)]
struct Cli {
    /// The subscriber table (TOML).
    #[arg(long)]
    subscribers: PathBuf,
    /// The UDP address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:5060")]
    listen: SocketAddr,
    /// How SIP is protected: none (only mode built so far).
    #[arg(long, default_value = "none", value_parser = Ipsec::parse)]
    ipsec: Ipsec,
    /// SIP timer T1 (e.g. 500ms, the default; tests use less).
    #[arg(long, value_parser = tools::ims::parse_duration)]
    t1: Option<Duration>,
    /// Draw RAND, SPIs and tags from this seed instead of the OS
    /// (reproducible test runs; never for real subscribers).
    #[arg(long)]
    seed: Option<u64>,
    /// Print whole messages.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
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
    local: SocketAddr,
    net: Network,
    layer: Transactions<SocketAddr>,
    registry: Registry<SocketAddr>,
    /// The IMPUs bound per IMPI (to unbind them).
    bound: HashMap<String, Vec<String>>,
    /// The IMPUs of each subscriber, from the table.
    impus: HashMap<String, Vec<String>>,
    /// Client transaction of a forwarded MESSAGE -> server transaction.
    relays: HashMap<TxnId, (TxnId, Message<'static>)>,
    /// Client transactions of our reg event NOTIFYs (gm::reg::Network).
    notifies: HashMap<TxnId, Message<'static>>,
    rng: OsRandom,
    ladder: Ladder,
    start: Instant,
}

fn run(cli: &Cli) -> Result<()> {
    let stop = Stop::install()?;
    let table = tools::ims::load_subscribers(&cli.subscribers)?;
    let transport = Transport::bind(cli.ipsec, cli.listen)?;
    let local = transport.local_addr()?;
    let mut config = NetworkConfig::new(&table.realm, local.ip(), local.port(), local.port());
    // --ipsec none: no sec-agree.
    config.allow_unprotected = cli.ipsec == Ipsec::None;
    // The UE's requests come back here (this P-CSCF is also the S-CSCF).
    config.service_routes = vec![format!("<sip:orig@{local};lr>")];
    config.port = local.port();
    let mut net = Network::new(config);
    let mut impus = HashMap::new();
    for (impi, s) in table.subscribers {
        impus.insert(impi.clone(), s.impus.clone());
        net.add_subscriber(&impi, s);
    }
    let mut timers = Timers::default();
    if let Some(t1) = cli.t1 {
        timers.t1 = t1;
    }
    let mut p = Pcscf {
        transport,
        local,
        net,
        layer: Transactions::new(timers),
        registry: Registry::new(),
        bound: HashMap::new(),
        impus,
        relays: HashMap::new(),
        notifies: HashMap::new(),
        rng: match cli.seed {
            Some(s) => OsRandom::seeded(s),
            None => OsRandom::new()?,
        },
        ladder: Ladder {
            verbose: cli.verbose,
        },
        start: Instant::now(),
    };
    event(
        Json::obj()
            .set("event", "listening")
            .set("address", local.to_string())
            .set("ipsec", "none"),
    );
    let mut buf = vec![0u8; 65536];
    while !stop.is_set() {
        let now = p.start.elapsed();
        let next = [p.layer.poll_timeout(), p.net.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let wait = next
            .map_or(Stop::POLL, |t| t.saturating_sub(now))
            .min(Stop::POLL);
        if let Some((n, from)) = p.transport.recv(&mut buf, wait)? {
            let bytes = buf.get(..n).unwrap_or_default();
            p.ladder.message(Dir::In, from, bytes, false);
            p.on_datagram(bytes, from);
        }
        p.on_time();
        p.flush();
    }
    event(Json::obj().set("event", "stopped"));
    Ok(())
}

fn event(j: &mut Json) {
    println!("{}", json_line(j));
}

impl Pcscf {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        let Ok(mut m) = Message::parse(bytes) else {
            return;
        };
        let now = self.now();
        if m.is_request() {
            if gm::txn::stamp_via(&mut m, from).is_err() {
                return;
            }
            let Ok(RequestVerdict::New(id)) =
                self.layer
                    .on_request(&m, from, Reliability::Unreliable, now)
            else {
                return;
            };
            // gm::reg::Network decides which requests are registration's
            // (REGISTER, SUBSCRIBE to the reg event).
            match self
                .net
                .on_request(&m, from.ip(), Flow::Unprotected, now, &mut self.rng)
            {
                Some(actions) => self.on_actions(actions, Some((id, from))),
                None => self.relay(&m, id, from),
            }
        } else if let ResponseVerdict::ToTu(client) = self.layer.on_response(&m, now) {
            if m.status().is_some_and(|s| s >= 200) && self.notifies.remove(&client).is_some() {
                let actions = self.net.on_response(&m, now);
                self.on_actions(actions, None);
            } else if m.status().is_some_and(|s| s >= 200) {
                if let Some((server, _)) = self.relays.remove(&client) {
                    if let Some(back) = gm::pager::response(&m) {
                        let _ = self.layer.respond(server, &back, now);
                    }
                }
            }
        }
    }

    fn relay(&mut self, m: &Message<'_>, id: TxnId, from: SocketAddr) {
        let now = self.now();
        let via = format!(
            "SIP/2.0/UDP {};branch=z9hG4bK{}",
            self.local,
            token(&mut self.rng, 8)
        );
        match self.registry.route(m, &from, &via) {
            Relay::Forward { to, request } => {
                match self
                    .layer
                    .start_client(&request, to, Reliability::Unreliable, now)
                {
                    Ok(client) => {
                        self.relays.insert(client, (id, m.clone().into_owned()));
                        event(
                            Json::obj()
                                .set("event", "relayed")
                                .set("method", m.method().map_or("", |x| x.as_str()))
                                .set("to", to.to_string()),
                        );
                    }
                    Err(_) => self.refuse(m, id, gm::pager::relay_failure(false)),
                }
            }
            Relay::Refuse(status) => self.refuse(m, id, status),
        }
    }

    fn refuse(&mut self, m: &Message<'_>, id: TxnId, status: u16) {
        let now = self.now();
        if let Ok(r) = Builder::response_to(m, status, None)
            .to_tag(&token(&mut self.rng, 4))
            .build()
        {
            let _ = self.layer.respond(id, &r, now);
        }
    }

    fn on_actions(&mut self, actions: Vec<NetworkAction>, txn: Option<(TxnId, SocketAddr)>) {
        let now = self.now();
        for a in actions {
            match a {
                NetworkAction::Respond(r) => {
                    if let Some((id, _)) = txn {
                        let _ = self.layer.respond(id, &r, now);
                    }
                }
                NetworkAction::Registered {
                    impi,
                    impu,
                    contact,
                    expires,
                } => {
                    let mut set = self.impus.get(&impi).cloned().unwrap_or_default();
                    set.push(impu.clone());
                    if let Some((_, from)) = txn {
                        self.registry.bind(&set, from);
                    }
                    self.bound.insert(impi.clone(), set);
                    event(
                        Json::obj()
                            .set("event", "registered")
                            .set("impi", impi)
                            .set("impu", impu)
                            .set("contact", contact)
                            .set("expires", Json::Int(expires.as_secs() as i64)),
                    );
                }
                NetworkAction::Deregistered { impi } => {
                    if let Some(set) = self.bound.remove(&impi) {
                        self.registry.unbind(&set);
                    }
                    event(Json::obj().set("event", "deregistered").set("impi", impi));
                }
                NetworkAction::Notify { request, .. } => {
                    // To the UE the request came from, else its Contact.
                    let to = txn.map(|(_, from)| from).or_else(|| target(&request));
                    if let Some(to) = to {
                        if let Ok(client) =
                            self.layer
                                .start_client(&request, to, Reliability::Unreliable, now)
                        {
                            self.notifies.insert(client, request);
                        }
                    }
                }
                NetworkAction::AuthenticationFailed { impi, reason } => event(
                    Json::obj()
                        .set("event", "authentication-failed")
                        .set("impi", impi)
                        .set("reason", reason),
                ),
                // --ipsec none: no SAs are ever set up.
                _ => {}
            }
        }
    }

    fn on_time(&mut self) {
        let now = self.now();
        self.layer.handle_timeout(now);
        let actions = self.net.handle_timeout(now);
        self.on_actions(actions, None);
        while let Some(e) = self.layer.poll_event() {
            match e {
                // No final response from the target (gm::pager: 408).
                Event::Timeout(client) => {
                    if let Some((server, request)) = self.relays.remove(&client) {
                        self.refuse(&request, server, gm::pager::relay_failure(true));
                    }
                    if let Some(notify) = self.notifies.remove(&client) {
                        let actions = self.net.on_notify_timeout(&notify);
                        self.on_actions(actions, None);
                    }
                }
                Event::Terminated(client) => {
                    self.relays.remove(&client);
                    self.notifies.remove(&client);
                }
            }
        }
    }

    /// Sends what the transactions queued. A datagram that cannot leave
    /// is reported and left to the transaction's timers, as a loss.
    fn flush(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            self.ladder
                .message(Dir::Out, t.to, &t.bytes, t.retransmission);
            if let Err(e) = self.transport.send(&t.bytes, t.to) {
                eprintln!("pcscf: {e:#}");
            }
        }
    }
}

/// The address of a request's Request-URI (`sip:IP:port`, as a UE's
/// Contact is written).
fn target(request: &Message<'_>) -> Option<SocketAddr> {
    let uri = request.request_uri()?;
    let sip = uri.sip()?;
    let ip: std::net::IpAddr = match sip.host {
        gm::sip::Host::V4(a) => a.into(),
        gm::sip::Host::V6(a) => a.into(),
        gm::sip::Host::Name(_) => return None,
    };
    Some(SocketAddr::new(ip, sip.port.unwrap_or(5060)))
}
