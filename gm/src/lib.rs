//! `gm`: a thin SIP layer for the IMS Gm interface.
//!
//! This crate will hold the SIP message codec, transactions, registration
//! with digest/AKA and security agreement (RFC 3329), MESSAGE, SMS over IP
//! and presence, as sans-IO state machines routed through ESP and SigComp.
