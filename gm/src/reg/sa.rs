//! The four unidirectional SAs of security agreement on Gm (TS 33.203
//! §7, TS 24.229 Annex H, RFC 3329 with the `ipsec-3gpp` mechanism) and
//! their policies, as `sadb` setkey statements.
//!
//! The SPI of an SA is chosen by its receiver. In the UE's view:
//!
//! | direction | from | to | SPI |
//! |---|---|---|---|
//! | out | UE port-c | P-CSCF port-s | P-CSCF spi-s |
//! | out | UE port-s | P-CSCF port-c | P-CSCF spi-c |
//! | in  | P-CSCF port-c | UE port-s | UE spi-s |
//! | in  | P-CSCF port-s | UE port-c | UE spi-c |
//!
//! The P-CSCF's view is the mirror: the same four SAs (addresses, ports,
//! SPIs, keys), each with the other direction. Inbound policies are
//! `require`, outbound ones `unique:N` bound to their SA by `-u N`.
//!
//! The offers' `mod` ([`IpsecMode`], TS 33.203) decides the SAs' form:
//! `trans` gives transport-mode `esp` SAs; `UDP-enc-tun` gives tunnel-mode
//! `esp-udp` SAs (RFC 3948) whose UDP encapsulation ports are the protected
//! ports themselves (the SA from the UE's port-c to the P-CSCF's port-s
//! travels in UDP from port-c to port-s), with `esp/tunnel/src-dst`
//! policies selecting the inner UDP between the same addresses and ports.
//! A process without raw sockets can carry those on UDP sockets bound to
//! the protected ports.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use opensec::ims::{EspKeys, esp_keys};
use opensec::{AuthAlgorithm, EncAlgorithm};
use sadb::Statement;
use sadb::ast::{
    Action, AddrFlags, AlgorithmSpec, Direction, Endpoint, Extensions, Key, KeyForm, Level,
    PolicyClause, PolicySpec, PortSpec, RangeSpec, ReqMode, ReqProtocol, Request, SaModeSpec,
    SaProtocol, SaRef, SaSpec, UpperSpec, ipproto,
};

use super::{Error, Random};
use crate::sip::header::SecMechanism;

/// The lifetime of the temporary SAs set up on a 401: TS 24.229's
/// reg-await-auth timer (4 minutes, as commonly implemented).
pub const TEMPORARY_LIFETIME: Duration = Duration::from_secs(240);

/// How much longer than the registration the SAs live once it succeeded
/// (TS 33.203, as commonly implemented: registration expiry + 30 s).
pub const LIFETIME_MARGIN: Duration = Duration::from_secs(30);

/// The `mod` parameter of an `ipsec-3gpp` offer (TS 33.203): how the SAs
/// carry the protected traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IpsecMode {
    /// `trans` (the default when `mod` is absent): transport-mode ESP.
    #[default]
    Transport,
    /// `UDP-enc-tun`: tunnel-mode ESP in UDP (RFC 3948), encapsulated on
    /// the protected ports.
    UdpEncapsulatedTunnel,
}

impl IpsecMode {
    /// The sec-agree value: `trans` or `UDP-enc-tun`.
    pub fn sec_agree_name(self) -> &'static str {
        match self {
            IpsecMode::Transport => "trans",
            IpsecMode::UdpEncapsulatedTunnel => "UDP-enc-tun",
        }
    }

    /// Reads a `mod` value (case-insensitively, as RFC 3329 compares
    /// tokens); `None` for another one.
    pub fn from_sec_agree_name(s: &str) -> Option<IpsecMode> {
        [IpsecMode::Transport, IpsecMode::UdpEncapsulatedTunnel]
            .into_iter()
            .find(|m| m.sec_agree_name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for IpsecMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sec_agree_name())
    }
}

/// The parameters of one `ipsec-3gpp` offer (TS 33.203, RFC 3329): algorithms,
/// mode, SPIs and protected ports of the side that sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpsecOffer {
    /// `alg`.
    pub alg: AuthAlgorithm,
    /// `ealg` (absent means `null`, as early releases have it).
    pub ealg: EncAlgorithm,
    /// `mod` (absent means `trans`).
    pub mode: IpsecMode,
    /// `spi-c`: the SPI of the SA that arrives at this side's port-c.
    pub spi_c: u32,
    /// `spi-s`: the SPI of the SA that arrives at this side's port-s.
    pub spi_s: u32,
    /// `port-c`: the protected client port.
    pub port_c: u16,
    /// `port-s`: the protected server port.
    pub port_s: u16,
}

impl IpsecOffer {
    /// Reads an `ipsec-3gpp` mechanism. Refused: another mechanism, an
    /// unknown or missing `alg` or `ealg`, a missing SPI or port, `prot`
    /// other than `esp`, `mod` other than `trans` and `UDP-enc-tun`.
    pub fn from_mechanism(m: &SecMechanism<'_>) -> Result<IpsecOffer, Error> {
        let bad = |what: &'static str| Error::BadOffer { what };
        let x = m.ipsec.as_ref().ok_or(bad("not ipsec-3gpp"))?;
        if x.prot.is_some_and(|p| !p.eq_ignore_ascii_case("esp")) {
            return Err(bad("prot other than esp"));
        }
        let mode = match x.mode {
            None => IpsecMode::Transport,
            Some(m) => IpsecMode::from_sec_agree_name(m)
                .ok_or(bad("mod other than trans and UDP-enc-tun"))?,
        };
        let alg = AuthAlgorithm::from_sec_agree_name(x.alg.ok_or(bad("no alg"))?)
            .map_err(|_| bad("unknown alg"))?;
        if alg == AuthAlgorithm::Null {
            return Err(bad("alg without integrity"));
        }
        let ealg = match x.ealg {
            None => EncAlgorithm::Null,
            Some(e) => EncAlgorithm::from_sec_agree_name(e).map_err(|_| bad("unknown ealg"))?,
        };
        Ok(IpsecOffer {
            alg,
            ealg,
            mode,
            spi_c: x.spi_c.ok_or(bad("no spi-c"))?,
            spi_s: x.spi_s.ok_or(bad("no spi-s"))?,
            port_c: x.port_c.ok_or(bad("no port-c"))?,
            port_s: x.port_s.ok_or(bad("no port-s"))?,
        })
    }

    /// Whether `other` names the same algorithms.
    pub fn same_algorithms(&self, other: &IpsecOffer) -> bool {
        self.alg == other.alg && self.ealg == other.ealg
    }
}

impl fmt::Display for IpsecOffer {
    /// `ipsec-3gpp;alg=..;ealg=..;spi-c=..;spi-s=..;port-c=..;port-s=..`,
    /// with `;mod=UDP-enc-tun` after `ealg` in that mode (`trans`, the
    /// default, is left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            IpsecMode::Transport => String::new(),
            m => format!(";mod={m}"),
        };
        write!(
            f,
            "ipsec-3gpp;alg={};ealg={}{mode};spi-c={};spi-s={};port-c={};port-s={}",
            self.alg.sec_agree_name().unwrap_or("null"),
            self.ealg.sec_agree_name().unwrap_or("null"),
            self.spi_c,
            self.spi_s,
            self.port_c,
            self.port_s
        )
    }
}

/// Whose view of the SAs: which two are inbound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The UE.
    Ue,
    /// The P-CSCF.
    Network,
}

/// One unidirectional SA with its policy selector (UDP from `src` port to
/// `dst` port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sa {
    /// Inbound or outbound, in the view of the set's side.
    pub direction: Direction,
    /// Sender address.
    pub src: IpAddr,
    /// Sender port.
    pub src_port: u16,
    /// Receiver address.
    pub dst: IpAddr,
    /// Receiver port.
    pub dst_port: u16,
    /// SPI, chosen by the receiver.
    pub spi: u32,
    /// For an outbound SA, the reqid binding it to its `unique` policy.
    pub reqid: Option<u32>,
}

/// What both sides agreed on: the UE's offer (its Security-Client entry),
/// the P-CSCF's chosen offer (its Security-Server entry) and the two
/// addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// The UE's address.
    pub ue_addr: IpAddr,
    /// The P-CSCF's address.
    pub pcscf_addr: IpAddr,
    /// The UE's offer.
    pub ue: IpsecOffer,
    /// The P-CSCF's offer.
    pub pcscf: IpsecOffer,
}

/// The four SAs of one security agreement, from one side's view, with the
/// keys expanded from CK/IK (TS 33.203 Annex I, [`opensec::ims`]) and a
/// hard lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaSet {
    side: Side,
    ue_addr: IpAddr,
    pcscf_addr: IpAddr,
    ue: IpsecOffer,
    pcscf: IpsecOffer,
    keys: EspKeys,
    lifetime: Duration,
    reqid_base: u32,
    tcp: bool,
}

impl SaSet {
    /// The SAs of `agreement`, whose P-CSCF offer's `alg` and `ealg` select
    /// the keys expanded from `ck` and `ik`.
    pub fn new(
        side: Side,
        agreement: &Agreement,
        ck: &[u8; 16],
        ik: &[u8; 16],
        lifetime: Duration,
    ) -> Result<SaSet, Error> {
        let p = &agreement.pcscf;
        let keys = esp_keys(p.ealg, p.alg, ck, ik).map_err(Error::Crypto)?;
        SaSet::with_keys(side, agreement, keys, lifetime)
    }

    /// As [`SaSet::new`] with keys given as such (their algorithms are
    /// used, not the offers').
    pub fn with_keys(
        side: Side,
        agreement: &Agreement,
        keys: EspKeys,
        lifetime: Duration,
    ) -> Result<SaSet, Error> {
        if agreement.ue_addr.is_ipv4() != agreement.pcscf_addr.is_ipv4() {
            return Err(Error::BadOffer {
                what: "UE and P-CSCF addresses of different families",
            });
        }
        if agreement.ue.mode != agreement.pcscf.mode {
            return Err(Error::BadOffer {
                what: "UE and P-CSCF offers in different modes",
            });
        }
        Ok(SaSet {
            side,
            ue_addr: agreement.ue_addr,
            pcscf_addr: agreement.pcscf_addr,
            ue: agreement.ue,
            pcscf: agreement.pcscf,
            keys,
            lifetime,
            reqid_base: 1,
            tcp: false,
        })
    }

    /// The same SAs with reqids `base` and `base + 1` for the outbound
    /// policies (default 1 and 2); distinct sets installed together need
    /// distinct reqids.
    pub fn with_reqid_base(mut self, base: u32) -> SaSet {
        self.reqid_base = base;
        self
    }

    /// The same SAs with a second policy each, for TCP (the first is for
    /// UDP): TS 33.203 §7.1 has the SAs carry SIP over UDP and TCP between
    /// the ports, and a kernel-style SPD selects by upper-layer protocol.
    /// Both policies of an SA have its reqid, so they use the same SA.
    pub fn with_tcp(mut self) -> SaSet {
        self.tcp = true;
        self
    }

    /// Whether the policies cover TCP too ([`SaSet::with_tcp`]).
    pub fn covers_tcp(&self) -> bool {
        self.tcp
    }

    /// The upper-layer protocols the policies select.
    fn protocols(&self) -> &'static [u8] {
        if self.tcp {
            &[ipproto::UDP, ipproto::TCP]
        } else {
            &[ipproto::UDP]
        }
    }

    /// The same SAs with another hard lifetime.
    pub fn with_lifetime(mut self, lifetime: Duration) -> SaSet {
        self.lifetime = lifetime;
        self
    }

    /// Whose view this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The agreed mode (both offers have it).
    pub fn mode(&self) -> IpsecMode {
        self.pcscf.mode
    }

    /// Whether the SAs are ESP in UDP (`esp-udp`): then each SA's UDP
    /// ports are its [`Sa::src_port`] and [`Sa::dst_port`].
    pub fn udp_encapsulated(&self) -> bool {
        self.mode() == IpsecMode::UdpEncapsulatedTunnel
    }

    /// The hard lifetime.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The UE's offer.
    pub fn ue_offer(&self) -> &IpsecOffer {
        &self.ue
    }

    /// The P-CSCF's offer.
    pub fn pcscf_offer(&self) -> &IpsecOffer {
        &self.pcscf
    }

    /// The UE's address.
    pub fn ue_addr(&self) -> IpAddr {
        self.ue_addr
    }

    /// The P-CSCF's address.
    pub fn pcscf_addr(&self) -> IpAddr {
        self.pcscf_addr
    }

    /// The keys.
    pub fn keys(&self) -> &EspKeys {
        &self.keys
    }

    /// The same SAs seen from the other side.
    pub fn mirror(&self) -> SaSet {
        let mut m = self.clone();
        m.side = match self.side {
            Side::Ue => Side::Network,
            Side::Network => Side::Ue,
        };
        m
    }

    /// The four SAs: the two inbound ones first, then the two outbound
    /// ones, in the order of the table in the module documentation read
    /// from the bottom (as TS 24.229 examples and the seed script list
    /// them).
    pub fn sas(&self) -> [Sa; 4] {
        let (ue, pc) = (&self.ue, &self.pcscf);
        let (u, p) = (self.ue_addr, self.pcscf_addr);
        // The UE's view; the network's swaps each direction.
        let ue_in_1 = (p, pc.port_c, u, ue.port_s, ue.spi_s);
        let ue_in_2 = (p, pc.port_s, u, ue.port_c, ue.spi_c);
        let ue_out_1 = (u, ue.port_c, p, pc.port_s, pc.spi_s);
        let ue_out_2 = (u, ue.port_s, p, pc.port_c, pc.spi_c);
        let sa = |d: Direction, (src, src_port, dst, dst_port, spi), reqid| Sa {
            direction: d,
            src,
            src_port,
            dst,
            dst_port,
            spi,
            reqid,
        };
        let (r1, r2) = (self.reqid_base, self.reqid_base.wrapping_add(1));
        match self.side {
            Side::Ue => [
                sa(Direction::In, ue_in_1, None),
                sa(Direction::In, ue_in_2, None),
                sa(Direction::Out, ue_out_1, Some(r1)),
                sa(Direction::Out, ue_out_2, Some(r2)),
            ],
            Side::Network => [
                sa(Direction::In, ue_out_1, None),
                sa(Direction::In, ue_out_2, None),
                sa(Direction::Out, ue_in_1, Some(r1)),
                sa(Direction::Out, ue_in_2, Some(r2)),
            ],
        }
    }

    /// The SPI of this side's inbound SA that carries datagrams from
    /// `from` to our `port`, if one does: a datagram that reaches a
    /// protected port from anyone else did not come over these SAs.
    pub fn inbound_spi(&self, from: std::net::SocketAddr, port: u16) -> Option<u32> {
        self.sas().into_iter().find_map(|sa| {
            (sa.direction == Direction::In
                && sa.src == from.ip()
                && sa.src_port == from.port()
                && sa.dst_port == port)
                .then_some(sa.spi)
        })
    }

    /// `spdadd` (one per protocol, [`SaSet::with_tcp`]) and `add` for
    /// each SA, in the order of [`SaSet::sas`].
    pub fn statements(&self) -> Vec<Statement> {
        let mut out = Vec::new();
        for sa in self.sas() {
            for p in self.protocols() {
                out.push(Statement::SpdAdd(self.policy(&sa, *p, true)));
            }
            out.push(Statement::Add(self.sa_spec(&sa)));
        }
        out
    }

    /// `update` for each SA: the keys are the same, the lifetime is this
    /// set's (how a registration extends its temporary SAs).
    pub fn update_statements(&self) -> Vec<Statement> {
        self.sas()
            .iter()
            .map(|sa| Statement::Update(self.sa_spec(sa)))
            .collect()
    }

    /// `spddelete` and `delete` for each SA.
    pub fn delete_statements(&self) -> Vec<Statement> {
        let mut out = Vec::new();
        for sa in self.sas() {
            for p in self.protocols() {
                out.push(Statement::SpdDelete(self.policy(&sa, *p, false)));
            }
            out.push(Statement::Delete(SaRef {
                flags: AddrFlags::default(),
                src: self.sa_endpoint(sa.src, sa.src_port),
                dst: self.sa_endpoint(sa.dst, sa.dst_port),
                protocol: self.sa_protocol(),
                spi: sa.spi,
            }));
        }
        out
    }

    /// [`SaSet::statements`] as a setkey script.
    pub fn script(&self) -> String {
        sadb::print_script(&self.statements())
    }

    fn policy(&self, sa: &Sa, protocol: u8, with_action: bool) -> PolicySpec {
        let prefix = if sa.src.is_ipv4() { 32 } else { 128 };
        let level = match sa.reqid {
            // The reqids fit in 16 bits in practice; larger ones are
            // clamped (setkey's unique:N takes a u16).
            Some(r) => Level::Unique(Some(u16::try_from(r).unwrap_or(u16::MAX))),
            None => Level::Require,
        };
        PolicySpec {
            flags: AddrFlags::default(),
            src: RangeSpec {
                addr: sa.src,
                prefix: Some(prefix),
                port: PortSpec::Port(sa.src_port),
            },
            dst: RangeSpec {
                addr: sa.dst,
                prefix: Some(prefix),
                port: PortSpec::Port(sa.dst_port),
            },
            upper: UpperSpec {
                protocol: Some(protocol),
                icmp: None,
            },
            policy: PolicyClause {
                direction: sa.direction,
                priority: None,
                action: with_action.then(|| {
                    let (mode, endpoints) = if self.udp_encapsulated() {
                        (ReqMode::Tunnel, Some((endpoint(sa.src), endpoint(sa.dst))))
                    } else {
                        (ReqMode::Transport, None)
                    };
                    Action::Ipsec(vec![Request {
                        protocol: ReqProtocol::Esp,
                        mode,
                        endpoints,
                        level,
                    }])
                }),
            },
        }
    }

    fn sa_spec(&self, sa: &Sa) -> SaSpec {
        let key = |k: &opensec::ims::SecretKey| {
            if k.is_empty() {
                Key::empty()
            } else {
                Key::new(k.as_bytes().to_vec(), KeyForm::Hex)
            }
        };
        let mode = if self.udp_encapsulated() {
            SaModeSpec::Tunnel
        } else {
            SaModeSpec::Transport
        };
        SaSpec {
            flags: AddrFlags::default(),
            src: self.sa_endpoint(sa.src, sa.src_port),
            dst: self.sa_endpoint(sa.dst, sa.dst_port),
            protocol: self.sa_protocol(),
            spi: sa.spi,
            ext: Extensions {
                mode: Some(mode),
                reqid: sa.reqid,
                lifetime_hard: Some(self.lifetime.as_secs()),
                ..Extensions::default()
            },
            alg: AlgorithmSpec::Esp {
                enc: self.keys.ealg,
                enc_key: key(&self.keys.enc_key),
                auth: Some((self.keys.alg, key(&self.keys.auth_key))),
            },
        }
    }
}

impl SaSet {
    /// `esp`, or `esp-udp` for UDP-encapsulated SAs.
    fn sa_protocol(&self) -> SaProtocol {
        if self.udp_encapsulated() {
            SaProtocol::EspUdp
        } else {
            SaProtocol::Esp
        }
    }

    /// An SA's address, with its UDP encapsulation port for `esp-udp`.
    fn sa_endpoint(&self, addr: IpAddr, port: u16) -> Endpoint {
        Endpoint {
            addr,
            port: self.udp_encapsulated().then_some(port),
        }
    }
}

/// Two SPIs for the inbound SAs of one side (`spi-c`, `spi-s`): random,
/// above the reserved 0..=255 (RFC 4303 §2.1), distinct from each other and
/// from `in_use`. `None` if 64 draws found none (a broken [`Random`]).
pub fn fresh_spis(rng: &mut dyn Random, in_use: &[u32]) -> Option<(u32, u32)> {
    let mut draw = |not: Option<u32>| {
        (0..64).find_map(|_| {
            let mut b = [0u8; 4];
            rng.fill(&mut b);
            let spi = u32::from_be_bytes(b);
            (spi > 255 && Some(spi) != not && !in_use.contains(&spi)).then_some(spi)
        })
    };
    let c = draw(None)?;
    Some((c, draw(Some(c))?))
}

fn endpoint(addr: IpAddr) -> Endpoint {
    Endpoint { addr, port: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opensec::ims::SecretKey;

    const SEED: &str = r#"
spdadd 192.168.0.10/32[5066] 192.168.0.11/32[5064] udp -P in ipsec esp/transport//require;
add 192.168.0.10 192.168.0.11 esp 2222 -m transport -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
spdadd 192.168.0.10/32[5068] 192.168.0.11/32[5062] udp -P in ipsec esp/transport//require;
add 192.168.0.10 192.168.0.11 esp 1111 -m transport -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
spdadd 192.168.0.11/32[5062] 192.168.0.10/32[5068] udp -P out ipsec esp/transport//unique:1;
add 192.168.0.11 192.168.0.10 esp 4444 -m transport -u 1 -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
spdadd 192.168.0.11/32[5064] 192.168.0.10/32[5066] udp -P out ipsec esp/transport//unique:2;
add 192.168.0.11 192.168.0.10 esp 3333 -m transport -u 2 -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
"#;

    fn offers() -> (IpsecOffer, IpsecOffer) {
        let c = crate::sip::header::SecMechanism::parse_list(
            "ipsec-3gpp; alg=hmac-md5-96; spi-c=1111; spi-s=2222; port-c=5062; port-s=5064",
        )
        .unwrap();
        let s = crate::sip::header::SecMechanism::parse_list(
            "ipsec-3gpp; q=0.1; alg=hmac-md5-96; spi-c=3333; spi-s=4444; port-c=5066; port-s=5068",
        )
        .unwrap();
        (
            IpsecOffer::from_mechanism(&c[0]).unwrap(),
            IpsecOffer::from_mechanism(&s[0]).unwrap(),
        )
    }

    /// The seed's keys are written quoted; ours in hex. Same bytes.
    fn hex_keys(s: Statement) -> Statement {
        match s {
            Statement::Add(mut a) => {
                if let AlgorithmSpec::Esp { enc_key, auth, .. } = &mut a.alg {
                    *enc_key = Key::new(enc_key.bytes().to_vec(), KeyForm::Hex);
                    if let Some((_, k)) = auth {
                        *k = Key::new(k.bytes().to_vec(), KeyForm::Hex);
                    }
                }
                a.ext.lifetime_hard = Some(240);
                Statement::Add(a)
            }
            s => s,
        }
    }

    fn seed_set(side: Side) -> SaSet {
        let (ue, pcscf) = offers();
        let keys = EspKeys {
            ealg: EncAlgorithm::TripleDesCbc,
            enc_key: SecretKey::new(b"123456789012123456789012").unwrap(),
            alg: AuthAlgorithm::HmacMd5_96,
            auth_key: SecretKey::new(b"1234567890123456").unwrap(),
        };
        let a = Agreement {
            ue_addr: "192.168.0.11".parse().unwrap(),
            pcscf_addr: "192.168.0.10".parse().unwrap(),
            ue,
            pcscf,
        };
        SaSet::with_keys(side, &a, keys, TEMPORARY_LIFETIME).unwrap()
    }

    #[test]
    fn the_seed_example_is_reproduced() {
        let expected: Vec<Statement> = sadb::parse(SEED)
            .unwrap()
            .into_iter()
            .map(|l| hex_keys(l.value))
            .collect();
        let ours = seed_set(Side::Ue).statements();
        assert_eq!(ours, expected);
        // And the script we print reads back as the same statements.
        let back: Vec<Statement> = sadb::parse(&seed_set(Side::Ue).script())
            .unwrap()
            .into_iter()
            .map(|l| l.value)
            .collect();
        assert_eq!(back, ours);
    }

    #[test]
    fn the_network_set_mirrors_the_ue_set() {
        let ue = seed_set(Side::Ue);
        let net = seed_set(Side::Network);
        assert_eq!(ue.mirror(), net);
        let flip = |d| match d {
            Direction::In => Direction::Out,
            _ => Direction::In,
        };
        let mut a: Vec<_> = ue
            .sas()
            .iter()
            .map(|s| {
                (
                    flip(s.direction) == Direction::In,
                    s.src,
                    s.src_port,
                    s.dst,
                    s.dst_port,
                    s.spi,
                )
            })
            .collect();
        let mut b: Vec<_> = net
            .sas()
            .iter()
            .map(|s| {
                (
                    s.direction == Direction::In,
                    s.src,
                    s.src_port,
                    s.dst,
                    s.dst_port,
                    s.spi,
                )
            })
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        // Each SPI is the one its receiver chose.
        for sa in net.sas() {
            let receiver = if sa.dst == net.ue_addr() {
                net.ue_offer()
            } else {
                net.pcscf_offer()
            };
            let want = if sa.dst_port == receiver.port_c {
                receiver.spi_c
            } else {
                receiver.spi_s
            };
            assert_eq!(sa.spi, want);
        }
        assert_eq!(net.delete_statements().len(), 8);
        assert_eq!(net.update_statements().len(), 4);
    }

    #[test]
    fn keys_from_ck_ik_and_offers() {
        let (ue, mut pcscf) = offers();
        pcscf.alg = AuthAlgorithm::HmacSha1_96;
        pcscf.ealg = EncAlgorithm::AesCbc;
        let a = Agreement {
            ue_addr: "::1".parse().unwrap(),
            pcscf_addr: "::1".parse().unwrap(),
            ue,
            pcscf,
        };
        let s = SaSet::new(Side::Ue, &a, &[1; 16], &[2; 16], Duration::from_secs(630)).unwrap();
        assert_eq!(s.keys().auth_key.len(), 20);
        assert!(s.script().contains("-lh 630"));
        assert!(s.script().contains("aes-cbc"));
        assert_eq!(
            pcscf.to_string(),
            "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=3333;spi-s=4444;port-c=5066;port-s=5068"
        );
    }

    #[test]
    fn inbound_spi_names_the_sa_of_a_sender_and_port() {
        let (ue, pcscf) = offers();
        let a = Agreement {
            ue_addr: "192.0.2.1".parse().unwrap(),
            pcscf_addr: "192.0.2.9".parse().unwrap(),
            ue,
            pcscf,
        };
        let s = SaSet::new(Side::Ue, &a, &[1; 16], &[2; 16], TEMPORARY_LIFETIME).unwrap();
        let at = |x: &str| x.parse::<std::net::SocketAddr>().unwrap();
        // The UE: the P-CSCF's port-s to our port-c (spi-c 1111), its
        // port-c to our port-s (spi-s 2222); nothing else.
        assert_eq!(s.inbound_spi(at("192.0.2.9:5068"), 5062), Some(1111));
        assert_eq!(s.inbound_spi(at("192.0.2.9:5066"), 5064), Some(2222));
        assert_eq!(s.inbound_spi(at("192.0.2.9:5066"), 5062), None);
        assert_eq!(s.inbound_spi(at("192.0.2.7:5068"), 5062), None);
        assert_eq!(s.inbound_spi(at("192.0.2.9:5060"), 5062), None);
        // The network: the UE's port-c to our port-s (spi-s 4444).
        let n = s.mirror();
        assert_eq!(n.inbound_spi(at("192.0.2.1:5062"), 5068), Some(4444));
        assert_eq!(n.inbound_spi(at("192.0.2.1:5064"), 5066), Some(3333));
        assert_eq!(n.inbound_spi(at("192.0.2.1:5062"), 5066), None);
    }

    /// The seed's SAs in `mod=UDP-enc-tun`: tunnel-mode esp-udp SAs on the
    /// protected ports, policies selecting the inner UDP between them.
    const SEED_UDP: &str = r#"
spdadd 192.168.0.10/32[5066] 192.168.0.11/32[5064] udp -P in ipsec esp/tunnel/192.168.0.10-192.168.0.11/require;
add 192.168.0.10[5066] 192.168.0.11[5064] esp-udp 2222 -m tunnel -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
spdadd 192.168.0.10/32[5068] 192.168.0.11/32[5062] udp -P in ipsec esp/tunnel/192.168.0.10-192.168.0.11/require;
add 192.168.0.10[5068] 192.168.0.11[5062] esp-udp 1111 -m tunnel -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
spdadd 192.168.0.11/32[5062] 192.168.0.10/32[5068] udp -P out ipsec esp/tunnel/192.168.0.11-192.168.0.10/unique:1;
add 192.168.0.11[5062] 192.168.0.10[5068] esp-udp 4444 -m tunnel -u 1 -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
spdadd 192.168.0.11/32[5064] 192.168.0.10/32[5066] udp -P out ipsec esp/tunnel/192.168.0.11-192.168.0.10/unique:2;
add 192.168.0.11[5064] 192.168.0.10[5066] esp-udp 3333 -m tunnel -u 2 -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
"#;

    fn udp_set(side: Side) -> SaSet {
        let mut s = seed_set(side);
        s.ue.mode = IpsecMode::UdpEncapsulatedTunnel;
        s.pcscf.mode = IpsecMode::UdpEncapsulatedTunnel;
        s
    }

    fn mechanism(text: &str) -> Result<IpsecOffer, Error> {
        let list = crate::sip::header::SecMechanism::parse_list(text).unwrap();
        IpsecOffer::from_mechanism(&list[0])
    }

    #[test]
    fn offers_read_their_mode() {
        let base = "ipsec-3gpp;alg=hmac-sha-1-96;spi-c=1111;spi-s=2222;port-c=5062;port-s=5064";
        assert_eq!(mechanism(base).unwrap().mode, IpsecMode::Transport);
        for (m, want) in [
            ("trans", IpsecMode::Transport),
            ("UDP-enc-tun", IpsecMode::UdpEncapsulatedTunnel),
            ("udp-enc-tun", IpsecMode::UdpEncapsulatedTunnel),
        ] {
            let o = mechanism(&format!("{base};mod={m}")).unwrap();
            assert_eq!(o.mode, want, "{m}");
            // What we print reads back as the same offer.
            assert_eq!(mechanism(&o.to_string()).unwrap(), o);
        }
        for m in ["tun", "UDP-enc-trans"] {
            assert_eq!(
                mechanism(&format!("{base};mod={m}")),
                Err(Error::BadOffer {
                    what: "mod other than trans and UDP-enc-tun"
                }),
                "{m}"
            );
        }
        let o = mechanism(&format!("{base};mod=UDP-enc-tun")).unwrap();
        assert_eq!(
            o.to_string(),
            "ipsec-3gpp;alg=hmac-sha-1-96;ealg=null;mod=UDP-enc-tun;spi-c=1111;spi-s=2222;port-c=5062;port-s=5064"
        );
    }

    #[test]
    fn offers_in_two_modes_make_no_sas() {
        let (ue, pcscf) = offers();
        let a = Agreement {
            ue_addr: "192.168.0.11".parse().unwrap(),
            pcscf_addr: "192.168.0.10".parse().unwrap(),
            ue: IpsecOffer {
                mode: IpsecMode::UdpEncapsulatedTunnel,
                ..ue
            },
            pcscf,
        };
        assert_eq!(
            SaSet::new(Side::Ue, &a, &[1; 16], &[2; 16], TEMPORARY_LIFETIME),
            Err(Error::BadOffer {
                what: "UE and P-CSCF offers in different modes"
            })
        );
    }

    #[test]
    fn udp_enc_tun_sas_are_esp_udp_tunnels_on_the_protected_ports() {
        let expected: Vec<Statement> = sadb::parse(SEED_UDP)
            .unwrap()
            .into_iter()
            .map(|l| hex_keys(l.value))
            .collect();
        let set = udp_set(Side::Ue);
        assert_eq!(set.mode(), IpsecMode::UdpEncapsulatedTunnel);
        assert_eq!(set.statements(), expected);
        for statements in [
            set.statements(),
            set.update_statements(),
            set.delete_statements(),
        ] {
            let back: Vec<Statement> = sadb::parse(&sadb::print_script(&statements))
                .unwrap()
                .into_iter()
                .map(|l| l.value)
                .collect();
            assert_eq!(back, statements);
        }
        // The transport path is unchanged.
        assert!(!seed_set(Side::Ue).script().contains("esp-udp"));
    }

    /// Both sides' statements applied to two databases: a UDP datagram from
    /// the UE's port-c to the P-CSCF's port-s leaves as ESP in UDP between
    /// those ports and comes out whole on the other side; the SAs go away
    /// with the delete statements.
    #[test]
    fn udp_enc_tun_sas_carry_a_datagram_between_the_protected_ports() {
        use sadb::{Databases, Incoming, Outgoing, Received, Timestamp, Wire};
        let now = Timestamp(1_795_314_303);
        let (ue_set, net_set) = (udp_set(Side::Ue), udp_set(Side::Network));
        let mut ue = Databases::new();
        ue.apply_statements(&ue_set.statements(), now).unwrap();
        let mut net = Databases::new();
        net.apply_statements(&net_set.statements(), now).unwrap();
        ue.apply_statements(&ue_set.update_statements(), now)
            .unwrap();

        let sip = b"REGISTER sip:ims.example.org SIP/2.0\r\n\r\n";
        let pkt = testkit::packet::udp("192.168.0.11", 5062, "192.168.0.10", 5068, sip);
        let mut buf = vec![0u8; 512];
        buf[128..128 + pkt.len()].copy_from_slice(&pkt);
        let mut iv = |iv: &mut [u8]| iv.fill(7);
        let Outgoing::Protected(p) = ue.protect(&mut buf, 128..128 + pkt.len(), now, &mut iv)
        else {
            panic!("not protected")
        };
        assert_eq!(
            p.wire,
            Wire::EspInUdp {
                sport: 5062,
                dport: 5068
            }
        );
        assert_eq!(p.sas.iter().next().unwrap().id.spi.0, 4444);
        let esp = buf[p.payload()].to_vec();
        let mut rx = vec![0u8; 512];
        rx[64..64 + esp.len()].copy_from_slice(&esp);
        let from = Received::Udp {
            src: "192.168.0.11:5062".parse().unwrap(),
            dst: "192.168.0.10:5068".parse().unwrap(),
        };
        match net.unprotect(&mut rx, 64..64 + esp.len(), from, now) {
            Incoming::Deliver(d) => assert_eq!(&rx[d.packet], &pkt[..]),
            other => panic!("{other:?}"),
        }
        // Clear text on the protected port is refused.
        let mut clear = vec![0u8; 512];
        clear[64..64 + sip.len()].copy_from_slice(sip);
        assert!(matches!(
            net.unprotect(&mut clear, 64..64 + sip.len(), from, now),
            Incoming::Drop(_)
        ));
        net.apply_statements(&net_set.delete_statements(), now)
            .unwrap();
        assert_eq!(net.sad().iter().count(), 0);
        assert_eq!(net.spd().iter().count(), 0);
    }

    #[test]
    fn fresh_spis_are_distinct_and_above_255() {
        struct Seq(Vec<u32>);
        impl Random for Seq {
            fn fill(&mut self, buf: &mut [u8]) {
                let v = if self.0.is_empty() {
                    0
                } else {
                    self.0.remove(0)
                };
                buf.copy_from_slice(&v.to_be_bytes());
            }
        }
        let mut rng = Seq(vec![0, 255, 7000, 7000, 9000, 9001]);
        assert_eq!(fresh_spis(&mut rng, &[9000]), Some((7000, 9001)));
        assert_eq!(fresh_spis(&mut Seq(vec![]), &[]), None);
    }
}
