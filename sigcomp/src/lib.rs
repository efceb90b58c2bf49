//! `sigcomp`: Signaling Compression (RFC 3320 with the RFC 4896 corrections).
//!
//! The UDVM, the state handler and compartments, feedback and NACK
//! (RFC 4077), the static dictionaries (RFC 3485, RFC 5112), UDP and TCP
//! framing, and an assembler and disassembler for UDVM code (RFC 4464).
//! It does no IO.

pub mod asm;
