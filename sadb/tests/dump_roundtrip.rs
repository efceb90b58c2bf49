//! `setkey -D` / `setkey -DP` dumps read back give the SAs and policies
//! that were installed (the fields a dump carries).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use opensec::{AuthAlgorithm, EncAlgorithm};
use proptest::prelude::*;
use sadb::ast::*;
use sadb::dump::{parse_sad_dump, parse_spd_dump};
use sadb::{Databases, PolicyAction, Timestamp, selector_of};

const NOW: Timestamp = Timestamp(1_795_314_303);

fn v4v6(i: u8) -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(move |a| (
            IpAddr::V4(Ipv4Addr::new(10, a[0], a[1], i)),
            IpAddr::V4(Ipv4Addr::new(172, 16, a[2], 1))
        )),
        any::<[u16; 2]>().prop_map(move |a| (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, a[0], 0, 0, 0, 0, u16::from(i))),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, a[1], 0, 0, 0, 1))
        )),
    ]
}

fn key(len: usize) -> impl Strategy<Value = Key> {
    proptest::collection::vec(any::<u8>(), len).prop_map(|b| Key::new(b, KeyForm::Hex))
}

fn keyed_enc() -> impl Strategy<Value = (EncAlgorithm, Key)> {
    proptest::sample::select(EncAlgorithm::ALL.to_vec()).prop_flat_map(|alg| {
        let len = alg.key_lengths().last().copied().unwrap_or(0);
        key(len).prop_map(move |k| {
            (
                alg,
                if alg == EncAlgorithm::Null {
                    Key::empty()
                } else {
                    k
                },
            )
        })
    })
}

fn keyed_auth() -> impl Strategy<Value = (AuthAlgorithm, Key)> {
    let real: Vec<AuthAlgorithm> = AuthAlgorithm::ALL
        .iter()
        .copied()
        .filter(|a| *a != AuthAlgorithm::Null)
        .collect();
    proptest::sample::select(real).prop_flat_map(|alg| {
        let len = alg.key_lengths().first().copied().unwrap_or(0);
        key(len).prop_map(move |k| (alg, k))
    })
}

fn sa(i: u8) -> impl Strategy<Value = SaSpec> {
    (
        v4v6(i),
        prop_oneof![
            Just(SaProtocol::Esp),
            Just(SaProtocol::Ah),
            Just(SaProtocol::EspUdp)
        ],
        256u32..0xffff_0000,
        proptest::option::of(prop_oneof![
            Just(SaModeSpec::Transport),
            Just(SaModeSpec::Any)
        ]),
        proptest::option::of(0u32..=512),
        proptest::option::of(any::<u32>()),
        proptest::array::uniform4(proptest::option::of(any::<u64>())),
        keyed_enc(),
        keyed_auth(),
        any::<bool>(),
        proptest::option::of((1u16.., 1u16..)),
    )
        .prop_map(
            move |(
                (src, dst),
                protocol,
                spi,
                mode,
                replay,
                reqid,
                l,
                enc,
                auth,
                with_auth,
                ports,
            )| {
                let alg = match protocol {
                    SaProtocol::Ah => AlgorithmSpec::Auth {
                        auth: auth.0,
                        key: auth.1,
                    },
                    _ => AlgorithmSpec::Esp {
                        auth: (with_auth || enc.0 == EncAlgorithm::Null).then_some(auth),
                        enc: enc.0,
                        enc_key: enc.1,
                    },
                };
                let ports = ports.filter(|_| protocol == SaProtocol::EspUdp);
                SaSpec {
                    flags: AddrFlags::default(),
                    src: Endpoint {
                        addr: src,
                        port: ports.map(|p| p.0),
                    },
                    dst: Endpoint {
                        addr: dst,
                        port: ports.map(|p| p.1),
                    },
                    protocol,
                    // Distinct SPIs per generated SA.
                    spi: spi.wrapping_add(u32::from(i) << 24).max(256),
                    ext: Extensions {
                        mode,
                        replay,
                        reqid,
                        pad: None,
                        nocyclic_seq: false,
                        lifetime_hard: l[0],
                        lifetime_soft: l[1],
                        bytes_hard: l[2],
                        bytes_soft: l[3],
                    },
                    alg,
                }
            },
        )
}

/// The fields a `setkey -D` record carries, normalized.
fn sa_fields(s: &SaSpec) -> impl PartialEq + std::fmt::Debug {
    let (enc, enc_key, auth, auth_key) = match &s.alg {
        AlgorithmSpec::Esp { enc, enc_key, auth } => (
            *enc,
            enc_key.bytes().to_vec(),
            auth.as_ref().map(|a| a.0).unwrap_or(AuthAlgorithm::Null),
            auth.as_ref()
                .map(|a| a.1.bytes().to_vec())
                .unwrap_or_default(),
        ),
        AlgorithmSpec::Auth { auth, key } => {
            (EncAlgorithm::Null, Vec::new(), *auth, key.bytes().to_vec())
        }
    };
    let port = |p: Option<u16>| {
        (s.protocol == SaProtocol::EspUdp).then(|| p.filter(|&p| p != 0).unwrap_or(4500))
    };
    let e = &s.ext;
    (
        (
            s.src.addr,
            port(s.src.port),
            s.dst.addr,
            port(s.dst.port),
            s.protocol,
            s.spi,
        ),
        (
            matches!(e.mode, Some(SaModeSpec::Tunnel)),
            e.replay.unwrap_or(0),
            e.reqid.unwrap_or(0),
            [
                e.lifetime_hard.unwrap_or(0),
                e.lifetime_soft.unwrap_or(0),
                e.bytes_hard.unwrap_or(0),
                e.bytes_soft.unwrap_or(0),
            ],
        ),
        (enc, enc_key, auth, auth_key),
    )
}

fn policy(i: u8) -> impl Strategy<Value = PolicySpec> {
    let request = (
        prop_oneof![Just(ReqProtocol::Esp), Just(ReqProtocol::Ah)],
        any::<bool>(),
        v4v6(i),
        prop_oneof![
            Just(Level::Default),
            Just(Level::Use),
            Just(Level::Require),
            Just(Level::Unique(None)),
            (1u16..=16383).prop_map(|n| Level::Unique(Some(n)))
        ],
    )
        .prop_map(|(protocol, tunnel, (a, b), level)| Request {
            protocol,
            mode: if tunnel {
                ReqMode::Tunnel
            } else {
                ReqMode::Transport
            },
            endpoints: tunnel.then_some((
                Endpoint {
                    addr: a,
                    port: None,
                },
                Endpoint {
                    addr: b,
                    port: None,
                },
            )),
            level,
        });
    (
        v4v6(i),
        proptest::option::of(0u8..=24),
        any::<(u16, u16)>(),
        proptest::option::of(any::<u8>()),
        proptest::option::of((any::<u8>(), proptest::option::of(any::<u8>()))),
        prop_oneof![
            Just(Direction::In),
            Just(Direction::Out),
            Just(Direction::Fwd)
        ],
        proptest::option::of(prop_oneof![
            (-0x3fff_ffffi64..=0x3fff_ffff).prop_map(PrioritySpec::Offset),
            (
                prop_oneof![
                    Just(PriorityBase::Low),
                    Just(PriorityBase::Def),
                    Just(PriorityBase::High)
                ],
                -0x1000_0000i64..=0x1000_0000
            )
                .prop_map(|(base, offset)| PrioritySpec::Base { base, offset })
        ]),
        prop_oneof![
            Just(Action::Discard),
            Just(Action::None),
            proptest::collection::vec(request, 1..=4).prop_map(Action::Ipsec)
        ],
    )
        .prop_map(
            move |((s, d), prefix, (sp, dp), proto, icmp, direction, priority, action)| {
                let no_ports = proto.is_some_and(is_icmp_like) || proto == Some(ipproto::GRE);
                let port = |p: u16| {
                    if no_ports || p % 3 == 0 {
                        PortSpec::Any
                    } else {
                        PortSpec::Port(p.max(1))
                    }
                };
                PolicySpec {
                    flags: AddrFlags::default(),
                    src: RangeSpec {
                        addr: s,
                        prefix: None,
                        port: port(sp),
                    },
                    dst: RangeSpec {
                        addr: d,
                        prefix,
                        port: port(dp),
                    },
                    upper: UpperSpec {
                        protocol: proto,
                        icmp: icmp
                            .filter(|_| proto.is_some_and(is_icmp_like))
                            .map(|(t, c)| IcmpSpec {
                                icmp_type: t,
                                code: c,
                            }),
                    },
                    policy: PolicyClause {
                        direction,
                        priority,
                        action: Some(action),
                    },
                }
            },
        )
}

/// What a `setkey -DP` record carries, normalized.
fn policy_fields(p: &PolicySpec) -> impl PartialEq + std::fmt::Debug {
    let action = match p.policy.action.as_ref().unwrap() {
        Action::Discard => (0, Vec::new()),
        Action::None => (1, Vec::new()),
        Action::Ipsec(r) => (
            2,
            r.iter()
                .map(|r| {
                    (
                        r.protocol,
                        r.mode,
                        r.endpoints.map(|(a, b)| (a.addr, b.addr)),
                        r.level,
                    )
                })
                .collect(),
        ),
    };
    (
        selector_of(p),
        p.policy.direction,
        p.policy
            .priority
            .map(PrioritySpec::kernel_value)
            .unwrap_or(PRIORITY_DEFAULT),
        action,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn sad_dump_reads_back(specs in (sa(1), sa(2), sa(3), sa(4))) {
        let specs = [specs.0, specs.1, specs.2, specs.3];
        let script: String = specs.iter().map(|s| format!("{}\n", Statement::Add(s.clone()))).collect();
        let mut db = Databases::new();
        db.apply_script(&script, NOW).map_err(|e| TestCaseError::fail(format!("{e}\n{script}")))?;
        let dump = db.dump_sad(NOW);
        let back = parse_sad_dump(&dump).map_err(|e| TestCaseError::fail(format!("{e}\n{dump}")))?;
        prop_assert_eq!(back.len(), 4);
        for (orig, got) in specs.iter().zip(&back) {
            let Statement::Add(got) = got else { panic!("{got:?}") };
            prop_assert_eq!(sa_fields(orig), sa_fields(got), "{}", dump);
        }
    }

    #[test]
    fn spd_dump_reads_back(specs in (policy(1), policy(2), policy(3))) {
        let specs = [specs.0, specs.1, specs.2];
        let script: String = specs.iter().map(|s| format!("{}\n", Statement::SpdAdd(s.clone()))).collect();
        let mut db = Databases::new();
        db.apply_script(&script, NOW).map_err(|e| TestCaseError::fail(format!("{e}\n{script}")))?;
        let dump = db.dump_spd();
        let back = parse_spd_dump(&dump).map_err(|e| TestCaseError::fail(format!("{e}\n{dump}")))?;
        prop_assert_eq!(back.len(), 3);
        let ids: Vec<u32> = db.spd().in_insertion_order().iter().map(|p| p.id).collect();
        for ((orig, (got, spid)), id) in specs.iter().zip(&back).zip(ids) {
            let Statement::SpdAdd(got) = got else { panic!("{got:?}") };
            prop_assert_eq!(policy_fields(orig), policy_fields(got), "{}", dump);
            prop_assert_eq!(*spid, id);
        }
        // And the databases agree with the statements about each policy.
        for (orig, p) in specs.iter().zip(db.spd().in_insertion_order()) {
            prop_assert_eq!(p.selector, selector_of(orig));
            let is_ipsec = matches!(p.action, PolicyAction::Ipsec(_));
            prop_assert_eq!(is_ipsec, matches!(orig.policy.action, Some(Action::Ipsec(_))));
        }
    }
}
