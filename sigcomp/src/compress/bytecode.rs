//! The decompressor bytecode our compressor's messages run on.
//!
//! Source: `sigcomp/bytecode/deflate-dict.asm` (RFC 4464 §3 assembly),
//! assembled by the `sigcomp-asm` crate, whose test `bytecode` assembles
//! the source and checks it gives exactly [`CODE`] and the addresses
//! below, so the two cannot drift apart.

use crate::state::{State, StateId};

/// UDVM address the bytecode is uploaded to (RFC 3320 §7.3: destination 1).
pub const ORIGIN: u16 = 128;
/// Where a message that references the bytecode state starts
/// (`state_entry`: it skips the creation of the bytecode state).
pub const STATE_ENTRY: u16 = 136;
/// First byte of the circular buffer (`code_end`): the history starts here.
pub const BUFFER_START: u16 = 422;
/// The decoding loop's labels (`next_symbol`, `literal`, `flush`,
/// `copy_match`, `finish`, `fail`): the UDVM runs the loop natively when
/// the memory holds exactly [`CODE`] (see `udvm/native.rs`) and needs to
/// know where it enters, where it leaves, and where each instruction that
/// can fail lies.
pub const NEXT_SYMBOL: u16 = 211;
/// `literal`: the COPY-LITERAL of a literal symbol.
pub const LITERAL: u16 = 246;
/// `flush`: where symbols 286 and 287 go.
pub const FLUSH: u16 = 260;
/// `copy_match`: the COPY-OFFSET of a match.
pub const COPY_MATCH: u16 = 360;
/// `finish`: where the end of the input (or symbol 256) goes.
pub const FINISH: u16 = 367;
/// `fail`: the DECOMPRESSION-FAILURE.
pub const FAIL: u16 = 421;
/// Minimum access length of every state the bytecode creates.
pub const MINIMUM_ACCESS_LENGTH: u16 = 6;
/// Retention priority of the bytecode state: the highest a compressor may
/// ask for (RFC 3320 §6.2 step 5), so message states are freed first.
pub const BYTECODE_PRIORITY: u16 = 65534;

/// The assembled bytecode, `ORIGIN..BUFFER_START` (the bytecode state
/// value; the trailing zero bytes need not be uploaded, see [`upload`]).
pub static CODE: [u8; 294] = [
    32, 161, 38, 135, 160, 136, 6, 254, 15, 134, 3, 161, 166, 64, 5, 28, 3, 32, 161, 22, 23, 80,
    143, 24, 6, 6, 7, 16, 143, 28, 1, 53, 161, 8, 28, 90, 160, 82, 161, 3, 14, 50, 160, 82, 14, 36,
    161, 166, 23, 81, 0, 160, 245, 29, 7, 28, 10, 160, 72, 160, 238, 31, 160, 72, 6, 103, 104, 82,
    0, 6, 18, 104, 7, 17, 136, 22, 229, 14, 38, 82, 14, 54, 82, 30, 40, 160, 156, 4, 7, 0, 23, 136,
    1, 48, 160, 191, 0, 0, 160, 192, 160, 199, 161, 24, 1, 161, 144, 161, 255, 160, 144, 23, 84,
    136, 7, 160, 128, 14, 19, 41, 1, 18, 22, 159, 217, 23, 84, 161, 30, 21, 7, 7, 29, 16, 44, 160,
    161, 34, 91, 86, 14, 54, 82, 22, 159, 196, 7, 20, 161, 1, 14, 42, 84, 23, 84, 8, 29, 6, 6, 10,
    21, 4, 6, 21, 4, 9, 20, 4, 7, 20, 1, 4, 21, 84, 29, 84, 46, 160, 119, 6, 21, 87, 6, 21, 3, 14,
    44, 85, 30, 40, 160, 105, 1, 5, 0, 31, 0, 14, 42, 84, 23, 84, 4, 29, 6, 6, 10, 21, 2, 6, 21, 2,
    9, 20, 2, 7, 20, 1, 4, 21, 84, 29, 84, 46, 160, 72, 6, 21, 87, 6, 21, 1, 20, 85, 86, 18, 22,
    159, 103, 14, 44, 82, 7, 22, 91, 23, 82, 91, 6, 13, 13, 6, 22, 64, 7, 22, 161, 166, 34, 91, 86,
    23, 80, 0, 32, 24, 6, 14, 48, 80, 1, 24, 160, 127, 2, 24, 138, 35, 48, 89, 86, 83, 0, 6, 80,
    35, 0, 89, 0, 0, 0, 0, 0, 0,
];

/// The bytes to upload: [`CODE`] without its trailing zeros (RFC 4464
/// §3.3), which the zeroed UDVM memory supplies.
pub fn upload() -> &'static [u8] {
    let end = CODE.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    CODE.get(..end).unwrap_or(&[])
}

/// The bytecode state as the first message creates it: an endpoint of
/// ours adds it as a locally available state (RFC 3320 §3.3.3) and
/// announces its partial identifier, so a peer compressor of ours never
/// uploads the code.
pub fn state() -> State {
    State::new(ORIGIN, STATE_ENTRY, MINIMUM_ACCESS_LENGTH, CODE.to_vec())
}

/// The identifier of [`state`].
pub fn state_id() -> StateId {
    StateId::compute(ORIGIN, STATE_ENTRY, MINIMUM_ACCESS_LENGTH, &CODE)
}

/// The well-known uncompressed bytecode of RFC 4896 §11 (uploaded to
/// [`ORIGIN`]): it outputs the rest of the message as is and ends with no
/// state and no feedback. The literal form ([`Kind::Literal`]) of a
/// message with nothing to announce. Source, as RFC 4896 §11 prints it:
/// `sigcomp/bytecode/uncompressed.asm`.
///
/// [`Kind::Literal`]: super::Kind::Literal
pub static UNCOMPRESSED: [u8; 10] = [0x1c, 0x01, 0x86, 0x09, 0x22, 0x86, 0x01, 0x16, 0xf9, 0x23];

/// The literal form of a message that also announces (returned SigComp
/// parameters, RFC 3320 §9.4.9) and requests feedback so the announcement
/// can be acknowledged: [`UNCOMPRESSED`]'s loop behind a 6-byte input
/// header (`fb_loc`, `rp_loc`, `n`) and an `n`-byte blob copied to
/// [`UNCOMPRESSED_BLOB`] (uploaded to [`ORIGIN`]; trailing zeros dropped).
/// Source: `sigcomp/bytecode/uncompressed-announce.asm`.
pub static UNCOMPRESSED_ANNOUNCING: [u8; 21] = [
    0x1c, 0x06, 0x20, 0x1a, 0x1c, 0x52, 0xa0, 0x48, 0x16, 0x1c, 0x01, 0x00, 0x09, 0x22, 0x00, 0x01,
    0x16, 0xf9, 0x23, 0x50, 0x51,
];

/// Where [`UNCOMPRESSED_ANNOUNCING`] copies its blob (`blob` in the source).
pub const UNCOMPRESSED_BLOB: u16 = 72;

/// The largest blob [`UNCOMPRESSED_ANNOUNCING`] takes (it ends below the
/// code).
pub const UNCOMPRESSED_BLOB_MAX: usize = 56;
