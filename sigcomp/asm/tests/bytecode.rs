//! The bytecode the runtime crate embeds is what its source assembles to:
//! `sigcomp::compress::bytecode` carries the assembled bytes and their
//! addresses as constants, so that the runtime needs no assembler (nor
//! the sources), and this test keeps them equal to `sigcomp/bytecode/*.asm`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use sigcomp::compress::bytecode::*;
use sigcomp_asm::assemble_program;

/// The source of [`CODE`].
const SOURCE: &str = include_str!("../../bytecode/deflate-dict.asm");
/// The source of [`UNCOMPRESSED`], as RFC 4896 §11 prints it.
const UNCOMPRESSED_SOURCE: &str = include_str!("../../bytecode/uncompressed.asm");
/// The source of [`UNCOMPRESSED_ANNOUNCING`].
const UNCOMPRESSED_ANNOUNCING_SOURCE: &str =
    include_str!("../../bytecode/uncompressed-announce.asm");

#[test]
fn source_assembles_to_the_embedded_code() {
    let p = assemble_program(SOURCE).unwrap();
    assert_eq!(p.origin, ORIGIN);
    assert_eq!(p.code, CODE.to_vec());
    assert_eq!(p.symbols["state_entry"], i64::from(STATE_ENTRY));
    assert_eq!(p.symbols["code_end"], i64::from(BUFFER_START));
    for (label, address) in [
        ("next_symbol", NEXT_SYMBOL),
        ("literal", LITERAL),
        ("flush", FLUSH),
        ("copy_match", COPY_MATCH),
        ("finish", FINISH),
        ("fail", FAIL),
    ] {
        assert_eq!(p.symbols[label], i64::from(address), "{label}");
    }
    assert_eq!(p.upload_code(), upload());
    assert_eq!(*state().id(), state_id());
}

#[test]
fn literal_sources_assemble_to_the_embedded_code() {
    let p = assemble_program(UNCOMPRESSED_SOURCE).unwrap();
    assert_eq!((p.origin, p.upload_code()), (ORIGIN, &UNCOMPRESSED[..]));
    // RFC 4896 §11 prints the message that uploads it.
    let mut msg = vec![0xf8, 0x00, 0xa1];
    msg.extend_from_slice(&UNCOMPRESSED);
    assert_eq!(
        msg,
        [
            0xf8, 0x00, 0xa1, 0x1c, 0x01, 0x86, 0x09, 0x22, 0x86, 0x01, 0x16, 0xf9, 0x23
        ]
    );
    let p = assemble_program(UNCOMPRESSED_ANNOUNCING_SOURCE).unwrap();
    assert_eq!(
        (p.origin, p.upload_code()),
        (ORIGIN, &UNCOMPRESSED_ANNOUNCING[..])
    );
    assert_eq!(p.symbols["blob"], i64::from(UNCOMPRESSED_BLOB));
    assert_eq!(
        usize::from(ORIGIN - UNCOMPRESSED_BLOB),
        UNCOMPRESSED_BLOB_MAX
    );
}
