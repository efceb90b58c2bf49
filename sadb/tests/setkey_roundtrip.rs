//! Property tests of the setkey parser: it never panics, and printing a
//! statement then parsing it gives the same statement.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use opensec::{AuthAlgorithm, EncAlgorithm};
use proptest::prelude::*;
use sadb::ast::*;

fn addr_pair() -> impl Strategy<Value = (IpAddr, IpAddr, Family)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(a, b)| (
            IpAddr::V4(Ipv4Addr::from(a)),
            IpAddr::V4(Ipv4Addr::from(b)),
            Family::V4
        )),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(a, b)| (
            IpAddr::V6(Ipv6Addr::from(a)),
            IpAddr::V6(Ipv6Addr::from(b)),
            Family::V6
        )),
    ]
}

fn flags(family: Family) -> impl Strategy<Value = AddrFlags> {
    (any::<bool>(), any::<bool>()).prop_map(move |(f, numeric)| AddrFlags {
        family: f.then_some(family),
        numeric,
    })
}

fn sa_protocol() -> impl Strategy<Value = SaProtocol> {
    prop_oneof![
        Just(SaProtocol::Esp),
        Just(SaProtocol::Ah),
        Just(SaProtocol::EspUdp)
    ]
}

fn key(len: usize) -> impl Strategy<Value = Key> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), len).prop_map(|b| Key::new(b, KeyForm::Hex)),
        proptest::collection::vec(0x20u8..0x7f, len).prop_map(|b| Key::new(b, KeyForm::Quoted)),
    ]
}

fn enc() -> impl Strategy<Value = (EncAlgorithm, Key)> {
    proptest::sample::select(EncAlgorithm::ALL.to_vec()).prop_flat_map(|alg| {
        let lens = alg.key_lengths().to_vec();
        proptest::sample::select(lens).prop_flat_map(move |len| {
            if alg == EncAlgorithm::Null {
                Just(Key::empty()).boxed()
            } else {
                key(len).boxed()
            }
            .prop_map(move |k| (alg, k))
        })
    })
}

fn auth() -> impl Strategy<Value = (AuthAlgorithm, Key)> {
    proptest::sample::select(AuthAlgorithm::ALL.to_vec()).prop_flat_map(|alg| {
        let lens = alg.key_lengths().to_vec();
        proptest::sample::select(lens).prop_flat_map(move |len| {
            if alg == AuthAlgorithm::Null {
                Just(Key::empty()).boxed()
            } else {
                key(len).boxed()
            }
            .prop_map(move |k| (alg, k))
        })
    })
}

fn alg_spec() -> impl Strategy<Value = AlgorithmSpec> {
    prop_oneof![
        (enc(), proptest::option::of(auth()))
            .prop_map(|((enc, enc_key), auth)| { AlgorithmSpec::Esp { enc, enc_key, auth } }),
        auth().prop_map(|(auth, key)| AlgorithmSpec::Auth { auth, key }),
    ]
}

fn extensions() -> impl Strategy<Value = Extensions> {
    (
        proptest::option::of(prop_oneof![
            Just(SaModeSpec::Transport),
            Just(SaModeSpec::Tunnel),
            Just(SaModeSpec::Any)
        ]),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(prop_oneof![
            Just(PadOption::ZeroPad),
            Just(PadOption::RandomPad),
            Just(PadOption::SeqPad)
        ]),
        any::<bool>(),
        proptest::array::uniform4(proptest::option::of(any::<u64>())),
    )
        .prop_map(|(mode, replay, reqid, pad, nocyclic_seq, l)| Extensions {
            mode,
            replay,
            reqid,
            pad,
            nocyclic_seq,
            lifetime_hard: l[0],
            lifetime_soft: l[1],
            bytes_hard: l[2],
            bytes_soft: l[3],
        })
}

fn sa_spec() -> impl Strategy<Value = SaSpec> {
    addr_pair().prop_flat_map(|(s, d, fam)| {
        (
            flags(fam),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u16>()),
            sa_protocol(),
            256u32..,
            extensions(),
            alg_spec(),
        )
            .prop_map(move |(flags, sp, dp, protocol, spi, ext, alg)| SaSpec {
                flags,
                src: Endpoint { addr: s, port: sp },
                dst: Endpoint { addr: d, port: dp },
                protocol,
                spi,
                ext,
                alg,
            })
    })
}

fn sa_ref() -> impl Strategy<Value = SaRef> {
    addr_pair().prop_flat_map(|(s, d, fam)| {
        (
            flags(fam),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u16>()),
            sa_protocol(),
            256u32..,
        )
            .prop_map(move |(flags, sp, dp, protocol, spi)| SaRef {
                flags,
                src: Endpoint { addr: s, port: sp },
                dst: Endpoint { addr: d, port: dp },
                protocol,
                spi,
            })
    })
}

fn getspi_spec() -> impl Strategy<Value = GetSpiSpec> {
    addr_pair().prop_flat_map(|(s, d, fam)| {
        (
            flags(fam),
            sa_protocol(),
            proptest::option::of(256u32..),
            proptest::option::of(prop_oneof![
                Just(SaModeSpec::Transport),
                Just(SaModeSpec::Tunnel),
                Just(SaModeSpec::Any)
            ]),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(move |(flags, protocol, spi, mode, reqid, lifetime_hard)| {
                GetSpiSpec {
                    flags,
                    src: Endpoint {
                        addr: s,
                        port: None,
                    },
                    dst: Endpoint {
                        addr: d,
                        port: None,
                    },
                    protocol,
                    spi,
                    ext: Extensions {
                        mode,
                        reqid,
                        lifetime_hard,
                        ..Extensions::default()
                    },
                }
            })
    })
}

fn port_spec() -> impl Strategy<Value = PortSpec> {
    prop_oneof![
        Just(PortSpec::Omitted),
        Just(PortSpec::Any),
        (1u16..).prop_map(PortSpec::Port)
    ]
}

fn priority() -> impl Strategy<Value = PrioritySpec> {
    prop_oneof![
        (-0x7fff_ffffi64..=0x8000_0000).prop_map(PrioritySpec::Offset),
        (
            prop_oneof![
                Just(PriorityBase::Low),
                Just(PriorityBase::Def),
                Just(PriorityBase::High)
            ],
            -0x3fff_ffffi64..=0x4000_0000
        )
            .prop_map(|(base, offset)| PrioritySpec::Base { base, offset }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop_oneof![Just(ReqProtocol::Esp), Just(ReqProtocol::Ah)],
        prop_oneof![Just(ReqMode::Transport), Just(ReqMode::Tunnel)],
        addr_pair(),
        any::<bool>(),
        proptest::option::of((any::<u16>(), any::<u16>())),
        prop_oneof![
            Just(Level::Default),
            Just(Level::Use),
            Just(Level::Require),
            Just(Level::Unique(None)),
            (1u16..=32767).prop_map(|n| Level::Unique(Some(n)))
        ],
    )
        .prop_map(|(protocol, mode, (s, d, _), with_ep, ports, level)| {
            let endpoints = (mode == ReqMode::Tunnel || with_ep).then(|| {
                (
                    Endpoint {
                        addr: s,
                        port: ports.map(|p| p.0),
                    },
                    Endpoint {
                        addr: d,
                        port: ports.map(|p| p.1),
                    },
                )
            });
            Request {
                protocol,
                mode,
                endpoints,
                level,
            }
        })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Discard),
        Just(Action::None),
        proptest::collection::vec(request(), 1..4).prop_map(Action::Ipsec),
    ]
}

fn policy_spec(delete: bool) -> impl Strategy<Value = PolicySpec> {
    addr_pair().prop_flat_map(move |(s, d, fam)| {
        let max = fam.max_prefix();
        (
            flags(fam),
            proptest::option::of(0..=max),
            proptest::option::of(0..=max),
            port_spec(),
            port_spec(),
            proptest::option::of(any::<u8>()),
            proptest::option::of((any::<u8>(), proptest::option::of(any::<u8>()))),
            prop_oneof![
                Just(Direction::In),
                Just(Direction::Out),
                Just(Direction::Fwd)
            ],
            proptest::option::of(priority()),
            if delete {
                proptest::option::of(action()).boxed()
            } else {
                action().prop_map(Some).boxed()
            },
        )
            .prop_map(
                move |(flags, sp, dp, sport, dport, proto, icmp, direction, priority, action)| {
                    let icmp_like = proto.is_some_and(is_icmp_like);
                    let (sport, dport) = if icmp_like || proto == Some(ipproto::GRE) {
                        (
                            if sport == PortSpec::Omitted {
                                sport
                            } else {
                                PortSpec::Any
                            },
                            if dport == PortSpec::Omitted {
                                dport
                            } else {
                                PortSpec::Any
                            },
                        )
                    } else {
                        (sport, dport)
                    };
                    PolicySpec {
                        flags,
                        src: RangeSpec {
                            addr: s,
                            prefix: sp,
                            port: sport,
                        },
                        dst: RangeSpec {
                            addr: d,
                            prefix: dp,
                            port: dport,
                        },
                        upper: UpperSpec {
                            protocol: proto,
                            icmp: if icmp_like {
                                icmp.map(|(t, c)| IcmpSpec {
                                    icmp_type: t,
                                    code: c,
                                })
                            } else {
                                None
                            },
                        },
                        policy: PolicyClause {
                            direction,
                            priority,
                            action,
                        },
                    }
                },
            )
    })
}

fn statement() -> impl Strategy<Value = Statement> {
    prop_oneof![
        sa_spec().prop_map(Statement::Add),
        sa_spec().prop_map(Statement::Update),
        getspi_spec().prop_map(Statement::GetSpi),
        sa_ref().prop_map(Statement::Get),
        sa_ref().prop_map(Statement::Delete),
        (addr_pair(), sa_protocol()).prop_flat_map(|((src, dst, fam), protocol)| flags(fam)
            .prop_map(move |flags| Statement::DeleteAll {
                flags,
                src,
                dst,
                protocol
            })),
        proptest::option::of(sa_protocol()).prop_map(Statement::Flush),
        proptest::option::of(sa_protocol()).prop_map(Statement::Dump),
        policy_spec(false).prop_map(Statement::SpdAdd),
        policy_spec(false).prop_map(Statement::SpdUpdate),
        policy_spec(true).prop_map(Statement::SpdDelete),
        Just(Statement::SpdFlush),
        Just(Statement::SpdDump),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn print_then_parse_is_identity(stmts in proptest::collection::vec(statement(), 1..5)) {
        let text = sadb::print_script(&stmts);
        let parsed = sadb::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let values: Vec<Statement> = parsed.into_iter().map(|l| l.value).collect();
        prop_assert_eq!(values, stmts, "{}", text);
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(s in ".{0,200}") {
        let _ = sadb::parse(&s);
    }

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = sadb::parse(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn parser_never_panics_on_mutated_scripts(
        stmt in statement(),
        cut in any::<prop::sample::Index>(),
        junk in "[ -~\\n]{0,8}",
    ) {
        let text = stmt.to_string();
        let at = cut.index(text.len() + 1);
        if text.is_char_boundary(at) {
            let mutated = format!("{}{}{}", &text[..at], junk, &text[at..]);
            let _ = sadb::parse(&mutated);
            let _ = sadb::parse(&text[..at]);
        }
    }
}
