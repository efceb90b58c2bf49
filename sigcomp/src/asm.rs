//! Assembler and disassembler for the UDVM assembly language of RFC 4464 §3.
