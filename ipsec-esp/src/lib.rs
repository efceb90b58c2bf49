//! `ipsec-esp`: sans-IO ESP (RFC 4303) and AH (RFC 4302) packet transforms.
//!
//! This crate will hold the transport- and tunnel-mode encapsulation and
//! decapsulation of IPv4/IPv6 packets in place on caller buffers, the
//! anti-replay window (RFC 4303 §3.4.3), extended sequence numbers and ESP in
//! UDP (RFC 3948). It does no IO.
