//! `imsua`: the IMS UA. The UE role is `gm::ue::Ua`: it registers with
//! AKA or a digest password, sends and receives pager-mode MESSAGE and
//! SMS over IP, publishes its presence and watches others'; this file
//! moves the bytes (SigComp, ESP, the sockets), waits for what each
//! command needs, and prints.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use gm::dialog::SubState;
use gm::presence::ue::{Seen, Subscribed};
use gm::presence::{Basic, Published};
use gm::reg::{Credentials, Flow, OpKey, SaSet, Side, Ue, UeConfig};
use gm::sip::Message;
use gm::sms::service::{SmsUe, UeEvent};
use gm::txn::{Reliability, Timers, Transactions, TxnId};
use tools::ims::command::UaCommand;
use tools::ims::comp::{Incoming, SipComp};
use tools::ims::config::{Offer, UaConfig};
use tools::ims::{Hop, Ipsec, Ladder, OsRandom, Recv, Stop, Transport, json_line};
use tools::json::Json;

const AFTER_HELP: &str = "\
Output: one line per SIP message on stdout (UTC time, <- or ->, peer, method
or status, size, the SPI of the SA that carried it, TCP when over TCP; -v adds
the whole message and a line per datagram dropped on a protected port) and one JSON line per
event: registered (IMPU, expiry, Service-Route, P-Associated-URI, us:
microseconds since the first REGISTER),
deregistered, resynchronising (our SIM's SQN was ahead of the network's: AUTS
sent), message (an incoming MESSAGE, answered 200), message-status (the final
status of ours), sms (an incoming SMS, whole), sms-status (the service
centre's answer to each part of ours), sms-report (a status report), sa (an SA added or
removed, with its keys under --show-keys; when removed, the packets and bytes it carried and, with --show-keys, its
setkey -D text), published (our PUBLISH accepted: resource, etag, basic),
unpublished (our publication removed), presence (a presence NOTIFY, in any
command, answered 200: resource, basic open or closed, notes, tuples, state
active, pending or terminated with its reason), done (a command of listen
ended: command, ok, error).

Presence (RFC 3856, RFC 3903, RFC 6665, PIDF RFC 3863): publish sends a
PIDF with one tuple (our IMPU as contact, the basic status, the note) and
keeps it (refreshed) until SIGTERM/SIGINT, then removes it (Expires: 0);
subscribe watches a presentity until SIGTERM/SIGINT, then unsubscribes
(Expires: 0). Before any de-registration our subscriptions are ended and
our publication removed. A presentity with nothing published shows no
tuples, which reads as closed.

listen reads commands on stdin, one per line; each ends with a done event:
  message TO TEXT...              a MESSAGE (text to the end of the line)
  sms NUMBER TEXT...              an SMS over IP
  publish open|closed [NOTE...]   our presence
  unpublish | subscribe URI | unsubscribe | quit
The end of stdin ends nothing; quit (or SIGTERM/SIGINT) de-registers and
exits.

demo: `imsua demo` (no other argument, no root, loopback only) starts a pcscf
(the binary beside this one) and two UAs, alice and bob, in --ipsec udp with
SigComp; alice's SQN is out of step, so her registration shows AUTS; bob
subscribes to her presence; she sends him a MESSAGE and a concatenated SMS and
publishes; both de-register. It prints the ladder, each step's result, bytes
with and without SigComp, ESP packets per SA, the SAs in setkey -D format, and
writes imsua-demo.pcap with the tshark command that shows the SIP inside.
Exit 0 only if every step worked.

Modes:
  --ipsec none  SIP in clear over UDP, registration without sec-agree, against
                a network that allows it (e.g. pcscf --ipsec none); with
                --password, digest MD5 to a registrar outside IMS (Kamailio).
  --ipsec udp   sec-agree with mod=UDP-enc-tun (TS 33.203): after the 401,
                SIP goes as ESP in UDP (RFC 3948, tunnel mode) between our
                port-c/port-s (--port-c/--port-s, default any free ports) and
                the P-CSCF's, with SAs held in this process (no root). SPIs
                are random. Nothing goes in clear to a peer reached over SAs,
                and datagrams in clear on port-c/port-s are dropped. Each
                re-registration offers new SPIs and a second client port
                (any free one); a P-CSCF that re-authenticates it hands the
                registration over to fresh SAs (TS 33.203 §7.4: the old SAs
                stay until the new ones carried the 200), as pcscf does.
  --ipsec tun   (root) sec-agree with mod=trans: ESP transport mode by this
                namespace's ipsecd (--ipsecd-socket). Our two inbound SPIs
                are held with its getspi; after the 401 the four SAs and
                their policies go in under the owner tag imsua:IMPI, and our
                plain sockets on port-c/port-s send and receive through
                ipsecd's TUN (its guards drop clear text to or from them).
                At start and exit everything of that tag is removed (a
                crashed run's too). --local must be the address of an
                interface (not loopback: it never reaches the TUN). ipsecd
                not running: exit 2, naming the socket. Handover as with
                udp, the next SPIs held at ipsecd as the re-REGISTER leaves.
  --transport tcp
                (with --ipsec none or tun) SIP over TCP (RFC 3261 §18):
                requests leave on a connection from our SIP port (--local),
                or over SAs from port-c to the P-CSCF's port-s; our ports
                listen too; Via says TCP and the Contact ;transport=tcp, and
                the network's requests come on our connection or a new one
                (over SAs: from its port-c to our port-s). Messages are cut
                by Content-Length, SigComp at its 0xFFFF delimiters; no
                retransmissions. With --ipsec tun the policies cover TCP and
                UDP either way. Refused with --ipsec udp (ESP in UDP carries
                UDP here).
  --sigcomp     with --ipsec udp or tun (a Gm compartment needs SAs; refused
                with --ipsec none): SigComp (RFC 3320, RFC 3486, RFC 5049)
                once the SAs are installed. Requests over the SAs carry
                comp=sigcomp and sigcomp-id in their Via (and the protected
                REGISTER in its Contact); the first REGISTER and its 401 go
                uncompressed. One compartment with the P-CSCF, carried over
                to the new SAs of a handover, closed when the last SAs go.
                The ladder shows both sizes (412 B (SigComp, 980 B SIP));
                SigComp that fails to decompress is dropped and NACKed
                (RFC 4077), a line with -v. By default the bytecode travels in
                the first message and there is no shared compression, so
                Wireshark/tshark decompress every message; --sigcomp-full
                turns on locally available bytecode and shared compression.

SMS over IP (TS 24.341): `sms TO TEXT` (or the listen command sms) sends TEXT
to the E.164 number TO (+15555550102 or tel:+15555550102) through the service
centre (--sms-centre, default sip:+15555550000@<domain>, whose number is the
RP address): an RP-DATA (SMS-SUBMIT) per part in a MESSAGE of type
application/vnd.3gpp.sms (a text over 160 GSM 7-bit characters, or 70 UCS-2
ones when it has a character GSM lacks, goes concatenated), each answered 202
and then acknowledged by the centre's MESSAGE with RP-ACK (sms-status: to,
part, parts, rp_mr, tp_mr, status ok) or RP-ERROR (status error, cause,
reason; exit 1 with a line naming the cause); no answer within TR1M (40 s) is
cause 41 (status timeout, exit 1). In every command (listen too), an incoming
MESSAGE with an RP-DATA (SMS-DELIVER) is answered 200 and acknowledged with
RP-ACK in a MESSAGE to the centre it came from; the sms event (from: TP-OA,
text) comes once every part is in. Other MESSAGEs are pager-mode as before.

Config file: --config FILE (TOML) gives the settings the flags give, every key
optional, each read as its flag is (a key is the flag's name with _ for -; op
or opc; offers is a list of --offer values); a flag given on the command line
wins over the file (--password over the file's k/op, --k over its password; a
switch such as --sigcomp can only turn on). amf is informational: AKA checks
the AMF that AUTN carries, so it is only checked to be 4 hex digits. An unknown
key or a bad value is an error naming the file, line and column (exit 2).
docs/imsua.toml is alice of docs/subscribers.toml:
  impi = \"alice@ims.example.org\"
  impu = \"sip:alice@ims.example.org\"
  domain = \"ims.example.org\"
  k = \"fec86ba6eb707ed08905757b1bb44b8f\"
  op = \"dbc59adcb6f9a0ef735477b7fadf8374\"    # or opc = \"...\"
  amf = \"725c\"
  sqn = \"000000000000\"
  pcscf = \"127.0.0.1:5060\"
  local = \"127.0.0.1:0\"
  ipsec = \"udp\"
  transport = \"udp\"
  port_c = 0
  port_s = 0
  offers = [\"hmac-sha-1-96/aes-cbc\", \"hmac-sha-1-96/null\", \"hmac-md5-96/aes-cbc\", \"hmac-md5-96/null\"]
  sigcomp = true
  sigcomp_full = false
  sms_centre = \"sip:+15555550000@ims.example.org\"
  expires = 600000
  t1 = \"500ms\"
  t2 = \"4s\"
  t4 = \"5s\"

Summary: a last JSON line, stopped: messages sent and compressed, sent_bytes
(on the wire, UDP or TCP payloads before ESP) and sent_sip_bytes (the same messages
as SIP), SigComp failures, NACKs sent, unreadable datagrams, dropped.

Exit status: 0 done; 1 the network refused (a registration answered 403...,
a MESSAGE, PUBLISH or SUBSCRIBE answered non-2xx, our K did not verify
the network's AUTN); 2
usage or socket error, or no answer (a transaction timed out: 64*T1). Errors
are one line on stderr.

Examples:
  imsua --impi alice@ims.example.org --impu sip:alice@ims.example.org \\
        --k fec86ba6eb707ed08905757b1bb44b8f --op dbc59adcb6f9a0ef735477b7fadf8374 \\
        --pcscf 127.0.0.1:5060 listen
  imsua --impi bob@ims.example.org --impu sip:bob@ims.example.org --k ... --op ... \\
        message sip:alice@ims.example.org 'hello alice'
  imsua ... --ipsec udp --sigcomp message sip:alice@ims.example.org 'hi' 'hi again'
                                       (two MESSAGEs in one registration, SigComp)
  imsua ... sms +15555550102 'hello bob'   (SMS over IP to bob's msisdn)
  imsua ... --pcscf 127.0.0.1:5999 --t1 50ms register      (times out in 64*T1 = 3.2 s)
  imsua --config docs/imsua.toml register        (alice, settings from the file)
  imsua --config docs/imsua.toml --offer hmac-md5-96/null register
                                       (the file, with one sec-agree offer instead)
  imsua ... --ipsec udp publish open --note 'at the demo'    (until SIGTERM)
  imsua ... --ipsec udp subscribe sip:alice@ims.example.org   (until SIGTERM)";

/// The IMS UA over the Gm interface.
#[derive(Parser)]
#[command(
    name = "imsua",
    version,
    about = "The IMS UA: AKA (or digest) registration, pager-mode MESSAGE and presence to a P-CSCF over UDP",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Read the settings from this TOML file (see "Config file" below); a
    /// flag given on the command line wins over the file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The private identity (digest username).
    #[arg(long)]
    impi: Option<String>,
    /// The public identity registered (From/To), a SIP URI.
    #[arg(long)]
    impu: Option<String>,
    /// K, 32 hex digits (AKA; or --password).
    #[arg(long, value_parser = tools::ims::hex16)]
    k: Option<[u8; 16]>,
    /// OP, 32 hex digits (or --opc).
    #[arg(long, value_parser = tools::ims::hex16, conflicts_with = "opc")]
    op: Option<[u8; 16]>,
    /// OPc, 32 hex digits (or --op).
    #[arg(long, value_parser = tools::ims::hex16)]
    opc: Option<[u8; 16]>,
    /// A digest MD5 password instead of AKA (a registrar outside IMS, e.g.
    /// Kamailio); needs --ipsec none.
    #[arg(long, conflicts_with_all = ["k", "op", "opc"])]
    password: Option<String>,
    /// SQN_MS, the highest SQN accepted so far, 12 hex digits
    /// [default: 000000000000].
    #[arg(long, value_parser = tools::ims::sqn)]
    sqn: Option<u64>,
    /// The home domain (default: the IMPU's host).
    #[arg(long)]
    domain: Option<String>,
    /// The P-CSCF's UDP address and port [default: 127.0.0.1:5060].
    #[arg(long)]
    pcscf: Option<SocketAddr>,
    /// Our UDP address and port (port 0: any free one) [default:
    /// 127.0.0.1:0].
    #[arg(long)]
    local: Option<SocketAddr>,
    /// How SIP is protected: none (in clear), udp (ESP in UDP, sec-agree
    /// mod=UDP-enc-tun, in this process) or tun (ESP transport mode by
    /// ipsecd, sec-agree mod=trans; root) [default: none].
    #[arg(long, value_parser = Ipsec::parse)]
    ipsec: Option<Ipsec>,
    /// What SIP goes over: udp or tcp (tcp needs --ipsec none or tun)
    /// [default: udp].
    #[arg(long, value_parser = tools::ims::transport)]
    transport: Option<gm::txn::Protocol>,
    /// ipsecd's control socket with --ipsec tun [default: this network
    /// namespace's daemon].
    #[arg(long, value_name = "PATH")]
    ipsecd_socket: Option<PathBuf>,
    /// Our protected client port with --ipsec udp or tun (0, the default: any
    /// free one).
    #[arg(long)]
    port_c: Option<u16>,
    /// Our protected server port with --ipsec udp or tun (0, the default: any
    /// free one).
    #[arg(long)]
    port_s: Option<u16>,
    /// A sec-agree offer, ALG/EALG (alg hmac-sha-1-96 or hmac-md5-96, ealg
    /// aes-cbc, des-ede3-cbc or null); repeat it for more, in our order of
    /// preference [default: both algs, each with aes-cbc, des-ede3-cbc and
    /// null].
    #[arg(long, value_name = "ALG/EALG")]
    offer: Vec<String>,
    /// Write every packet sent and received to this pcap file, as on the
    /// wire (--ipsec udp).
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Print the SAs' keys in the sa event lines (to decrypt a capture;
    /// test and demo runs only).
    #[arg(long)]
    show_keys: bool,
    /// SigComp over the SAs (needs --ipsec udp or tun).
    #[arg(long)]
    sigcomp: bool,
    /// With --sigcomp: locally available bytecode and shared compression
    /// (smaller; a decompressor without our bytecode, e.g. tshark, cannot
    /// read the messages).
    #[arg(long)]
    sigcomp_full: bool,
    /// The SMS service centre's PSI; its E.164 number is the RP address
    /// (default: `sip:+15555550000@<domain>`).
    #[arg(long, value_name = "URI")]
    sms_centre: Option<String>,
    /// The registration expiry asked for, in seconds [default: 600000].
    #[arg(long)]
    expires: Option<u32>,
    /// SIP timer T1 (500ms by default); transactions time out after 64*T1.
    #[arg(long, value_parser = tools::ims::parse_duration)]
    t1: Option<Duration>,
    /// SIP timer T2, the longest retransmission interval (4s by default).
    #[arg(long, value_parser = tools::ims::parse_duration)]
    t2: Option<Duration>,
    /// SIP timer T4, how long a message stays in the network (5s by
    /// default).
    #[arg(long, value_parser = tools::ims::parse_duration)]
    t4: Option<Duration>,
    /// Print whole messages.
    #[arg(short, long)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register, print the outcome, de-register (unless --stay).
    Register {
        /// Exit registered, without de-registering.
        #[arg(long)]
        stay: bool,
    },
    /// Register, send a MESSAGE per text (one after the other), print
    /// each final status, de-register.
    Message {
        /// The target's URI, e.g. sip:alice@ims.example.org.
        to: String,
        /// The texts (text/plain), one MESSAGE each.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Stay registered, print what comes (MESSAGEs, answered 200), and
    /// run the commands read from stdin, one per line (message, sms,
    /// publish, unpublish, subscribe, unsubscribe, quit; see below), each
    /// ended by a `done` event; until quit or SIGTERM/SIGINT, then
    /// de-register. The end of stdin ends nothing.
    Listen,
    /// Register, PUBLISH our presence (one PIDF tuple), print the etag,
    /// stay until SIGTERM/SIGINT; then remove it (Expires: 0) and
    /// de-register.
    Publish {
        /// The basic status.
        status: Status,
        /// A note in the tuple.
        #[arg(long)]
        note: Option<String>,
        /// The presentity to publish for (default: our IMPU; a network
        /// refuses a PUBLISH for someone else's identity, 403).
        #[arg(long)]
        resource: Option<String>,
    },
    /// Register, SUBSCRIBE to a presentity's presence, print each NOTIFY,
    /// until SIGTERM/SIGINT; then unsubscribe (Expires: 0) and
    /// de-register.
    Subscribe {
        /// The presentity's URI, e.g. sip:alice@ims.example.org.
        uri: String,
    },
    /// Register, send an SMS (TS 24.341) through the service centre, wait
    /// for its RP-ACK, de-register.
    Sms {
        /// The recipient's E.164 number: +15555550102 or tel:+15555550102.
        to: String,
        /// The text (a long one goes in parts).
        text: String,
    },
    /// The demo: a pcscf and two UAs (alice, bob) on loopback, no root;
    /// AKA with AUTS, sec-agree, ESP in UDP, SigComp, MESSAGE, SMS,
    /// presence; the ladder, a summary, and a pcap with the tshark
    /// command that decrypts it. Needs no other argument.
    Demo(tools::ims::demo::DemoArgs),
}

/// The basic status published (RFC 3863 §4.1.4).
#[derive(Clone, Copy, ValueEnum)]
enum Status {
    Open,
    Closed,
}

impl From<Status> for Basic {
    fn from(s: Status) -> Basic {
        match s {
            Status::Open => Basic::Open,
            Status::Closed => Basic::Closed,
        }
    }
}

/// Where the P-CSCF is when neither a flag nor the file says.
const DEFAULT_PCSCF: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5060);

/// Our address when neither a flag nor the file says: loopback, any port.
const DEFAULT_LOCAL: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// How long we ask a publication and a subscription to last (RFC 3856
/// §6.4: an hour); refreshed before.
const PRESENCE_EXPIRES: u32 = 3600;

/// How a run ended badly: `Refused` exits 1, `Error` 2.
enum Failure {
    Refused(String),
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Error(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Demo(args) = &cli.command {
        return tools::ims::demo::main(args);
    }
    let cfg = match settings(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imsua: {e:#}");
            return ExitCode::from(2);
        }
    };
    for (missing, name) in [
        (cfg.impi.is_none(), "--impi <IMPI>"),
        (cfg.impu.is_none(), "--impu <IMPU>"),
        (
            cfg.k.is_none() && cfg.password.is_none(),
            "--k <K> (or --password)",
        ),
    ] {
        if missing {
            Cli::command()
                .error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    format!(
                        "the argument {name} is required, as a flag or in --config (only `imsua demo` needs none)"
                    ),
                )
                .exit();
        }
    }
    let sigcomp = cfg.sigcomp.unwrap_or(false);
    if sigcomp && !cfg.ipsec.is_some_and(Ipsec::sec_agree) {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--sigcomp needs --ipsec udp or tun: a Gm compartment is opened per SA set (TS 24.229 §8.1.1)",
            )
            .exit();
    }
    if cfg.transport == Some(gm::txn::Protocol::Tcp) && cfg.ipsec == Some(Ipsec::Udp) {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--transport tcp needs --ipsec none or tun: ESP in UDP carries UDP datagrams here",
            )
            .exit();
    }
    if cfg.sigcomp_full == Some(true) && !sigcomp {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--sigcomp-full needs --sigcomp",
            )
            .exit();
    }
    match run(&cli, &cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(e)) => {
            eprintln!("imsua: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Error(e)) => {
            eprintln!("imsua: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The settings: the flags given over the `--config` file's
/// ([`tools::ims::config::merge`]). An error (the file, an `--offer`) is
/// a usage error, one line.
fn settings(cli: &Cli) -> Result<UaConfig> {
    let offers = cli
        .offer
        .iter()
        .map(|o| Offer::parse(o).map_err(|e| anyhow!("--offer {e}")))
        .collect::<Result<Vec<_>>>()?;
    let flags = UaConfig {
        impi: cli.impi.clone(),
        impu: cli.impu.clone(),
        domain: cli.domain.clone(),
        k: cli.k,
        op: cli.op.map(OpKey::Op).or(cli.opc.map(OpKey::Opc)),
        amf: None,
        password: cli.password.clone(),
        sqn: cli.sqn,
        pcscf: cli.pcscf,
        local: cli.local,
        ipsec: cli.ipsec,
        transport: cli.transport,
        ipsecd_socket: cli.ipsecd_socket.clone(),
        port_c: cli.port_c,
        port_s: cli.port_s,
        // A switch not given says nothing: the file's value stands.
        sigcomp: cli.sigcomp.then_some(true),
        sigcomp_full: cli.sigcomp_full.then_some(true),
        sms_centre: cli.sms_centre.clone(),
        expires: cli.expires,
        t1: cli.t1,
        t2: cli.t2,
        t4: cli.t4,
        offers: (!offers.is_empty()).then_some(offers),
    };
    let file = match &cli.config {
        Some(path) => tools::ims::config::load(path)?,
        None => UaConfig::default(),
    };
    Ok(tools::ims::config::merge(file, flags))
}

/// The UA between datagrams: the UE role (`gm::ue::Ua`), the IO around
/// it, and what its events told the command being run.
struct Client {
    transport: Transport,
    ua: gm::ue::Ua,
    pcscf: SocketAddr,
    impu: String,
    rng: OsRandom,
    ladder: Ladder,
    start: Instant,
    show_keys: bool,
    /// The transactions' Timer F (64·T1), for the error lines.
    timeout: Duration,
    /// SigComp (or not) between the transactions and the transport.
    comp: SipComp,
    /// What the registration last reported.
    outcome: Option<Outcome>,
    /// The first failure, kept until the REGISTER in flight ends.
    failure: Option<gm::reg::Error>,
    /// The final responses of our MESSAGEs (`Err`: none came).
    msg_finals: HashMap<TxnId, Result<(u16, String), ()>>,
    /// The outcome of the last PUBLISH (`Err`: no answer).
    pub_outcome: Option<Result<Published, ()>>,
    /// The resource whose SUBSCRIBE answer `subscribe` waits for, and the
    /// answer.
    sub_wait: Option<String>,
    sub_final: Option<Result<Subscribed, ()>>,
    /// Whether every presence subscription ended (after unsubscribing).
    unsubscribed: bool,
    /// SMS over IP: the outcome of each RP-DATA of ours by RP-MR, and a
    /// part whose MESSAGE was refused (its final status) or unanswered.
    sms_outcomes: HashMap<u8, SmsOutcome>,
    sms_not_sent: Option<Option<u16>>,
    /// Each RP-DATA of ours in flight, by RP-MR: to whom (E.164), which
    /// part of how many (for the sms-status line).
    sms_parts: HashMap<u8, (String, usize, usize)>,
    /// Command lines from stdin (`listen`), and those read but not run.
    input: Option<Receiver<String>>,
    pending: VecDeque<String>,
}

/// How the service centre answered one RP-DATA of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SmsOutcome {
    Acked,
    Refused { cause: u8 },
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Registered,
    Deregistered,
    Failed,
}

fn run(cli: &Cli, cfg: &UaConfig) -> Result<(), Failure> {
    let (Some(impi), Some(impu)) = (cfg.impi.as_deref(), cfg.impu.as_deref()) else {
        return Err(anyhow!("--impi and --impu are required").into());
    };
    let pcscf = cfg.pcscf.unwrap_or(DEFAULT_PCSCF);
    let stop = Stop::install()?;
    let ipsec = cfg.ipsec.unwrap_or(Ipsec::None);
    // Only --ipsec tun talks to ipsecd (the default socket costs a stat).
    let socket = match (ipsec, &cfg.ipsecd_socket) {
        (Ipsec::Tun, None) => tools::ipsecd::instance::default_socket(),
        (_, given) => given.clone().unwrap_or_default(),
    };
    let protocol = cfg.transport.unwrap_or_default();
    // The first AKA (MILENAGE runs AES) and the first SA's crypto pay the
    // CPU feature detection of their back ends: paid here in every mode,
    // not inside the registration (only --ipsec udp's transport did it,
    // so --ipsec none paid it between its 401 and its second REGISTER).
    opensec::warm_up();
    let mut transport = Transport::bind(
        ipsec,
        cfg.local.unwrap_or(DEFAULT_LOCAL),
        (cfg.port_c.unwrap_or(0), cfg.port_s.unwrap_or(0)),
        (&socket, &format!("imsua:{impi}")),
        match protocol {
            gm::txn::Protocol::Udp => tools::ims::Tcp::Off,
            gm::txn::Protocol::Tcp => tools::ims::Tcp::Send,
        },
    )?;
    if let Transport::Tun(t) = &transport {
        let l = &t.leftovers;
        if l.sas + l.larval + l.policies > 0 {
            eprintln!(
                "imsua: removed what a previous run of {} left at ipsecd: {} SAs, {} held SPIs, {} policies",
                t.owner(),
                l.sas,
                l.larval,
                l.policies
            );
        }
    }
    if let Some(p) = &cli.pcap {
        transport.capture(p)?;
    }
    // A second client port, for the SAs of a re-registration.
    transport.bind_alt_port(0)?;
    let local = transport.local_addr()?;
    let domain = match &cfg.domain {
        Some(d) => d.clone(),
        None => gm::pager::aor(impu)
            .and_then(|a| a.rsplit('@').next().map(str::to_owned))
            .ok_or_else(|| anyhow!("--impu {impu:?} is not a SIP URI"))?,
    };
    let mut rng = OsRandom::new()?;
    let mut config = UeConfig::new(impi, impu, &domain, local.ip(), pcscf.ip(), (0, 0), (0, 0));
    config.port = local.port();
    config.protocol = protocol;
    config.expires = cfg.expires.unwrap_or(600_000);
    if let Some(offers) = &cfg.offers {
        config.algorithms = offers.iter().map(|o| (o.alg, o.ealg)).collect();
    }
    match (transport.protected_ports()?, ipsec.sa_mode()) {
        // --ipsec udp: sec-agree in mod=UDP-enc-tun on our sockets' ports,
        // SPIs ours to choose; tun: mod=trans, SPIs held at ipsecd.
        (Some((port_c, port_s)), Some(mode)) => {
            let (spi_c, spi_s) = match &mut transport {
                Transport::Tun(t) => t.hold_spis(pcscf.ip())?,
                _ => gm::reg::fresh_spis(&mut rng, &[])
                    .ok_or_else(|| anyhow!("no random SPIs from /dev/urandom"))?,
            };
            config.mode = mode;
            (config.spi_c, config.spi_s) = (spi_c, spi_s);
            (config.port_c, config.port_s) = (port_c, port_s);
        }
        // --ipsec none: no sec-agree, plain digest AKA.
        _ => config.sec_agree = false,
    }
    let creds = match (&cfg.password, cfg.k) {
        (Some(p), _) => Credentials::Password(p.clone()),
        (None, Some(k)) => {
            let Some(op) = cfg.op else {
                return Err(anyhow!("give --op or --opc with --k").into());
            };
            Credentials::Aka {
                k,
                op,
                sqn_ms: cfg.sqn.unwrap_or(0),
            }
        }
        (None, None) => return Err(anyhow!("give --k (AKA) or --password (digest)").into()),
    };
    let sms_centre = cfg
        .sms_centre
        .clone()
        .unwrap_or_else(|| gm::sms::sip::default_centre(&domain));
    let centre_number = gm::sms::sip::e164(&sms_centre).ok_or_else(|| {
        anyhow!("--sms-centre {sms_centre:?}: no E.164 number (sip:+digits@host or tel:+digits)")
    })?;
    let comp = SipComp::new(tools::ims::comp::mode(
        cfg.sigcomp.unwrap_or(false),
        cfg.sigcomp_full.unwrap_or(false),
    ))?;
    let sigcomp_id =
        gm::comp::sigcomp_id_from_instance(&config.instance).filter(|_| comp.enabled());
    let ue = Ue::new(config, creds, &mut rng);
    let mut timers = Timers::default();
    timers.t1 = cfg.t1.unwrap_or(timers.t1);
    timers.t2 = cfg.t2.unwrap_or(timers.t2);
    timers.t4 = cfg.t4.unwrap_or(timers.t4);
    let presentity = match &cli.command {
        Command::Publish {
            resource: Some(r), ..
        } => r.clone(),
        _ => impu.to_owned(),
    };
    let settings = gm::ue::Settings {
        impu: impu.to_owned(),
        presentity,
        pcscf,
        local,
        protocol,
        sigcomp_id,
        presence_expires: PRESENCE_EXPIRES,
        sms_centre,
    };
    let sms = SmsUe::new(gm::sms::Address::international(&centre_number));
    let mut client = Client {
        transport,
        ua: gm::ue::Ua::new(ue, Transactions::new(timers), sms, settings),
        pcscf,
        impu: impu.to_owned(),
        rng,
        ladder: Ladder::new(cli.verbose, false),
        start: Instant::now(),
        show_keys: cli.show_keys,
        timeout: timers.timeout(),
        comp,
        outcome: None,
        failure: None,
        msg_finals: HashMap::new(),
        pub_outcome: None,
        sub_wait: None,
        sub_final: None,
        unsubscribed: false,
        sms_outcomes: HashMap::new(),
        sms_not_sent: None,
        sms_parts: HashMap::new(),
        input: None,
        pending: VecDeque::new(),
    };
    let result = client.run(&stop, &cli.command);
    // Lines held for a message that never left (the run stopped on an
    // error between the SAs' installation and the flush).
    client.ladder.release();
    // SAs left (register --stay, a failure): removed before exit.
    match client.transport.close() {
        Ok(sets) => {
            for (set, usage) in &sets {
                client.sa_events(set, "remove", usage);
            }
        }
        Err(e) => eprintln!("imsua: {e:#}"),
    }
    let mut stopped = Json::obj();
    stopped.set("event", "stopped");
    client.comp.report(&mut stopped);
    stopped.set("dropped", Json::Int(client.transport.dropped() as i64));
    event(&mut stopped);
    result
}

fn event(j: &mut Json) {
    println!("{}", json_line(j));
}

/// The `sa` event lines of `set`.
fn sa_lines(set: &SaSet, action: &str, keys: bool, usage: &[tools::ims::SaUsage]) -> String {
    let mut lines = String::new();
    for j in tools::ims::sa_events(set, action, keys, usage) {
        j.write_line(&mut lines);
        lines.push('\n');
    }
    lines
}

impl Client {
    fn run(&mut self, stop: &Stop, command: &Command) -> Result<(), Failure> {
        let now = self.now();
        self.ua.register(now, &mut self.rng);
        self.flush()?;
        self.until(stop, |c| c.outcome.is_some() && !c.ua.registering())?;
        self.check_registered()?;
        self.after_registration(stop, command)
    }

    fn after_registration(&mut self, stop: &Stop, command: &Command) -> Result<(), Failure> {
        let ua = self;
        match command {
            Command::Register { stay: true } => Ok(()),
            Command::Register { stay: false } => ua.deregister(stop),
            Command::Message { to, text } => {
                let mut refused = None;
                for t in text {
                    let status = ua.message(stop, to, t)?;
                    if !(200..=299).contains(&status.0) {
                        refused = Some(status);
                        break;
                    }
                }
                ua.deregister(stop)?;
                match refused {
                    None => Ok(()),
                    Some((s, reason)) => Err(Failure::Refused(format!(
                        "MESSAGE to {to} refused: {s} {reason}"
                    ))),
                }
            }
            Command::Listen => {
                let (lines, wake) = tools::ims::command::stdin_lines()
                    .map_err(|e| anyhow!("cannot read stdin: {e}"))?;
                ua.transport.set_wake(wake);
                ua.input = Some(lines);
                ua.listen(stop)?;
                ua.deregister(&Stop::never())
            }
            Command::Publish { status, note, .. } => {
                if let Err(e) = ua.publish(stop, (*status).into(), note.as_deref()) {
                    ua.deregister(&Stop::never())?;
                    return Err(e);
                }
                ua.until(stop, |_| false)?;
                // deregister removes the publication first.
                ua.deregister(&Stop::never())
            }
            Command::Subscribe { uri } => {
                if let Err(e) = ua.subscribe(stop, uri) {
                    ua.deregister(&Stop::never())?;
                    return Err(e);
                }
                ua.until(stop, |_| false)?;
                ua.deregister(&Stop::never())
            }
            Command::Sms { to, text } => {
                let sent = ua.sms(stop, to, text);
                let deregistered = ua.deregister(stop);
                sent.and(deregistered)
            }
            Command::Demo(_) => Ok(()),
        }
    }

    /// Runs the command lines of stdin until `quit` or a signal, each
    /// ended by a `done` event; a command that fails says why in it and
    /// the UA goes on.
    fn listen(&mut self, stop: &Stop) -> Result<(), Failure> {
        loop {
            self.until(stop, |c| {
                !c.pending.is_empty() || c.outcome != Some(Outcome::Registered)
            })?;
            self.still_registered()?;
            let Some(line) = self.pending.pop_front() else {
                return Ok(()); // a signal
            };
            let (name, result) = match tools::ims::command::parse(&line) {
                Ok(None) => continue,
                Ok(Some(UaCommand::Quit)) => {
                    event(
                        Json::obj()
                            .set("event", "done")
                            .set("command", "quit")
                            .set("ok", true),
                    );
                    return Ok(());
                }
                Ok(Some(cmd)) => (cmd.name(), self.execute(stop, &cmd)),
                Err(e) => ("?", Err(Failure::Error(anyhow!("{e}")))),
            };
            let mut done = Json::obj();
            done.set("event", "done").set("command", name);
            match result {
                Ok(()) => done.set("ok", true),
                Err(Failure::Refused(e)) => done.set("ok", false).set("error", e),
                Err(Failure::Error(e)) => done.set("ok", false).set("error", format!("{e:#}")),
            };
            event(&mut done);
            if stop.is_set() {
                return Ok(());
            }
        }
    }

    /// Whether the registration still holds while we listen: a
    /// re-registration that failed (the P-CSCF stopped answering, or
    /// refused it) or a network-initiated de-registration ends the run,
    /// with the reason.
    fn still_registered(&mut self) -> Result<(), Failure> {
        match (self.outcome, self.failure.take()) {
            (Some(Outcome::Registered), _) => Ok(()),
            (_, Some(gm::reg::Error::Timeout)) => Err(Failure::Error(anyhow!(
                "the registration is lost: the P-CSCF at {} did not answer the re-registration (64*T1 = {} ms); has it stopped?",
                self.pcscf,
                self.timeout.as_millis()
            ))),
            (_, Some(e)) => Err(Failure::Refused(format!(
                "the registration is lost: the re-registration failed: {e}"
            ))),
            (Some(Outcome::Deregistered), None) => {
                Err(Failure::Refused("the network de-registered us".to_owned()))
            }
            (_, None) => Err(Failure::Error(anyhow!("the registration ended"))),
        }
    }

    /// One command of `listen`.
    fn execute(&mut self, stop: &Stop, cmd: &UaCommand) -> Result<(), Failure> {
        match cmd {
            UaCommand::Message { to, text } => match self.message(stop, to, text)? {
                (200..=299, _) => Ok(()),
                (s, reason) => Err(Failure::Refused(format!(
                    "MESSAGE to {to} refused: {s} {reason}"
                ))),
            },
            UaCommand::Sms { to, text } => self.sms(stop, to, text),
            UaCommand::Publish { open, note } => {
                let basic = if *open { Basic::Open } else { Basic::Closed };
                self.publish(stop, basic, note.as_deref())
            }
            UaCommand::Unpublish => self.unpublish(stop),
            UaCommand::Subscribe { uri } => self.subscribe(stop, uri),
            UaCommand::Unsubscribe => self.unsubscribe_all(stop),
            // listen ends before asking.
            UaCommand::Quit => Ok(()),
        }
    }

    /// PUBLISHes our presence: `basic` and `note` in one tuple (RFC 3903
    /// §4); the first call makes the publication, a later one modifies
    /// it. Returns after the 2xx (a `published` event).
    fn publish(&mut self, stop: &Stop, basic: Basic, note: Option<&str>) -> Result<(), Failure> {
        let now = self.now();
        self.pub_outcome = None;
        self.ua
            .publish(basic, note, now, &mut self.rng)
            .map_err(|e| anyhow!("cannot send the PUBLISH: {e}"))?;
        self.wait_publish(stop)?;
        let etag = self.ua.etag().map_or(Json::Null, Json::from);
        event(
            Json::obj()
                .set("event", "published")
                .set("resource", self.ua.settings().presentity.clone())
                .set("etag", etag)
                .set("basic", basic.as_str()),
        );
        Ok(())
    }

    /// Removes our publication (`Expires: 0`), if there is one (an
    /// `unpublished` event).
    fn unpublish(&mut self, stop: &Stop) -> Result<(), Failure> {
        let now = self.now();
        self.pub_outcome = None;
        let sent = self
            .ua
            .unpublish(now, &mut self.rng)
            .map_err(|e| anyhow!("cannot send the PUBLISH: {e}"))?;
        if sent {
            self.wait_publish(stop)?;
        }
        Ok(())
    }

    /// Waits for the outcome of our PUBLISH (a 412 or 423 is sent again
    /// by the publication's rules on the way).
    fn wait_publish(&mut self, stop: &Stop) -> Result<(), Failure> {
        self.flush()?;
        self.until(stop, |c| c.pub_outcome.is_some())?;
        self.publish_outcome()
    }

    /// What the last PUBLISH came to.
    fn publish_outcome(&mut self) -> Result<(), Failure> {
        let resource = self.ua.settings().presentity.clone();
        match self.pub_outcome.take() {
            Some(Ok(Published::Accepted { .. } | Published::Removed)) => Ok(()),
            Some(Ok(Published::Failed(status))) => Err(Failure::Refused(format!(
                "PUBLISH for {resource} refused: the network answered {status} {}",
                gm::sip::reason_phrase(status)
            ))),
            Some(Ok(Published::Retry(_))) | None => Err(Failure::Error(anyhow!(
                "stopped before the PUBLISH was answered"
            ))),
            Some(Err(())) => Err(Failure::Error(anyhow!(
                "no answer from the P-CSCF at {}: the PUBLISH transaction timed out",
                self.pcscf
            ))),
        }
    }

    /// SUBSCRIBEs to `uri`'s presence (RFC 3856 §5); returns after the
    /// 2xx. Its NOTIFYs, whenever they come, are answered and printed.
    fn subscribe(&mut self, stop: &Stop, uri: &str) -> Result<(), Failure> {
        let now = self.now();
        self.ua
            .subscribe(uri, now, &mut self.rng)
            .map_err(|e| anyhow!("cannot send the SUBSCRIBE to {uri}: {e}"))?;
        self.sub_wait = Some(uri.to_owned());
        self.sub_final = None;
        self.flush()?;
        self.until(stop, |c| c.sub_final.is_some())?;
        self.sub_wait = None;
        match self.sub_final.take() {
            Some(Ok(Subscribed::Accepted { .. })) => Ok(()),
            Some(Ok(Subscribed::Refused { status, .. })) => Err(Failure::Refused(format!(
                "SUBSCRIBE to {uri} refused: the network answered {status} {}",
                gm::sip::reason_phrase(status)
            ))),
            Some(Err(())) => Err(Failure::Error(anyhow!(
                "no answer from the P-CSCF at {}: the SUBSCRIBE transaction timed out",
                self.pcscf
            ))),
            None => Err(Failure::Error(anyhow!(
                "stopped before the SUBSCRIBE was answered"
            ))),
        }
    }

    /// Ends every presence subscription (`Expires: 0`, RFC 6665
    /// §4.1.2.3) and waits for the final NOTIFYs (at most 64*T1 each).
    fn unsubscribe_all(&mut self, stop: &Stop) -> Result<(), Failure> {
        let now = self.now();
        self.unsubscribed = false;
        self.ua
            .unsubscribe_all(now, &mut self.rng)
            .map_err(|e| anyhow!("cannot send the SUBSCRIBE: {e}"))?;
        self.flush()?;
        self.until(stop, |c| c.unsubscribed)
    }

    /// Prints what a presence NOTIFY told.
    fn presence_event(seen: &Seen) {
        let mut j = Json::obj();
        j.set("event", "presence")
            .set("resource", seen.resource.clone());
        match &seen.document {
            Some(d) => {
                j.set("basic", d.basic().as_str())
                    .set(
                        "notes",
                        Json::Arr(d.note_texts().into_iter().map(Json::from).collect()),
                    )
                    .set("tuples", Json::Int(d.tuples.len() as i64));
            }
            None => {
                j.set("basic", Json::Null)
                    .set("notes", Json::Arr(Vec::new()))
                    .set("tuples", Json::Null);
            }
        }
        match &seen.state {
            SubState::Active { .. } => j.set("state", "active"),
            SubState::Pending { .. } => j.set("state", "pending"),
            SubState::Terminated { reason, .. } => j
                .set("state", "terminated")
                .set("reason", reason.clone().map_or(Json::Null, Json::from)),
        };
        event(&mut j);
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Runs the loop until `done` holds or a signal comes.
    fn until(&mut self, stop: &Stop, done: impl Fn(&Client) -> bool) -> Result<(), Failure> {
        let mut buf = tools::ims::esp_udp::recv_buffer();
        loop {
            if let Some(rx) = &self.input {
                self.pending.extend(rx.try_iter());
            }
            if done(self) || stop.is_set() {
                break;
            }
            let now = self.now();
            let wait = self
                .ua
                .poll_timeout()
                .map_or(Stop::POLL, |t| t.saturating_sub(now))
                .min(Stop::POLL);
            match self.transport.recv(&mut buf, wait)? {
                Some(Recv::Message(d)) => {
                    let wire = buf.get(d.range.clone()).unwrap_or_default();
                    let over_sas = d.protected_port.is_some();
                    let (bytes, sigcomp) = match self.comp.decode(wire, d.from, over_sas) {
                        Incoming::Sip { bytes, compressed } => {
                            (bytes, compressed.then_some(wire.len()))
                        }
                        Incoming::Nothing(what) => {
                            if self.ladder.verbose {
                                eprintln!("imsua: {what} from {}", d.from);
                            }
                            continue;
                        }
                        Incoming::Failed { reason, nack } => {
                            if self.ladder.verbose {
                                eprintln!(
                                    "imsua: SigComp from {} failed to decompress: {reason}{}",
                                    d.from,
                                    if nack.is_some() { "; NACK sent" } else { "" }
                                );
                            }
                            if let Some(n) = nack {
                                self.send_nack(&n, d.from);
                            }
                            continue;
                        }
                    };
                    let flow = d.protected_port.map_or(Flow::Unprotected, |port| {
                        Flow::protected(Side::Ue, port, d.from.port())
                    });
                    let reliability = d.reliability();
                    let parsed = Message::parse(&bytes);
                    let hop = Hop {
                        sigcomp,
                        spi: d.spi,
                        tcp: d.stream,
                        ..Hop::default()
                    };
                    self.ladder
                        .received(d.from, &bytes, parsed.as_ref().ok(), hop);
                    self.on_datagram(parsed, d.from, flow, reliability)?;
                }
                Some(Recv::Dropped { from, port, reason }) if self.ladder.verbose => {
                    eprintln!("imsua: dropped a datagram from {from} on port {port}: {reason}");
                }
                Some(Recv::Dropped { .. }) => {}
                None => {}
            }
            self.on_time()?;
        }
        Ok(())
    }

    fn check_registered(&mut self) -> Result<(), Failure> {
        match (self.outcome, self.failure.take()) {
            (Some(Outcome::Registered), _) => Ok(()),
            (_, Some(gm::reg::Error::Timeout)) => Err(Failure::Error(anyhow!(
                "no answer from the P-CSCF at {}: the REGISTER transaction timed out (64*T1 = {} ms)",
                self.pcscf,
                self.timeout.as_millis()
            ))),
            (_, Some(gm::reg::Error::NetworkAuthenticationFailed)) => {
                let status = self
                    .ua
                    .register_status()
                    .map_or("no answer".to_owned(), |s| {
                        format!("the network answered {s} {}", gm::sip::reason_phrase(s))
                    });
                Err(Failure::Refused(format!(
                    "registration failed: our K did not verify the network's AUTN (MAC failure, TS 33.102 §6.3.3); {status}"
                )))
            }
            (_, Some(gm::reg::Error::Rejected { status })) => Err(Failure::Refused(format!(
                "registration refused: the network answered {status} {}",
                gm::sip::reason_phrase(status)
            ))),
            (_, Some(e)) => Err(Failure::Refused(format!("registration failed: {e}"))),
            (_, None) => Err(Failure::Error(anyhow!(
                "stopped before the registration ended"
            ))),
        }
    }

    /// De-registers: `gm::ue::Ua` ends our presence first (a failure
    /// there does not keep us registered, and is reported after).
    fn deregister(&mut self, stop: &Stop) -> Result<(), Failure> {
        let now = self.now();
        let had_publication = self.ua.etag().is_some();
        self.outcome = None;
        self.pub_outcome = None;
        self.ua.deregister(now, &mut self.rng);
        self.flush()?;
        self.until(stop, |c| !c.ua.leaving() && !c.ua.registering())?;
        let presence = if had_publication {
            self.publish_outcome()
        } else {
            Ok(())
        };
        match (self.outcome, self.failure.take()) {
            (Some(Outcome::Deregistered), _) => Ok(()),
            (_, Some(gm::reg::Error::Timeout)) => Err(Failure::Error(anyhow!(
                "no answer from the P-CSCF at {}: the de-registration timed out",
                self.pcscf
            ))),
            (_, Some(e)) => Err(Failure::Refused(format!("de-registration failed: {e}"))),
            (_, None) => Err(Failure::Error(anyhow!(
                "stopped before the de-registration ended"
            ))),
        }?;
        presence
    }

    fn message(&mut self, stop: &Stop, to: &str, text: &str) -> Result<(u16, String), Failure> {
        let now = self.now();
        let id = self
            .ua
            .message(to, text, now, &mut self.rng)
            .map_err(|e| Failure::Error(anyhow!("cannot send the MESSAGE to {to}: {e}")))?;
        self.flush()?;
        self.until(stop, |c| c.msg_finals.contains_key(&id))?;
        let (status, reason) = match self.msg_finals.remove(&id) {
            Some(Ok(answer)) => answer,
            Some(Err(())) => {
                return Err(Failure::Error(anyhow!(
                    "no answer from the P-CSCF at {}: the MESSAGE transaction timed out",
                    self.pcscf
                )));
            }
            None => {
                return Err(Failure::Error(anyhow!(
                    "stopped before the MESSAGE was answered"
                )));
            }
        };
        event(
            Json::obj()
                .set("event", "message-status")
                .set("to", to)
                .set("status", Json::Int(i64::from(status)))
                .set("reason", reason.clone()),
        );
        Ok((status, reason))
    }

    /// Registered: sends `text` to the E.164 number `to` as SMS over IP,
    /// an RP-DATA per part, each MESSAGE waited for in turn; returns once
    /// the service centre has acknowledged every part (RP-ACK), with
    /// `Failure::Refused` when it refused one (RP-ERROR), answered a
    /// MESSAGE with non-2xx, or TR1M ran out.
    fn sms(&mut self, stop: &Stop, to: &str, text: &str) -> Result<(), Failure> {
        let digits = gm::sms::sip::e164(to).ok_or_else(|| {
            anyhow!("{to:?} is not an E.164 number: write +15555550102 or tel:+15555550102")
        })?;
        let now = self.now();
        self.sms_not_sent = None;
        let mrs = self
            .ua
            .sms(&digits, text, now, &mut self.rng)
            .map_err(|e| anyhow!("cannot send the SMS: {e}"))?;
        for (i, mr) in mrs.iter().enumerate() {
            self.sms_parts
                .insert(*mr, (format!("+{digits}"), i + 1, mrs.len()));
        }
        self.flush()?;
        self.until(stop, |c| {
            c.sms_not_sent.is_some() || mrs.iter().all(|m| c.sms_outcomes.contains_key(m))
        })?;
        let centre = &self.ua.settings().sms_centre;
        match self.sms_not_sent.take() {
            Some(Some(status)) => {
                return Err(Failure::Refused(format!(
                    "SMS to +{digits} refused: the service centre {centre} answered {status} {}",
                    gm::sip::reason_phrase(status)
                )));
            }
            Some(None) => {
                return Err(Failure::Error(anyhow!(
                    "no answer from the P-CSCF at {}: the MESSAGE transaction timed out",
                    self.pcscf
                )));
            }
            None => {}
        }
        for mr in &mrs {
            match self.sms_outcomes.remove(mr) {
                Some(SmsOutcome::Acked) => {}
                Some(SmsOutcome::Refused { cause }) => {
                    return Err(Failure::Refused(format!(
                        "SMS to +{digits} refused: RP-ERROR cause {cause} ({})",
                        gm::sms::cause_name(cause)
                    )));
                }
                Some(SmsOutcome::TimedOut) => {
                    return Err(Failure::Refused(format!(
                        "SMS to +{digits} failed: no RP-ACK from the service centre within TR1M ({} s)",
                        gm::sms::service::TR1M.as_secs()
                    )));
                }
                None => {
                    return Err(Failure::Error(anyhow!(
                        "stopped before the service centre acknowledged the SMS"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Prints an SMS event and keeps the outcome of our RP-DATA;
    /// `timed_out` for the failures of TR1M.
    fn on_sms_event(&mut self, e: UeEvent, timed_out: bool) {
        let number = |a: &gm::sms::Address| {
            if a.ton == 1 {
                format!("+{}", a.number)
            } else {
                a.number.clone()
            }
        };
        let mut j = Json::obj();
        let mut status = |j: &mut Json, rp_mr: u8| {
            j.set("event", "sms-status");
            if let Some((to, part, parts)) = self.sms_parts.remove(&rp_mr) {
                j.set("to", to)
                    .set("part", Json::Int(part as i64))
                    .set("parts", Json::Int(parts as i64));
            }
            j.set("rp_mr", Json::Int(i64::from(rp_mr)));
        };
        match e {
            UeEvent::Submitted { rp_mr, tp_mr } => {
                status(&mut j, rp_mr);
                self.sms_outcomes.insert(rp_mr, SmsOutcome::Acked);
                j.set("tp_mr", Json::Int(i64::from(tp_mr)))
                    .set("status", "ok");
            }
            UeEvent::SubmitFailed {
                rp_mr,
                cause,
                tp_fcs,
            } => {
                let outcome = if timed_out {
                    SmsOutcome::TimedOut
                } else {
                    SmsOutcome::Refused { cause }
                };
                status(&mut j, rp_mr);
                self.sms_outcomes.insert(rp_mr, outcome);
                j.set("status", if timed_out { "timeout" } else { "error" })
                    .set("cause", Json::Int(i64::from(cause)))
                    .set("reason", gm::sms::cause_name(cause))
                    .set_opt("tp_fcs", tp_fcs.map(i64::from).map(Json::Int));
            }
            UeEvent::Received {
                from,
                text,
                warning,
            } => {
                j.set("event", "sms")
                    .set("from", number(&from))
                    .set("text", text)
                    .set_opt("warning", warning.map(|w| format!("{w:?}")));
            }
            UeEvent::StatusReport {
                tp_mr,
                recipient,
                status,
            } => {
                j.set("event", "sms-report")
                    .set("tp_mr", Json::Int(i64::from(tp_mr)))
                    .set("recipient", number(&recipient))
                    .set("status", Json::Int(i64::from(status)));
            }
        }
        event(&mut j);
    }

    /// A received message (parsed, or why not) for the UA role.
    fn on_datagram(
        &mut self,
        parsed: Result<Message<'_>, gm::sip::Error>,
        from: SocketAddr,
        flow: Flow,
        reliability: Reliability,
    ) -> Result<(), Failure> {
        let mut m = match parsed {
            Ok(m) => m,
            Err(e) => {
                self.comp.unreadable();
                if self.ladder.verbose {
                    eprintln!("imsua: dropped a datagram from {from}: not SIP ({e})");
                }
                return Ok(());
            }
        };
        let now = self.now();
        if m.is_request() {
            // The top Via says where it came from (RFC 3581).
            if gm::txn::stamp_via(&mut m, from).is_err() {
                return Ok(());
            }
            let arrived_on = self.transport.arrival_port(flow, Side::Ue);
            self.ua.on_request(
                &m,
                from,
                (flow, arrived_on, reliability),
                now,
                &mut self.rng,
            );
        } else {
            self.ua.on_response(&m, flow, now, &mut self.rng);
        }
        self.flush()
    }

    fn on_time(&mut self) -> Result<(), Failure> {
        let now = self.now();
        if self.ua.refresh_due(now) {
            self.offer_next_sas()?;
        }
        if self.ua.poll_timeout().is_some_and(|t| t <= now) {
            self.ua.handle_timeout(now, &mut self.rng);
        }
        self.flush()
    }

    /// Gives the UE the SPIs and client port of its next SA set (with the
    /// second client port bound), as the re-registration that offers them
    /// leaves: a P-CSCF that re-authenticates it hands the registration
    /// over to fresh SAs (TS 33.203 §7.4). The port is the one of our two
    /// client ports the set in use does not have; the SPIs are random
    /// (`--ipsec udp`) or held at ipsecd now (`--ipsec tun`: a held SPI
    /// lives 30 s).
    fn offer_next_sas(&mut self) -> Result<(), Failure> {
        let (Some(alt), Some((port_c, _))) =
            (self.transport.alt_port(), self.transport.protected_ports()?)
        else {
            return Ok(());
        };
        let Some(port) = self.ua.next_port_c([port_c, alt]) else {
            return Ok(());
        };
        let spis = match &mut self.transport {
            Transport::Tun(t) => t.hold_spis(self.pcscf.ip())?,
            _ => self
                .ua
                .fresh_next_spis(&mut self.rng)
                .ok_or_else(|| anyhow!("no random SPIs from /dev/urandom"))?,
        };
        self.ua
            .offer_next(spis, port)
            .map_err(|e| anyhow!("cannot offer the next SAs: {e}"))?;
        Ok(())
    }

    /// Carries out what the role asks, in order: messages to send
    /// (compressed and protected as their flow says), SA changes (with
    /// the SigComp compartments that follow them: TS 24.229 §8.1.1), and
    /// events, printed. An SA that cannot be installed ends the run:
    /// nothing that needs it may leave in clear.
    fn flush(&mut self) -> Result<(), Failure> {
        while let Some(o) = self.ua.poll_output() {
            match o {
                gm::ue::Output::Transmit(t) => tools::ims::send_transmit(
                    "imsua",
                    t,
                    self.ua.transactions(),
                    &mut self.comp,
                    &mut self.transport,
                    &self.ladder,
                ),
                gm::ue::Output::InstallSas { set, replaces } => {
                    self.transport.install(&set)?;
                    // The compartment opens with the SAs; a handover's
                    // new set takes the old one's.
                    match &replaces {
                        Some(old) => self.comp.hand_over(old, &set),
                        None => self.comp.open(&set),
                    }
                    // Said once the request they are for has left, before
                    // its line.
                    let keys = self.show_keys;
                    self.ladder.hold(move || sa_lines(&set, "add", keys, &[]));
                }
                gm::ue::Output::UpdateSas(set) => self.transport.update(&set)?,
                gm::ue::Output::RemoveSas(set) => {
                    self.comp.close(&set);
                    let usage = self.transport.remove(&set)?;
                    self.sa_events(&set, "remove", &usage);
                }
                gm::ue::Output::Event(e) => self.on_event(e),
            }
        }
        self.ladder.release();
        Ok(())
    }

    /// Prints what the role reports and keeps what the command waits for.
    fn on_event(&mut self, e: gm::ue::Event) {
        use gm::ue::Event as E;
        match e {
            E::Registered(r) => {
                self.outcome = Some(Outcome::Registered);
                event(
                    Json::obj()
                        .set("event", "registered")
                        .set("impu", self.impu.clone())
                        .set("expires", Json::Int(r.expires.as_secs() as i64))
                        .set("us", Json::Int(self.now().as_micros() as i64))
                        .set(
                            "service_route",
                            Json::Arr(r.service_routes.iter().map(|s| s.as_str().into()).collect()),
                        )
                        .set(
                            "p_associated_uri",
                            Json::Arr(
                                r.associated_uris
                                    .iter()
                                    .map(|s| s.as_str().into())
                                    .collect(),
                            ),
                        ),
                );
            }
            E::Shortened(r) => event(
                Json::obj()
                    .set("event", "shortened")
                    .set("impu", self.impu.clone())
                    .set("expires", Json::Int(r.expires.as_secs() as i64)),
            ),
            E::Resynchronising { sqn, sqn_ms } => event(
                Json::obj()
                    .set("event", "resynchronising")
                    .set("impu", self.impu.clone())
                    .set("sqn", format!("{sqn:012x}"))
                    .set("sqn_ms", format!("{sqn_ms:012x}")),
            ),
            E::DeregisteredByNetwork {
                event: ending,
                reregister_after,
            } => {
                if reregister_after.is_none() {
                    self.outcome = Some(Outcome::Deregistered);
                }
                event(
                    Json::obj()
                        .set("event", "deregistered-by-network")
                        .set("impu", self.impu.clone())
                        .set("reason", format!("{ending:?}").to_lowercase())
                        .set("reregister", reregister_after.is_some()),
                );
            }
            E::RegEventEnded => {}
            E::Deregistered => {
                self.outcome = Some(Outcome::Deregistered);
                event(
                    Json::obj()
                        .set("event", "deregistered")
                        .set("impu", self.impu.clone()),
                );
            }
            E::RegistrationFailed { error, .. } => {
                self.outcome = Some(Outcome::Failed);
                self.failure.get_or_insert(error);
            }
            E::MessageAnswered {
                txn,
                status,
                reason,
            } => {
                self.msg_finals.insert(txn, Ok((status, reason)));
            }
            E::MessageUnanswered { txn } => {
                self.msg_finals.insert(txn, Err(()));
            }
            E::MessageReceived(page) => event(
                Json::obj()
                    .set("event", "message")
                    .set("from", page.from)
                    .set("to", page.to)
                    .set("text", String::from_utf8_lossy(&page.body).into_owned()),
            ),
            E::Sms { event, by_timer } => self.on_sms_event(event, by_timer),
            E::SmsNotSent { status, .. } => self.sms_not_sent = Some(status),
            E::Published(p) => {
                if p == Published::Removed {
                    event(
                        Json::obj()
                            .set("event", "unpublished")
                            .set("resource", self.ua.settings().presentity.clone()),
                    );
                }
                self.pub_outcome = Some(Ok(p));
            }
            E::PublishUnanswered => self.pub_outcome = Some(Err(())),
            E::PublicationLapsed => event(
                Json::obj()
                    .set("event", "publication-lapsed")
                    .set("resource", self.ua.settings().presentity.clone()),
            ),
            E::Subscribed(got) => {
                let resource = match &got {
                    Subscribed::Accepted { resource } | Subscribed::Refused { resource, .. } => {
                        resource
                    }
                };
                if self.sub_wait.as_ref() == Some(resource) {
                    self.sub_final = Some(Ok(got));
                }
            }
            E::SubscribeUnanswered { resource } => {
                if self.sub_wait.as_ref() == Some(&resource) {
                    self.sub_final = Some(Err(()));
                }
            }
            E::Presence(seen) => Client::presence_event(&seen),
            E::NotOverSas { what } => {
                if self.ladder.verbose {
                    eprintln!("imsua: dropped a {what} that did not come over the SAs");
                }
            }
            E::Unsubscribed => self.unsubscribed = true,
        }
    }

    /// The set's four `sa` event lines, in one write: a write per line
    /// cost ~4 system calls (and as many wake-ups of a reader) between the
    /// 401 and the protected REGISTER.
    fn sa_events(&self, set: &SaSet, action: &str, usage: &[tools::ims::SaUsage]) {
        print!("{}", sa_lines(set, action, self.show_keys, usage));
    }

    /// Sends a NACK (RFC 4077) back to where a failed SigComp message came
    /// from.
    fn send_nack(&mut self, nack: &[u8], to: SocketAddr) {
        match self.transport.send_nack(nack, to) {
            Ok(()) => self.comp.nack_sent(nack.len()),
            Err(e) => eprintln!("imsua: {e:#}"),
        }
    }
}
