//! `sadb`: the Security Association and Security Policy Databases (RFC 4301)
//! and the setkey language.
//!
//! This crate will hold the SAD (lookup by destination, protocol and SPI),
//! the SPD (ordered policies, selectors, request lists), lifetimes and
//! counters, and a parser and printer for the ipsec-tools setkey language.
//! It does no IO; time is passed in.
