//! Registration end to end in memory: our UE ([`gm::reg::Ue`]) against
//! our P-CSCF/registrar ([`gm::reg::Network`]), every message emitted as
//! bytes and parsed again on the other side. TS 35.208 test set 3 keys.
//!
//! Covered: a full registration with AKAv1 and AKAv2 (and the SA sets of
//! the two sides mirroring each other), AUTS resynchronisation from a
//! stale SQN, a MAC failure (the network does not know K), a modified
//! Security-Verify, re-registration and de-registration, re-registration
//! with SA handover (twice, with AUTS, refused, and a network that does
//! not re-authenticate). Both sides' SA actions are applied to a real
//! SAD/SPD each, so sets that could not live side by side fail. The UE
//! does not subscribe to the reg event here (`reg_event.rs` covers it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Rng;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use gm::reg::{
    Credentials, Error, Flow, Network, NetworkAction, NetworkConfig, OpKey, Random, SaSet,
    Subscriber, Ue, UeAction, UeConfig,
};
use gm::sip::{HeaderName, Message};
use opensec::aka::AkaVersion;

const K: [u8; 16] = hex16("fec86ba6eb707ed08905757b1bb44b8f");
const OP: [u8; 16] = hex16("dbc59adcb6f9a0ef735477b7fadf8374");
const IMPI: &str = "alice@ims.example.org";
const IMPU: &str = "sip:alice@ims.example.org";

const fn hex16(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = (nib(b[2 * i]) << 4) | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nib(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

fn ue_addr() -> IpAddr {
    "10.0.0.2".parse().unwrap()
}

fn pcscf_addr() -> IpAddr {
    "10.0.0.1".parse().unwrap()
}

/// Rewrites a request on its way.
type Tamper = Box<dyn FnMut(&mut Message<'static>)>;

struct World {
    ue: Ue,
    net: Network,
    rng: Rng,
    now: Duration,
    ue_sas: Vec<SaSet>,
    net_sas: Vec<SaSet>,
    ue_events: Vec<UeAction>,
    net_events: Vec<NetworkAction>,
    /// Every request the UE sent, as bytes, with its flow.
    sent: Vec<(Vec<u8>, Flow)>,
    /// Rewrites a request on its way to the network.
    tamper: Option<Tamper>,
    /// The index in `sent` of a request whose response is lost.
    lose_response_to: Option<usize>,
    /// Every SA action of each side applied to a real SAD/SPD (UE,
    /// network), as the binaries do: two sets that could not live side
    /// by side fail the test where the second is installed.
    ue_db: Sadb,
    net_db: Sadb,
    /// Both sides' databases as each request left (after the UE's SA
    /// actions before it, and the network's before the response that
    /// caused it).
    at_send: Vec<(sadb::Databases, sadb::Databases)>,
    /// Every set installed, by side (UE, network), with the set it
    /// replaced in a handover as the side saw it then
    /// (`Ue::retiring_sas`, `Network::handover_from`).
    installs: Vec<(gm::reg::Side, Option<SaSet>, SaSet)>,
}

/// One side's SA database, with the reqid base each installed set got.
#[derive(Default)]
struct Sadb {
    db: sadb::Databases,
    installed: Vec<(SaSet, u32)>,
    /// The most sets installed at once.
    most: usize,
}

impl Sadb {
    /// The installed set that `s` names (by its SPIs).
    fn find(&self, s: &SaSet) -> usize {
        let id = |x: &SaSet| (x.ue_offer().spi_c, x.pcscf_offer().spi_c);
        self.installed
            .iter()
            .position(|(x, _)| id(x) == id(s))
            .expect("an action on a set not installed")
    }

    /// Applies `action` here and to `sets`, the side's list of sets.
    fn record(&mut self, sets: &mut Vec<SaSet>, action: SaAction<'_>) {
        self.apply(&action);
        match action {
            SaAction::Install(s) => sets.push(s.clone()),
            SaAction::Remove(s) => sets.retain(|x| x != s),
            SaAction::Update(s) => {
                sets.retain(|x| x.sas() != s.sas());
                sets.push(s.clone());
            }
        }
    }

    fn apply(&mut self, action: &SaAction<'_>) {
        let t = sadb::Timestamp(0);
        match action {
            SaAction::Install(s) => {
                let base = self.db.free_reqids(2).unwrap();
                let based = (*s).clone().with_reqid_base(base);
                self.db.apply_statements(&based.statements(), t).unwrap();
                self.installed.push(((*s).clone(), base));
                self.most = self.most.max(self.installed.len());
            }
            SaAction::Update(s) => {
                let i = self.find(s);
                let base = self.installed[i].1;
                let based = (*s).clone().with_reqid_base(base);
                self.db
                    .apply_statements(&based.update_statements(), t)
                    .unwrap();
                self.installed[i].0 = (*s).clone();
            }
            SaAction::Remove(s) => {
                let (old, base) = self.installed.remove(self.find(s));
                let based = old.with_reqid_base(base);
                self.db
                    .apply_statements(&based.delete_statements(), t)
                    .unwrap();
            }
        }
    }
}

enum SaAction<'a> {
    Install(&'a SaSet),
    Update(&'a SaSet),
    Remove(&'a SaSet),
}

/// The UE's configuration of these tests: SPIs 1111/2222, ports
/// 5062/5064.
fn ue_config() -> UeConfig {
    UeConfig::new(
        IMPI,
        IMPU,
        "ims.example.org",
        ue_addr(),
        pcscf_addr(),
        (1111, 2222),
        (5062, 5064),
    )
}

fn world(ue_sqn: u64, net_sqn: u64, net_k: [u8; 16], aka: AkaVersion) -> World {
    world_with(ue_sqn, net_sqn, net_k, aka, |_| {})
}

fn world_with(
    ue_sqn: u64,
    net_sqn: u64,
    net_k: [u8; 16],
    aka: AkaVersion,
    configure: impl FnOnce(&mut NetworkConfig),
) -> World {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut config = ue_config();
    // Registration alone; the reg event subscription has reg_event.rs.
    config.reg_event = false;
    let ue = Ue::new(
        config,
        Credentials::Aka {
            k: K,
            op: OpKey::Op(OP),
            sqn_ms: ue_sqn,
        },
        &mut rng,
    );
    let mut nc = NetworkConfig::new("ims.example.org", pcscf_addr(), 5066, 5068);
    nc.aka = aka;
    nc.service_routes = vec!["<sip:orig@scscf.ims.example.org;lr>".into()];
    nc.path = Some("<sip:term@pcscf.ims.example.org;lr>".into());
    configure(&mut nc);
    let mut net = Network::new(nc);
    net.add_subscriber(
        IMPI,
        Subscriber {
            k: net_k,
            op: OpKey::Op(OP),
            amf: [0x80, 0x00],
            sqn: net_sqn,
            impus: vec![IMPU.into(), "tel:+15550100".into()],
        },
    );
    World {
        ue,
        net,
        rng,
        now: Duration::ZERO,
        ue_sas: Vec::new(),
        net_sas: Vec::new(),
        ue_events: Vec::new(),
        net_events: Vec::new(),
        sent: Vec::new(),
        tamper: None,
        lose_response_to: None,
        ue_db: Sadb::default(),
        net_db: Sadb::default(),
        at_send: Vec::new(),
        installs: Vec::new(),
    }
}

impl World {
    /// Carries messages until both sides are quiet.
    fn run(&mut self, first: Vec<UeAction>) {
        let mut queue: VecDeque<UeAction> = first.into();
        while let Some(a) = queue.pop_front() {
            match a {
                UeAction::Send { request, flow } => {
                    let mut request = Message::parse(&request.to_bytes()).unwrap().into_owned();
                    if let Some(t) = self.tamper.as_mut() {
                        t(&mut request);
                    }
                    let bytes = request.to_bytes();
                    self.sent.push((bytes.clone(), flow));
                    self.at_send
                        .push((self.ue_db.db.clone(), self.net_db.db.clone()));
                    let req = Message::parse(&bytes).unwrap();
                    for n in self
                        .net
                        .on_register(&req, ue_addr(), flow, self.now, &mut self.rng)
                    {
                        match n {
                            NetworkAction::Respond(_)
                                if self.lose_response_to == Some(self.sent.len() - 1) => {}
                            NetworkAction::Respond(m) => {
                                let bytes = m.to_bytes();
                                let resp = Message::parse(&bytes).unwrap();
                                queue.extend(self.ue.on_response(
                                    &resp,
                                    flow,
                                    self.now,
                                    &mut self.rng,
                                ));
                            }
                            NetworkAction::InstallSas(s) => {
                                let old = self.net.handover_from(&s).cloned();
                                self.installs.push((gm::reg::Side::Network, old, s.clone()));
                                self.net_db.record(&mut self.net_sas, SaAction::Install(&s))
                            }
                            NetworkAction::RemoveSas(s) => {
                                self.net_db.record(&mut self.net_sas, SaAction::Remove(&s))
                            }
                            NetworkAction::UpdateSas(s) => {
                                self.net_db.record(&mut self.net_sas, SaAction::Update(&s))
                            }
                            e => self.net_events.push(e),
                        }
                    }
                }
                UeAction::InstallSas(s) => {
                    let old = self.ue.retiring_sas().cloned();
                    self.installs.push((gm::reg::Side::Ue, old, s.clone()));
                    self.ue_db.record(&mut self.ue_sas, SaAction::Install(&s))
                }
                UeAction::RemoveSas(s) => self.ue_db.record(&mut self.ue_sas, SaAction::Remove(&s)),
                UeAction::UpdateSas(s) => self.ue_db.record(&mut self.ue_sas, SaAction::Update(&s)),
                e => self.ue_events.push(e),
            }
        }
    }

    /// After a de-registration: the UE deleted its SAs on the 200, the
    /// network keeps its own `DEREGISTRATION_LINGER` (for a de-REGISTER
    /// retransmitted if that 200 was lost), then removes them.
    fn linger(&mut self) {
        assert!(self.ue_sas.is_empty() && self.ue_db.installed.is_empty());
        assert_eq!(self.net_sas.len(), 1, "kept a while");
        self.now += gm::reg::DEREGISTRATION_LINGER;
        for n in self.net.handle_timeout(self.now) {
            match n {
                NetworkAction::RemoveSas(s) => {
                    self.net_db.record(&mut self.net_sas, SaAction::Remove(&s))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// Moves the clock to the UE's next timer (its re-registration) and
    /// carries what follows; the time it moved to.
    fn refresh(&mut self) -> Duration {
        let at = self.ue.poll_timeout().unwrap();
        self.now = at;
        let acts = self.ue.handle_timeout(at, &mut self.rng);
        self.run(acts);
        at
    }

    fn register(&mut self) {
        let first = self.ue.register(&mut self.rng);
        self.run(first);
    }

    fn sent_request(&self, i: usize) -> Message<'_> {
        Message::parse(&self.sent[i].0).unwrap()
    }
}

fn registered(w: &World) {
    assert!(
        matches!(w.ue_events.last(), Some(UeAction::Registered(_))),
        "{:?}",
        w.ue_events
    );
    assert!(matches!(
        w.net_events.last(),
        Some(NetworkAction::Registered { .. })
    ));
    // One SA set on each side, mirrors of each other, with the
    // registration's lifetime + 30 s.
    assert_eq!(w.ue_sas.len(), 1);
    assert_eq!(w.net_sas.len(), 1);
    assert_eq!(w.ue_sas[0].mirror(), w.net_sas[0]);
    assert_eq!(w.ue_sas[0].lifetime(), Duration::from_secs(600_030));
    assert_eq!(w.net.sas(IMPI), Some(&w.net_sas[0]));
}

#[test]
fn full_registration_akav1() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.register();
    registered(&w);
    assert_eq!(w.sent.len(), 2);
    // The initial REGISTER: unprotected, sec-agree, empty credentials.
    let r1 = w.sent_request(0);
    assert_eq!(w.sent[0].1, Flow::Unprotected);
    assert_eq!(r1.option_tags(HeaderName::Require).unwrap(), ["sec-agree"]);
    assert_eq!(
        r1.option_tags(HeaderName::ProxyRequire).unwrap(),
        ["sec-agree"]
    );
    assert_eq!(r1.option_tags(HeaderName::Supported).unwrap(), ["path"]);
    assert_eq!(r1.security(HeaderName::SecurityClient).unwrap().len(), 6);
    let a = &r1.authorization().unwrap()[0];
    assert_eq!(a.username().unwrap(), IMPI);
    assert_eq!(a.nonce().unwrap(), "");
    assert_eq!(a.response().unwrap(), "");
    let contact = r1.header("Contact").unwrap();
    assert!(
        contact.contains("+sip.instance=\"<urn:gsma:imei:"),
        "{contact}"
    );
    assert!(contact.contains("+g.3gpp.smsip"));
    // The second: over the SAs, port-c to the P-CSCF's port-s, with
    // Security-Verify = the Security-Server the network chose (its first
    // preference, hmac-sha-1-96 with aes-cbc) and Security-Client again.
    let r2 = w.sent_request(1);
    assert_eq!(
        w.sent[1].1,
        Flow::Protected {
            ue_port: 5062,
            pcscf_port: 5068
        }
    );
    let verify = r2.security(HeaderName::SecurityVerify).unwrap();
    assert_eq!(verify.len(), 1);
    let v = verify[0].ipsec.unwrap();
    assert_eq!((v.alg, v.ealg), (Some("hmac-sha-1-96"), Some("aes-cbc")));
    assert_eq!(r2.security(HeaderName::SecurityClient).unwrap().len(), 6);
    let a = &r2.authorization().unwrap()[0];
    assert_eq!(a.qop(), ["auth"]);
    assert_eq!(a.nc().unwrap(), "00000001");
    // What the 200 granted.
    let Some(UeAction::Registered(r)) = w.ue_events.last() else {
        panic!()
    };
    assert_eq!(r.service_routes, ["<sip:orig@scscf.ims.example.org;lr>"]);
    assert_eq!(r.paths, ["<sip:term@pcscf.ims.example.org;lr>"]);
    assert_eq!(
        r.associated_uris,
        [format!("<{IMPU}>"), "<tel:+15550100>".into()]
    );
    assert_eq!(r.expires, Duration::from_secs(600_000));
    assert_eq!(r.refresh_at, Duration::from_secs(599_400));
    assert_eq!(w.ue.poll_timeout(), Some(r.refresh_at));
    // The UE accepted the network's SQN.
    assert_eq!(w.ue.sqn_ms(), Some(1));
    // The UE's SAs render as a setkey script sadb reads back.
    let script = w.ue_sas[0].script();
    assert_eq!(sadb::parse(&script).unwrap().len(), 8);
}

#[test]
fn full_registration_akav2() {
    let mut w = world(0, 41, K, AkaVersion::V2);
    w.register();
    registered(&w);
    let r = w.sent_request(1);
    let a = &r.authorization().unwrap()[0];
    assert_eq!(a.algorithm().unwrap().as_str(), "AKAv2-MD5");
    assert_eq!(w.ue.sqn_ms(), Some(42));
}

#[test]
fn auts_resynchronises_a_stale_sqn() {
    // The network's SQN is behind the UE's: the UE answers with AUTS, the
    // network re-synchronises and challenges again.
    let mut w = world(5000, 10, K, AkaVersion::V1);
    w.register();
    registered(&w);
    assert_eq!(w.sent.len(), 3);
    let r = w.sent_request(1);
    let a = &r.authorization().unwrap()[0];
    assert!(a.auts().is_some());
    // The application is told, with the two SQNs.
    assert!(
        w.ue_events.iter().any(|e| matches!(
            e,
            UeAction::Resynchronising { sqn, sqn_ms: 5000 } if *sqn <= 5000
        )),
        "{:?}",
        w.ue_events
    );
    // Over temporary SAs from the first 401 (TS 24.229, as commonly
    // implemented), with Security-Verify.
    let over = Flow::Protected {
        ue_port: 5062,
        pcscf_port: 5068,
    };
    assert_eq!(w.sent[1].1, over);
    assert_eq!(w.sent[2].1, over);
    assert!(
        !w.sent_request(1)
            .security(HeaderName::SecurityVerify)
            .unwrap()
            .is_empty()
    );
    assert_eq!(w.net.subscriber(IMPI).unwrap().sqn, 5001);
    assert_eq!(w.ue.sqn_ms(), Some(5001));
}

/// The network's 401 to the AUTS request is lost. The network replaced
/// its temporary SAs as it left (the new set has the UE's same SPIs), so
/// nothing the UE retransmits over them is read: Timer F ends the AUTS
/// request, the UE removes its temporary SAs and starts again from the
/// initial REGISTER, in clear; the network's pending set goes before the
/// next is installed (a real SAD on each side would refuse a clash), and
/// the UE registers with SQN in step.
#[test]
fn a_lost_401_to_the_auts_request_starts_the_registration_again() {
    let mut w = world(5000, 10, K, AkaVersion::V1);
    w.lose_response_to = Some(1);
    w.register();
    assert_eq!(w.sent.len(), 2, "the AUTS request, then silence");
    assert_eq!(w.ue_sas.len(), 1, "the UE's temporary set");
    assert_eq!(w.net_sas.len(), 1, "the network's next set");
    assert_ne!(w.net_sas[0].mirror(), w.ue_sas[0]);
    w.now += Duration::from_secs(32);
    let acts = w.ue.on_timeout(&mut w.rng);
    assert!(
        matches!(acts.first(), Some(UeAction::RemoveSas(_))),
        "{acts:?}"
    );
    w.run(acts);
    registered(&w);
    assert_eq!(w.sent.len(), 4);
    let initial = w.sent_request(2);
    assert_eq!(w.sent[2].1, Flow::Unprotected);
    assert!(initial.authorization().unwrap()[0].auts().is_none());
    assert_eq!(w.net_sas.len(), 1);
    assert_eq!(w.net_sas[0].mirror(), w.ue_sas[0]);
    assert_eq!(w.ue.sqn_ms(), Some(5002));
    assert_eq!(w.net.subscriber(IMPI).unwrap().sqn, 5002);
}

/// Timer F of the initial REGISTER (no network) or of the authenticated
/// one ends the registration: only an AUTS request starts it again.
#[test]
fn other_register_timeouts_fail() {
    let mut w = world(0, 10, K, AkaVersion::V1);
    w.lose_response_to = Some(0);
    w.register();
    let acts = w.ue.on_timeout(&mut w.rng);
    assert!(
        matches!(acts.as_slice(), [UeAction::Failed(gm::reg::Error::Timeout)]),
        "{acts:?}"
    );
    let mut w = world(0, 10, K, AkaVersion::V1);
    w.lose_response_to = Some(1);
    w.register();
    let acts = w.ue.on_timeout(&mut w.rng);
    assert!(
        matches!(
            acts.as_slice(),
            [
                UeAction::RemoveSas(_),
                UeAction::Failed(gm::reg::Error::Timeout)
            ]
        ),
        "{acts:?}"
    );
}

#[test]
fn mac_failure_stops_with_network_authentication_failed() {
    let mut bad_k = K;
    bad_k[0] ^= 1;
    let mut w = world(0, 0, bad_k, AkaVersion::V1);
    w.register();
    assert!(matches!(
        w.ue_events.as_slice(),
        [UeAction::Failed(Error::NetworkAuthenticationFailed)]
    ));
    assert!(w.ue.is_done());
    // The answer of TS 24.229: empty response, no auts, unprotected.
    assert_eq!(w.sent.len(), 2);
    let r = w.sent_request(1);
    let a = &r.authorization().unwrap()[0];
    assert_eq!(a.response().unwrap(), "");
    assert!(a.auts().is_none());
    assert!(!a.nonce().unwrap().is_empty());
    assert_eq!(w.sent[1].1, Flow::Unprotected);
    // The network refused it and removed its temporary SAs.
    assert!(matches!(
        w.net_events.as_slice(),
        [NetworkAction::AuthenticationFailed { .. }]
    ));
    assert!(w.ue_sas.is_empty() && w.net_sas.is_empty());
}

#[test]
fn modified_security_verify_is_refused_and_the_sas_dropped() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.tamper = Some(Box::new(|m: &mut Message<'static>| {
        if let Some(v) = m.header("Security-Verify").map(str::to_owned) {
            // A man in the middle downgrades the choice.
            let v = v.replace("hmac-sha-1-96", "hmac-md5-96");
            m.set_header("Security-Verify".to_owned(), v).unwrap();
        }
    }));
    w.register();
    assert!(matches!(
        w.ue_events.as_slice(),
        [UeAction::Failed(Error::Rejected { status: 494 })]
    ));
    assert!(w.ue_sas.is_empty() && w.net_sas.is_empty());
    assert!(w.net.binding(IMPI).is_none());
}

#[test]
fn reregistration_and_deregistration() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.register();
    registered(&w);
    let at = w.refresh();
    registered(&w);
    assert_eq!(w.sent.len(), 3);
    let r = w.sent_request(2);
    assert_eq!(r.authorization().unwrap()[0].nc().unwrap(), "00000002");
    assert!(matches!(w.sent[2].1, Flow::Protected { .. }));
    assert_eq!(
        w.net.binding(IMPI).unwrap().1,
        at + Duration::from_secs(600_000)
    );
    let acts = w.ue.deregister(&mut w.rng);
    w.run(acts);
    assert!(matches!(w.ue_events.last(), Some(UeAction::Deregistered)));
    assert!(matches!(
        w.net_events.last(),
        Some(NetworkAction::Deregistered { .. })
    ));
    w.linger();
    assert!(w.ue_sas.is_empty() && w.net_sas.is_empty());
    assert!(w.net.binding(IMPI).is_none());
    assert_eq!(w.sent_request(3).expires().unwrap(), Some(0));
}

/// The network with a second client port for handovers.
fn handover_world() -> World {
    world_with(0, 0, K, AkaVersion::V1, |c| c.alt_port_c = Some(5070))
}

/// The flow from the UE's `port_c` to the P-CSCF's port-s.
fn to_port_s(port_c: u16) -> Flow {
    Flow::Protected {
        ue_port: port_c,
        pcscf_port: 5068,
    }
}

/// Re-registration with SA handover (TS 33.203 §7.4 as commonly
/// implemented), twice: the re-REGISTER leaves over the registration's
/// SAs offering the UE's next SPIs and port-c; the network challenges it
/// with a fresh vector and new SPIs on its other client port; both sides
/// hold the two sets side by side in a real SAD/SPD (each set carries SIP
/// both ways then); the answer goes over the new set, and its 200
/// retires the old one on both sides.
#[test]
fn reregistration_hands_over_to_fresh_sas() {
    let mut w = handover_world();
    w.register();
    registered(&w);
    assert!(w.installs.iter().all(|(_, old, _)| old.is_none()));
    let rounds = [((3333, 4444), 5072, 5070), ((5555, 6666), 5062, 5066)];
    for (round, (spis, port_c, pcscf_port_c)) in rounds.into_iter().enumerate() {
        let (old_ue, old_net) = (w.ue_sas[0].clone(), w.net_sas[0].clone());
        // The caller gives the next set as the re-registration is due
        // (what imsua does: SPIs held at ipsecd live 30 s).
        let due = w.ue.poll_timeout().unwrap();
        assert!(!w.ue.refresh_due(due - Duration::from_millis(1)));
        assert!(w.ue.refresh_due(due));
        w.ue.offer_next(spis, port_c).unwrap();
        let before = w.sent.len();
        let installs = w.installs.len();
        let at = w.refresh();
        registered(&w);
        assert!(!w.ue.refresh_due(w.now), "registered again: not due");
        // Each side knew, as it installed the new set, which one it
        // replaces (what carries the SigComp compartment over).
        let new = w.installs.get(installs..).unwrap();
        assert_eq!(new.len(), 2, "{new:?}");
        for (side, old, set) in new {
            let want = match side {
                gm::reg::Side::Ue => (&old_ue, &w.ue_sas[0]),
                gm::reg::Side::Network => (&old_net, &w.net_sas[0]),
            };
            // (The new set as installed: its lifetime is the temporary one.)
            let id = |s: &SaSet| (*s.ue_offer(), *s.pcscf_offer());
            assert_eq!(
                (old.as_ref().map(id), id(set)),
                (Some(id(want.0)), id(want.1)),
                "{side:?}"
            );
        }
        assert_eq!((w.ue_db.most, w.net_db.most), (2, 2));
        assert_eq!(w.sent.len(), before + 2, "re-REGISTER, its answer");
        // The re-REGISTER: over the old set, naming the next one.
        let r1 = w.sent_request(before);
        assert_eq!(w.sent[before].1, to_port_s(old_ue.ue_offer().port_c));
        let client = r1.security(HeaderName::SecurityClient).unwrap();
        assert!(!client.is_empty());
        for o in &client {
            let o = gm::reg::IpsecOffer::from_mechanism(o).unwrap();
            assert_eq!(
                (o.spi_c, o.spi_s, o.port_c, o.port_s),
                (spis.0, spis.1, port_c, 5064)
            );
        }
        let verify = r1.security(HeaderName::SecurityVerify).unwrap();
        let verify = gm::reg::IpsecOffer::from_mechanism(&verify[0]).unwrap();
        assert_eq!(verify, *old_net.pcscf_offer());
        // The answer: over the new set, to a new nonce.
        let r2 = w.sent_request(before + 1);
        assert_eq!(w.sent[before + 1].1, to_port_s(port_c));
        let (a1, a2) = (
            &r1.authorization().unwrap()[0],
            &r2.authorization().unwrap()[0],
        );
        assert_ne!(a1.nonce(), a2.nonce());
        assert_eq!(a2.nc().unwrap(), "00000001");
        // The new set: the UE's next SPIs and port-c, its port-s kept;
        // the network's other client port and new SPIs; new keys.
        let new_ue = &w.ue_sas[0];
        let u = new_ue.ue_offer();
        assert_eq!(
            (u.spi_c, u.spi_s, u.port_c, u.port_s),
            (spis.0, spis.1, port_c, 5064)
        );
        let (p, q) = (new_ue.pcscf_offer(), old_ue.pcscf_offer());
        assert_eq!((p.port_c, p.port_s), (pcscf_port_c, 5068));
        assert!(![q.spi_c, q.spi_s].contains(&p.spi_c) && ![q.spi_c, q.spi_s].contains(&p.spi_s));
        assert_ne!(new_ue.keys(), old_ue.keys());
        assert_eq!(w.ue.sqn_ms(), Some(round as u64 + 2));
        assert_eq!(w.net.subscriber(IMPI).unwrap().sqn, round as u64 + 2);
        assert_eq!(
            w.net.binding(IMPI).unwrap().1,
            at + Duration::from_secs(600_000)
        );
        assert!(w.ue.retiring_sas().is_none());
        // While the answer left, both sets were installed on both sides,
        // and each carried SIP both ways.
        let (ue_db, net_db) = &w.at_send[before + 1];
        let (a, b) = (ue_addr(), pcscf_addr());
        let sip = b"MESSAGE sip:bob@ims.example.org SIP/2.0\r\n\r\n";
        for set in [&old_ue, new_ue] {
            let (u, p) = (set.ue_offer(), set.pcscf_offer());
            for (ue_port, pcscf_port) in [(u.port_c, p.port_s), (u.port_s, p.port_c)] {
                let up = udp4(a, ue_port, b, pcscf_port, sip);
                assert_eq!(through(ue_db, net_db, &up), up);
                let down = udp4(b, pcscf_port, a, ue_port, sip);
                assert_eq!(through(net_db, ue_db, &down), down);
            }
        }
    }
    let acts = w.ue.deregister(&mut w.rng);
    w.run(acts);
    assert!(matches!(w.ue_events.last(), Some(UeAction::Deregistered)));
    w.linger();
    assert!(w.ue_sas.is_empty() && w.net_sas.is_empty());
    assert!(w.ue_db.installed.is_empty() && w.net_db.installed.is_empty());
}

/// A handover challenge with a stale SQN (the network's SQN went back):
/// the UE answers with AUTS over temporary SAs beside the registration's,
/// the network re-synchronises and challenges again, still as a
/// handover; the registration moves to fresh SAs as without AUTS.
#[test]
fn a_handover_resynchronises_a_stale_sqn() {
    let mut w = handover_world();
    w.register();
    registered(&w);
    let s = w.net.subscriber(IMPI).unwrap();
    let stale = Subscriber {
        k: s.k,
        op: s.op,
        amf: s.amf,
        sqn: 0,
        impus: s.impus.clone(),
    };
    w.net.add_subscriber(IMPI, stale);
    let old = w.ue_sas[0].clone();
    w.ue.offer_next((3333, 4444), 5072).unwrap();
    w.refresh();
    registered(&w);
    assert!(
        w.ue_events
            .iter()
            .any(|e| matches!(e, UeAction::Resynchronising { .. })),
        "{:?}",
        w.ue_events
    );
    // re-REGISTER (old set), AUTS (temporary set), answer (new set).
    assert_eq!(w.sent.len(), 5);
    assert!(
        w.sent_request(3).authorization().unwrap()[0]
            .auts()
            .is_some()
    );
    assert_eq!(w.sent[3].1, to_port_s(5072));
    assert_eq!(w.sent[4].1, to_port_s(5072));
    assert_eq!(w.ue_sas[0].ue_offer().spi_c, 3333);
    assert_eq!(w.ue_sas[0].pcscf_offer().port_c, 5070);
    assert_ne!(w.ue_sas[0].keys(), old.keys());
    assert_eq!((w.ue_db.most, w.net_db.most), (2, 2));
}

/// A network without a second client port does not re-authenticate: the
/// re-registration that offers the next set is accepted over the SAs in
/// use, which stay.
#[test]
fn without_a_second_port_the_sas_in_use_stay() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.register();
    let old = w.ue_sas[0].clone();
    w.ue.offer_next((3333, 4444), 5072).unwrap();
    w.refresh();
    registered(&w);
    assert_eq!(w.sent.len(), 3);
    assert_eq!(w.ue_sas[0].sas(), old.sas());
    assert_eq!((w.ue_db.most, w.net_db.most), (1, 1));
}

/// A handover whose answer is refused (a wrong RES) fails closed on the
/// UE: both sets go. The network drops the new set and keeps the
/// registration on the old one until it ends.
#[test]
fn a_refused_handover_removes_both_sets_from_the_ue() {
    let mut w = handover_world();
    w.register();
    let old_net = w.net_sas[0].clone();
    w.ue.offer_next((3333, 4444), 5072).unwrap();
    w.tamper = Some(Box::new(|m: &mut Message<'static>| {
        let a = m.header("Authorization").unwrap().to_owned();
        if a.contains("nc=00000001") && m.header("Security-Verify").is_some() {
            let i = a.find("response=\"").unwrap() + 10;
            let mut a = a.into_bytes();
            a[i] = if a[i] == b'0' { b'1' } else { b'0' };
            m.set_header("Authorization".to_owned(), String::from_utf8(a).unwrap())
                .unwrap();
        }
    }));
    w.refresh();
    assert!(
        matches!(
            w.ue_events.last(),
            Some(UeAction::Failed(Error::Rejected { status: 403 }))
        ),
        "{:?}",
        w.ue_events
    );
    assert!(w.ue_sas.is_empty() && w.ue_db.installed.is_empty());
    assert_eq!(w.net_sas, vec![old_net]);
    assert!(w.net.binding(IMPI).is_some());
}

/// The UE refuses a next offer that collides with the set in use.
#[test]
fn a_next_offer_must_differ_from_the_set_in_use() {
    let mut w = handover_world();
    w.register();
    for (spis, port) in [
        ((1111, 4444), 5072),
        ((3333, 2222), 5072),
        ((3333, 3333), 5072),
        ((3333, 200), 5072),
        ((3333, 4444), 5062),
        ((3333, 4444), 5064),
    ] {
        assert!(
            matches!(w.ue.offer_next(spis, port), Err(Error::BadOffer { .. })),
            "{spis:?} {port}"
        );
    }
    assert!(w.ue.offer_next((3333, 4444), 5072).is_ok());
}

#[test]
fn a_replayed_reregistration_is_refused() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.register();
    let (bytes, flow) = w.sent[1].clone();
    let req = Message::parse(&bytes).unwrap();
    let out = w.net.on_register(&req, ue_addr(), flow, w.now, &mut w.rng);
    assert!(
        matches!(out.as_slice(), [NetworkAction::Respond(m)] if m.status() == Some(403)),
        "{out:?}"
    );
}

#[test]
fn unanswered_temporary_sas_expire_on_both_sides() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    let first = w.ue.register(&mut w.rng);
    let req = Message::parse(&first[0].request().unwrap().to_bytes())
        .unwrap()
        .into_owned();
    let out = w
        .net
        .on_register(&req, ue_addr(), Flow::Unprotected, w.now, &mut w.rng);
    let Some(NetworkAction::Respond(challenge)) = out.last() else {
        panic!("{out:?}")
    };
    let acts =
        w.ue.on_response(challenge, Flow::Unprotected, w.now, &mut w.rng);
    // SAs installed, then the protected REGISTER, which the network loses.
    assert!(matches!(
        acts.as_slice(),
        [UeAction::InstallSas(_), UeAction::Send { .. }]
    ));
    let t = Duration::from_secs(240);
    assert_eq!(w.ue.poll_timeout(), Some(t));
    assert_eq!(w.net.poll_timeout(), Some(t));
    assert!(
        w.ue.handle_timeout(t - Duration::from_secs(1), &mut w.rng)
            .is_empty()
    );
    assert!(matches!(
        w.ue.handle_timeout(t, &mut w.rng).as_slice(),
        [UeAction::RemoveSas(_), UeAction::Failed(Error::Timeout)]
    ));
    assert!(matches!(
        w.net.handle_timeout(t).as_slice(),
        [NetworkAction::RemoveSas(_)]
    ));
    assert_eq!(w.net.poll_timeout(), None);
}

#[test]
fn a_wrong_res_is_refused_and_the_sas_dropped() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.tamper = Some(Box::new(|m: &mut Message<'static>| {
        if m.header("Security-Verify").is_some() {
            let a = m.header("Authorization").unwrap().to_owned();
            let i = a.find("response=\"").unwrap() + 10;
            let mut b = a.into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let a = String::from_utf8(b).unwrap();
            m.set_header("Authorization".to_owned(), a).unwrap();
        }
    }));
    w.register();
    assert!(matches!(
        w.ue_events.as_slice(),
        [UeAction::Failed(Error::Rejected { status: 403 })]
    ));
    assert!(matches!(
        w.net_events.as_slice(),
        [NetworkAction::AuthenticationFailed { reason, .. }] if reason.contains("RES")
    ));
    assert!(w.ue_sas.is_empty() && w.net_sas.is_empty());
    assert!(w.net.binding(IMPI).is_none());
}

/// A `Random` that gives only zeros.
struct Zeros;

impl Random for Zeros {
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0);
    }
}

#[test]
fn a_broken_random_source_gets_500_not_a_hang() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    let first = w.ue.register(&mut w.rng);
    let req = first[0].request().unwrap();
    let out = w
        .net
        .on_register(req, ue_addr(), Flow::Unprotected, w.now, &mut Zeros);
    assert!(
        matches!(out.as_slice(), [NetworkAction::Respond(m)] if m.status() == Some(500)),
        "{out:?}"
    );
}

/// Rows written differently but naming the same mechanisms (another
/// case, whitespace around the parameters) are the same rows: the
/// network compares them mechanism by mechanism when they are not the
/// ones it wrote or first received, byte for byte.
#[test]
fn security_rows_written_differently_still_agree() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.tamper = Some(Box::new(|m: &mut Message<'static>| {
        for name in ["Security-Verify", "Security-Client"] {
            if m.header("Security-Verify").is_none() {
                continue;
            }
            if let Some(v) = m.header(name).map(str::to_owned) {
                let v = v.replace(';', " ; ").replace("ipsec-3gpp", "IPSEC-3GPP");
                m.set_header(name.to_owned(), v).unwrap();
            }
        }
    }));
    w.register();
    registered(&w);
    assert!(w.net.binding(IMPI).is_some());
}

#[test]
fn a_changed_security_client_is_refused() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.tamper = Some(Box::new(|m: &mut Message<'static>| {
        if m.header("Security-Verify").is_some() {
            // Only the weakest offer left: a downgrade attempt.
            m.set_header(
                "Security-Client".to_owned(),
                "ipsec-3gpp;alg=hmac-md5-96;ealg=null;spi-c=1111;spi-s=2222;port-c=5062;port-s=5064"
                    .to_owned(),
            )
            .unwrap();
        }
    }));
    w.register();
    assert!(matches!(
        w.ue_events.as_slice(),
        [UeAction::Failed(Error::Rejected { status: 494 })]
    ));
    assert!(w.ue_sas.is_empty() && w.net_sas.is_empty());
}

#[test]
fn interval_too_brief_is_retried_with_min_expires() {
    let mut w = world_with(0, 0, K, AkaVersion::V1, |c| {
        c.min_expires = 700_000;
        c.max_expires = 1_000_000;
    });
    w.register();
    let Some(UeAction::Registered(r)) = w.ue_events.last() else {
        panic!("{:?}", w.ue_events)
    };
    assert_eq!(r.expires, Duration::from_secs(700_000));
    // REGISTER, protected REGISTER (423), again with the next nc.
    assert_eq!(w.sent.len(), 3);
    let again = w.sent_request(2);
    assert_eq!(again.expires().unwrap(), Some(700_000));
    assert_eq!(again.authorization().unwrap()[0].nc().unwrap(), "00000002");
    assert_eq!(w.ue_sas[0].lifetime(), Duration::from_secs(700_030));
    assert_eq!(w.ue_sas[0].mirror(), w.net_sas[0]);
}

#[test]
fn both_sets_install_update_and_delete_in_sadb() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.register();
    registered(&w);
    for set in [&w.ue_sas[0], &w.net_sas[0]] {
        let mut db = sadb::Databases::new();
        let t = sadb::Timestamp(0);
        db.apply_statements(&set.statements(), t).unwrap();
        assert_eq!((db.sad().len(), db.spd().len()), (4, 4));
        let longer = set.clone().with_lifetime(Duration::from_secs(1_000));
        db.apply_statements(&longer.update_statements(), t).unwrap();
        db.apply_statements(&set.delete_statements(), t).unwrap();
        assert_eq!((db.sad().len(), db.spd().len()), (0, 0));
        // With TCP: two policies per SA, the outbound pair with one reqid.
        let tcp = set.clone().with_tcp();
        db.apply_statements(&tcp.statements(), t).unwrap();
        assert_eq!((db.sad().len(), db.spd().len()), (4, 8));
        let script = tcp.script();
        for reqid in ["unique:1", "unique:2"] {
            for proto in ["udp", "tcp"] {
                assert_eq!(
                    script
                        .lines()
                        .filter(|l| l.contains(&format!(" {proto} -P out ")) && l.contains(reqid))
                        .count(),
                    1,
                    "{script}"
                );
            }
        }
        db.apply_statements(&tcp.delete_statements(), t).unwrap();
        assert_eq!((db.sad().len(), db.spd().len()), (0, 0));
    }
}

/// An IPv4/UDP packet (UDP checksum 0: none, RFC 768).
fn udp4(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
        panic!()
    };
    let total = (20 + 8 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    let mut sum = 0u32;
    for c in p.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// Sends `plain` through `tx`'s SAs and receives it through `rx`'s.
fn through(tx: &sadb::Databases, rx: &sadb::Databases, plain: &[u8]) -> Vec<u8> {
    const ROOM: usize = 128;
    let t = sadb::Timestamp(0);
    let mut buf = vec![0u8; ROOM + plain.len() + ROOM];
    buf[ROOM..ROOM + plain.len()].copy_from_slice(plain);
    let mut n = 0u8;
    let mut iv = move |iv: &mut [u8]| {
        n = n.wrapping_add(1);
        iv.fill(n);
    };
    let sadb::Outgoing::Protected(p) = tx.protect(&mut buf, ROOM..ROOM + plain.len(), t, &mut iv)
    else {
        panic!("not protected")
    };
    let wire = buf[p.packet].to_vec();
    assert_eq!(wire[9], 50, "ESP");
    assert!(!wire.windows(8).any(|w| w == b"REGISTER"), "encrypted");
    let mut buf = vec![0u8; ROOM + wire.len() + ROOM];
    buf[ROOM..ROOM + wire.len()].copy_from_slice(&wire);
    match rx.unprotect(&mut buf, ROOM..ROOM + wire.len(), sadb::Received::Ip, t) {
        sadb::Incoming::Deliver(d) => buf[d.packet].to_vec(),
        other => panic!("not delivered: {other:?}"),
    }
}

/// The SAs both sides derived carry SIP between them: ESP that the
/// other side's engine accepts, in both directions of both port pairs.
#[test]
fn the_derived_sas_carry_sip_both_ways() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.register();
    registered(&w);
    let t = sadb::Timestamp(0);
    let mut ue_db = sadb::Databases::new();
    ue_db
        .apply_statements(&w.ue_sas[0].statements(), t)
        .unwrap();
    let mut net_db = sadb::Databases::new();
    net_db
        .apply_statements(&w.net_sas[0].statements(), t)
        .unwrap();
    let (u, p) = (ue_addr(), pcscf_addr());
    let sip = b"REGISTER sip:ims.example.org SIP/2.0\r\n\r\n";
    // port-c to port-s and back, port-s to port-c and back.
    for (ue_port, pcscf_port) in [(5062, 5068), (5064, 5066)] {
        let up = udp4(u, ue_port, p, pcscf_port, sip);
        assert_eq!(through(&ue_db, &net_db, &up), up);
        let down = udp4(p, pcscf_port, u, ue_port, sip);
        assert_eq!(through(&net_db, &ue_db, &down), down);
    }
}

#[test]
fn a_200_in_clear_is_ignored_once_the_sas_are_up() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    let first = w.ue.register(&mut w.rng);
    let out = w.net.on_register(
        first[0].request().unwrap(),
        ue_addr(),
        Flow::Unprotected,
        w.now,
        &mut w.rng,
    );
    let Some(NetworkAction::Respond(challenge)) = out.last() else {
        panic!("{out:?}")
    };
    let acts =
        w.ue.on_response(challenge, Flow::Unprotected, w.now, &mut w.rng);
    let [UeAction::InstallSas(_), UeAction::Send { request, flow }] = acts.as_slice() else {
        panic!("{acts:?}")
    };
    let forged = gm::sip::Builder::response_to(request, 200, None)
        .to_tag("x")
        .header("Expires", 600_000)
        .build()
        .unwrap();
    assert!(
        w.ue.on_response(&forged, Flow::Unprotected, w.now, &mut w.rng)
            .is_empty()
    );
    let acts = w.ue.on_response(&forged, *flow, w.now, &mut w.rng);
    assert!(matches!(acts.last(), Some(UeAction::Registered(_))));
}

/// Without sec-agree (a network that allows unprotected registration, as
/// `pcscf --ipsec none`): registration, re-registration and
/// de-registration in clear, the later ones with the registration's nonce
/// and a higher `nc`; a replayed `nc` is still refused.
#[test]
fn unprotected_registration_reregistration_and_deregistration() {
    let mut w = world_with(0, 0, K, AkaVersion::V1, |c| c.allow_unprotected = true);
    let mut config = ue_config();
    config.sec_agree = false;
    config.reg_event = false;
    w.ue = Ue::new(
        config,
        Credentials::Aka {
            k: K,
            op: OpKey::Op(OP),
            sqn_ms: 0,
        },
        &mut w.rng,
    );
    w.register();
    assert!(matches!(w.ue_events.last(), Some(UeAction::Registered(_))));
    assert!(w.ue_sas.is_empty() && w.net_sas.is_empty());
    assert!(w.sent.iter().all(|(_, f)| *f == Flow::Unprotected));
    w.refresh();
    assert!(matches!(w.ue_events.last(), Some(UeAction::Registered(_))));
    // Replaying the re-registration (same nonce, same nc): 403.
    let (bytes, flow) = w.sent[2].clone();
    let req = Message::parse(&bytes).unwrap();
    let out = w.net.on_register(&req, ue_addr(), flow, w.now, &mut w.rng);
    assert!(
        matches!(out.as_slice(), [NetworkAction::Respond(m)] if m.status() == Some(403)),
        "{out:?}"
    );
    let acts = w.ue.deregister(&mut w.rng);
    w.run(acts);
    assert!(matches!(w.ue_events.last(), Some(UeAction::Deregistered)));
    assert!(w.net.binding(IMPI).is_none());
}

#[test]
fn over_tcp_the_via_says_tcp_and_the_contact_asks_for_it() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    let mut config = ue_config();
    config.reg_event = false;
    config.protocol = gm::txn::Protocol::Tcp;
    w.ue = Ue::new(
        config,
        Credentials::Aka {
            k: K,
            op: OpKey::Op(OP),
            sqn_ms: 0,
        },
        &mut w.rng,
    );
    w.register();
    registered(&w);
    assert_eq!(w.ue.contact(), "sip:10.0.0.2:5064;transport=tcp");
    for i in 0..2 {
        let m = w.sent_request(i);
        assert_eq!(m.top_via().unwrap().transport, "TCP");
        let contact = m.header("Contact").unwrap();
        assert!(contact.contains("transport=tcp"), "{contact}");
    }
}

/// SPIs the caller holds elsewhere, recorded with the UE they were for.
struct Held {
    next: std::sync::Arc<std::sync::Mutex<Vec<(IpAddr, u32, u32)>>>,
    spis: Vec<(u32, u32)>,
}

impl gm::reg::SpiSource for Held {
    fn inbound_spis(&mut self, ue: IpAddr) -> Option<(u32, u32)> {
        let (c, s) = self.spis.pop()?;
        self.next.lock().unwrap().push((ue, c, s));
        Some((c, s))
    }
}

#[test]
fn a_spi_source_gives_the_networks_inbound_spis() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    w.net.set_spi_source(Box::new(Held {
        next: asked.clone(),
        spis: vec![(0x7000_0001, 0x7000_0002)],
    }));
    w.register();
    registered(&w);
    // Asked once, for this UE; its SPIs are the P-CSCF's offer and the
    // SPIs of the SAs that arrive at the P-CSCF.
    assert_eq!(
        *asked.lock().unwrap(),
        [(ue_addr(), 0x7000_0001, 0x7000_0002)]
    );
    let offer = w.net_sas[0].pcscf_offer();
    assert_eq!((offer.spi_c, offer.spi_s), (0x7000_0001, 0x7000_0002));
    let inbound: Vec<u32> = w.net_sas[0]
        .sas()
        .iter()
        .filter(|sa| sa.direction == sadb::ast::Direction::In)
        .map(|sa| sa.spi)
        .collect();
    assert_eq!(inbound.len(), 2);
    assert!(
        inbound
            .iter()
            .all(|s| [0x7000_0001, 0x7000_0002].contains(s))
    );
}

#[test]
fn a_spi_source_without_spis_gets_500() {
    let mut w = world(0, 0, K, AkaVersion::V1);
    w.net.set_spi_source(Box::new(Held {
        next: Default::default(),
        spis: vec![],
    }));
    let first = w.ue.register(&mut w.rng);
    let req = first[0].request().unwrap();
    let out = w
        .net
        .on_register(req, ue_addr(), Flow::Unprotected, w.now, &mut w.rng);
    assert!(
        matches!(out.as_slice(), [NetworkAction::Respond(m)] if m.status() == Some(500)),
        "{out:?}"
    );
}
