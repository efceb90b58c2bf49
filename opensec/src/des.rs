//! DES and 3DES-EDE (FIPS 46-3, SP 800-67) in the table-driven form of the
//! classic fast implementations (SSLeay/OpenSSL `des_enc.c`): the S-boxes
//! and the P permutation merged into eight tables of 64 words, the initial
//! and final permutations done as five masked bit swaps each, and the key
//! schedule expanded once into the layout the round function reads.
//!
//! Written here because the RustCrypto `des` crate, which computes the
//! permutations bit by bit, ran at 0.38-0.44x `openssl speed`.
//!
//! # Layout
//!
//! A half block `R` (bit 1 of FIPS 46-3 is the most significant bit of the
//! `u32`) is kept rotated left by one bit through all the rounds. Then the
//! six-bit input of S-box j (E's bits, 4j-4 ..= 4j+1 of `R`, FIPS 46-3 E
//! table) sits at bit 24, 16, 8 or 0 of either `R` (even j) or `R` rotated
//! right by four (odd j), so each S-box input is a shift and a mask. The round
//! key K_i is stored as two words with each six-bit group already at its
//! S-box's position; the second word is pre-rotated so that one rotation of
//! `R xor k` serves all four odd S-boxes. `SP[j - 1][x]` is P(S_j(x)) placed
//! at its nibble and rotated the same way, so a round is two XORs, one
//! rotation, eight loads and the XORs of their results.
//!
//! Every table index is masked to six bits and every table has 64 entries,
//! so indexing cannot panic and the bounds checks compile away.
//!
//! As in OpenSSL, the table lookups depend on key and data, and each table
//! spans four 64-byte cache lines: not constant time against an attacker who
//! shares the CPU cache (the `des` crate's byte S-boxes fit one line each).
//! DES is here for the deployed IMS networks that still negotiate it.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// How far the halves are rotated left inside the rounds (see the module docs).
const ROT: u32 = 1;

/// Round keys of one DES pass: 16 rounds, two words each, grouped by the
/// two rounds that the unrolled loop does per step.
type Pass = [[u32; 4]; 8];

/// An expanded DES (`P = 1`) or 3DES-EDE (`P = 3`) key: the encryption and
/// decryption schedules of all passes, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct DesKey<const P: usize> {
    enc: [Pass; P],
    dec: [Pass; P],
}

/// DES (FIPS 46-3).
pub(crate) type Des = DesKey<1>;

/// 3DES-EDE with three keys (SP 800-67 keying option 1; option 2, K3 = K1,
/// is the same code).
pub(crate) type TdesEde3 = DesKey<3>;

impl DesKey<1> {
    /// Expands an 8-byte DES key (parity bits ignored).
    pub(crate) fn new(key: &[u8; 8]) -> Self {
        let mut k = u64::from_be_bytes(*key);
        let mut enc = schedule(k);
        let mut dec = reversed(&enc);
        k.zeroize();
        let key = DesKey {
            enc: [pack(&enc)],
            dec: [pack(&dec)],
        };
        enc.zeroize();
        dec.zeroize();
        key
    }
}

impl DesKey<3> {
    /// Expands a 24-byte 3DES key K1 || K2 || K3.
    ///
    /// Encryption is E_K3(D_K2(E_K1(x))) and decryption D_K1(E_K2(D_K3(x)))
    /// (SP 800-67); both are stored as 48 rounds in the order they run.
    pub(crate) fn new(key: &[u8; 24]) -> Self {
        let mut enc = [[0u32; 32]; 3];
        let mut dec = [[0u32; 32]; 3];
        for ((e, d), k) in enc.iter_mut().zip(dec.iter_mut()).zip(key.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(k);
            let mut k = u64::from_be_bytes(b);
            *e = schedule(k);
            *d = reversed(e);
            k.zeroize();
            b.zeroize();
        }
        let key = DesKey {
            enc: [pack(&enc[0]), pack(&dec[1]), pack(&enc[2])],
            dec: [pack(&dec[2]), pack(&enc[1]), pack(&dec[0])],
        };
        enc.zeroize();
        dec.zeroize();
        key
    }
}

impl<const P: usize> DesKey<P> {
    /// ECB encryption in place; a trailing partial block is left alone (the
    /// caller checks alignment).
    pub(crate) fn encrypt_ecb(&self, data: &mut [u8]) {
        for block in data.chunks_exact_mut(8) {
            let (l, r) = load(block);
            let (l, r) = crypt(&self.enc, l, r);
            store(block, l, r);
        }
    }

    /// ECB decryption in place; see [`encrypt_ecb`](Self::encrypt_ecb).
    pub(crate) fn decrypt_ecb(&self, data: &mut [u8]) {
        for block in data.chunks_exact_mut(8) {
            let (l, r) = load(block);
            let (l, r) = crypt(&self.dec, l, r);
            store(block, l, r);
        }
    }

    /// CBC encryption in place (FIPS 81 Appendix C: C_i = E_K(P_i xor C_{i-1}),
    /// C_0 = IV). The chaining value stays in two registers.
    pub(crate) fn encrypt_cbc(&self, iv: &[u8; 8], data: &mut [u8]) {
        let (mut cl, mut cr) = load(iv);
        for block in data.chunks_exact_mut(8) {
            let (l, r) = load(block);
            (cl, cr) = crypt(&self.enc, l ^ cl, r ^ cr);
            store(block, cl, cr);
        }
    }

    /// CBC decryption in place (FIPS 81 Appendix C: P_i = D_K(C_i) xor C_{i-1}).
    ///
    /// Blocks are independent here, so two are decrypted at a time: their
    /// rounds interleave and fill the pipeline that one block's serial
    /// rounds leave idle.
    pub(crate) fn decrypt_cbc(&self, iv: &[u8; 8], data: &mut [u8]) {
        let (mut cl, mut cr) = load(iv);
        let mut pairs = data.chunks_exact_mut(16);
        for pair in &mut pairs {
            let (a, b) = pair.split_at_mut(8);
            let (al, ar) = load(a);
            let (bl, br) = load(b);
            let ((pal, par), (pbl, pbr)) = crypt2(&self.dec, (al, ar), (bl, br));
            store(a, pal ^ cl, par ^ cr);
            store(b, pbl ^ al, pbr ^ ar);
            (cl, cr) = (bl, br);
        }
        if let Some(block) = pairs.into_remainder().chunks_exact_mut(8).next() {
            let (l, r) = load(block);
            let (pl, pr) = crypt(&self.dec, l, r);
            store(block, pl ^ cl, pr ^ cr);
        }
    }
}

impl<const P: usize> core::fmt::Debug for DesKey<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(if P == 1 {
            "Des(<redacted>)"
        } else {
            "TdesEde3(<redacted>)"
        })
    }
}

/// True if `key` is one of the 4 weak or 12 semi-weak DES keys (FIPS 74
/// §3.6) or the 48 possibly-weak ones, as listed with odd parity. The caller
/// normalises the parity bits first.
pub(crate) fn is_weak_key(key: &[u8; 8]) -> bool {
    WEAK_KEYS.iter().fold(false, |weak, w| weak | (w == key))
}

/// Loads a block as two big-endian halves (FIPS 46-3 bit 1 is the top bit of
/// the first byte). Callers pass exactly 8 bytes.
#[inline(always)]
fn load(block: &[u8]) -> (u32, u32) {
    let mut b = [0u8; 8];
    if let Some(block) = block.get(..8) {
        b.copy_from_slice(block);
    }
    let [a0, a1, a2, a3, b0, b1, b2, b3] = b;
    (
        u32::from_be_bytes([a0, a1, a2, a3]),
        u32::from_be_bytes([b0, b1, b2, b3]),
    )
}

#[inline(always)]
fn store(block: &mut [u8], l: u32, r: u32) {
    if let Some(block) = block.get_mut(..8) {
        let (a, b) = block.split_at_mut(4);
        a.copy_from_slice(&l.to_be_bytes());
        b.copy_from_slice(&r.to_be_bytes());
    }
}

/// One block through all passes of `ks`: IP once, 16 rounds per pass, FP
/// once. Between passes the halves are only swapped: FP followed by IP is the
/// identity, so 3DES stays in the permuted domain.
#[inline(always)]
fn crypt<const P: usize>(ks: &[Pass; P], l: u32, r: u32) -> (u32, u32) {
    let (mut l, mut r) = ip(l, r);
    l = l.rotate_left(ROT);
    r = r.rotate_left(ROT);
    for pass in ks {
        for &[k0, k1, k2, k3] in pass {
            l ^= f(r, k0, k1);
            r ^= f(l, k2, k3);
        }
        // The swap after round 16 (FIPS 46-3: the preoutput is R16 L16).
        (l, r) = (r, l);
    }
    fp(l.rotate_right(ROT), r.rotate_right(ROT))
}

/// [`crypt`] on two independent blocks, round by round.
#[inline(always)]
fn crypt2<const P: usize>(
    ks: &[Pass; P],
    a: (u32, u32),
    b: (u32, u32),
) -> ((u32, u32), (u32, u32)) {
    let (mut al, mut ar) = ip(a.0, a.1);
    let (mut bl, mut br) = ip(b.0, b.1);
    al = al.rotate_left(ROT);
    ar = ar.rotate_left(ROT);
    bl = bl.rotate_left(ROT);
    br = br.rotate_left(ROT);
    for pass in ks {
        for &[k0, k1, k2, k3] in pass {
            al ^= f(ar, k0, k1);
            bl ^= f(br, k0, k1);
            ar ^= f(al, k2, k3);
            br ^= f(bl, k2, k3);
        }
        (al, ar) = (ar, al);
        (bl, br) = (br, bl);
    }
    (
        fp(al.rotate_right(ROT), ar.rotate_right(ROT)),
        fp(bl.rotate_right(ROT), br.rotate_right(ROT)),
    )
}

/// The cipher function f(R, K) of FIPS 46-3 (E, key XOR, S-boxes, P), on a
/// rotated `r` and a round key in the layout of [`schedule`].
#[inline(always)]
fn f(r: u32, k0: u32, k1: u32) -> u32 {
    let u = r ^ k0;
    let t = (r ^ k1).rotate_right(4);
    let [s1, s2, s3, s4, s5, s6, s7, s8] = &SP;
    s2[(u >> 24) as usize & 0x3f]
        ^ s4[(u >> 16) as usize & 0x3f]
        ^ s6[(u >> 8) as usize & 0x3f]
        ^ s8[u as usize & 0x3f]
        ^ s1[(t >> 24) as usize & 0x3f]
        ^ s3[(t >> 16) as usize & 0x3f]
        ^ s5[(t >> 8) as usize & 0x3f]
        ^ s7[t as usize & 0x3f]
}

/// `PERM_OP`: swaps the bits of `b` selected by `m` with the bits of `a`
/// `n` places higher.
#[inline(always)]
fn perm_op(a: &mut u32, b: &mut u32, n: u32, m: u32) {
    let t = ((*a >> n) ^ *b) & m;
    *b ^= t;
    *a ^= t << n;
}

/// The initial permutation IP (FIPS 46-3) of the block (l, r): it transposes
/// the 8x8 bit matrix of the block, done as five swaps of bit groups.
#[inline(always)]
fn ip(mut l: u32, mut r: u32) -> (u32, u32) {
    perm_op(&mut l, &mut r, 4, 0x0f0f_0f0f);
    perm_op(&mut l, &mut r, 16, 0x0000_ffff);
    perm_op(&mut r, &mut l, 2, 0x3333_3333);
    perm_op(&mut r, &mut l, 8, 0x00ff_00ff);
    perm_op(&mut l, &mut r, 1, 0x5555_5555);
    (l, r)
}

/// IP^-1: the swaps of [`ip`] (each its own inverse) in reverse order.
#[inline(always)]
fn fp(mut l: u32, mut r: u32) -> (u32, u32) {
    perm_op(&mut l, &mut r, 1, 0x5555_5555);
    perm_op(&mut r, &mut l, 8, 0x00ff_00ff);
    perm_op(&mut r, &mut l, 2, 0x3333_3333);
    perm_op(&mut l, &mut r, 16, 0x0000_ffff);
    perm_op(&mut l, &mut r, 4, 0x0f0f_0f0f);
    (l, r)
}

/// Bit `i` (1-based, from the most significant) of the `width`-bit `x`.
const fn bit(x: u64, i: u8, width: u32) -> u64 {
    (x >> (width - i as u32)) & 1
}

/// Applies a FIPS 46-3 permutation table (output bit n = input bit table[n]).
const fn permute(x: u64, table: &[u8], width: u32) -> u64 {
    let mut out = 0;
    let mut n = 0;
    while n < table.len() {
        out = (out << 1) | bit(x, table[n], width);
        n += 1;
    }
    out
}

/// Bit position of the lowest bit of S-box `j`'s six-bit input in the rotated
/// `R` (module docs): 24, 16, 8, 0 for even j; for odd j the same four after
/// a right rotation by 4.
const fn window(j: usize) -> u32 {
    let w = (31 + 32 - 4 * j as u32 + ROT) % 32;
    if j % 2 == 0 { w } else { (w + 28) % 32 }
}

/// The 16 round keys (FIPS 46-3 key schedule: PC-1, left shifts, PC-2) of
/// `key`, two words per round in the layout [`f`] reads.
fn schedule(key: u64) -> [u32; 32] {
    let cd = permute(key, &PC1, 64);
    let (mut c, mut d) = (cd >> 28, cd & 0x0fff_ffff);
    let mut out = [0u32; 32];
    for (pair, &s) in out.chunks_exact_mut(2).zip(SHIFTS.iter()) {
        c = ((c << s) | (c >> (28 - s))) & 0x0fff_ffff;
        d = ((d << s) | (d >> (28 - s))) & 0x0fff_ffff;
        let k = permute((c << 28) | d, &PC2, 56);
        let (mut k0, mut k1) = (0u32, 0u32);
        for j in 1..=8 {
            let group = ((k >> (48 - 6 * j)) & 0x3f) as u32;
            if j % 2 == 0 {
                k0 |= group << window(j);
            } else {
                k1 |= group << window(j);
            }
        }
        // Undone by the rotation in `f`.
        pair.copy_from_slice(&[k0, k1.rotate_left(4)]);
    }
    c.zeroize();
    d.zeroize();
    out
}

/// The round keys in the order decryption uses them (K16 first).
fn reversed(ks: &[u32; 32]) -> [u32; 32] {
    let mut out = [0u32; 32];
    for (o, k) in out.chunks_exact_mut(2).zip(ks.chunks_exact(2).rev()) {
        o.copy_from_slice(k);
    }
    out
}

fn pack(ks: &[u32; 32]) -> Pass {
    let mut pass = [[0u32; 4]; 8];
    for (p, k) in pass.iter_mut().zip(ks.chunks_exact(4)) {
        p.copy_from_slice(k);
    }
    pass
}

/// S_j followed by P, at S_j's nibble and rotated by [`ROT`]: `SP[j - 1][x]`
/// for the six-bit S-box input `x` (first bit of E's group in bit 5).
static SP: [[u32; 64]; 8] = sp_tables();

const fn sp_tables() -> [[u32; 64]; 8] {
    let mut sp = [[0u32; 64]; 8];
    let mut j = 0;
    while j < 8 {
        let mut x = 0;
        while x < 64 {
            // FIPS 46-3: row from bits 1 and 6, column from bits 2-5.
            let row = ((x >> 4) & 2) | (x & 1);
            let col = (x >> 1) & 0xf;
            let s = S[j][row * 16 + col] as u64;
            let p = permute(s << (28 - 4 * j), &P, 32) as u32;
            sp[j][x] = p.rotate_left(ROT);
            x += 1;
        }
        j += 1;
    }
    sp
}

/// FIPS 46-3 S-boxes S1..S8, each as four rows of 16.
const S: [[u8; 64]; 8] = [
    [
        14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12,
        11, 9, 5, 3, 8, 4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9,
        1, 7, 5, 11, 3, 14, 10, 0, 6, 13,
    ],
    [
        15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1,
        10, 6, 9, 11, 5, 0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15,
        4, 2, 11, 6, 7, 12, 0, 5, 14, 9,
    ],
    [
        10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5,
        14, 12, 11, 15, 1, 13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6,
        9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12,
    ],
    [
        7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2,
        12, 1, 10, 14, 9, 10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1,
        13, 8, 9, 4, 5, 11, 12, 7, 2, 14,
    ],
    [
        2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15,
        10, 3, 9, 8, 6, 4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14,
        2, 13, 6, 15, 0, 9, 10, 4, 5, 3,
    ],
    [
        12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13,
        14, 0, 11, 3, 8, 9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5,
        15, 10, 11, 14, 1, 7, 6, 0, 8, 13,
    ],
    [
        4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5,
        12, 2, 15, 8, 6, 1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4,
        10, 7, 9, 5, 0, 15, 14, 2, 3, 12,
    ],
    [
        13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6,
        11, 0, 14, 9, 2, 7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10,
        8, 13, 15, 12, 9, 0, 3, 5, 6, 11,
    ],
];

/// FIPS 46-3 permutation P.
const P: [u8; 32] = [
    16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9, 19,
    13, 30, 6, 22, 11, 4, 25,
];

/// FIPS 46-3 permuted choice 1 (64 key bits to C0 || D0).
const PC1: [u8; 56] = [
    57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60,
    52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29,
    21, 13, 5, 28, 20, 12, 4,
];

/// FIPS 46-3 permuted choice 2 (C_i || D_i to K_i).
const PC2: [u8; 48] = [
    14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2, 41, 52,
    31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];

/// FIPS 46-3 left shifts of C and D before each round.
const SHIFTS: [u32; 16] = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];

/// The 4 weak and 12 semi-weak keys (FIPS 74 §3.6), then the 48
/// possibly-weak keys (whose schedule has only four distinct round keys),
/// with odd parity; the same list as the `des` crate's `weak_key_test`.
const WEAK_KEYS: [[u8; 8]; 64] = [
    [0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01],
    [0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe],
    [0xe0, 0xe0, 0xe0, 0xe0, 0xf1, 0xf1, 0xf1, 0xf1],
    [0x1f, 0x1f, 0x1f, 0x1f, 0x0e, 0x0e, 0x0e, 0x0e],
    [0x01, 0x1f, 0x01, 0x1f, 0x01, 0x0e, 0x01, 0x0e],
    [0x1f, 0x01, 0x1f, 0x01, 0x0e, 0x01, 0x0e, 0x01],
    [0x01, 0xe0, 0x01, 0xe0, 0x01, 0xf1, 0x01, 0xf1],
    [0xe0, 0x01, 0xe0, 0x01, 0xf1, 0x01, 0xf1, 0x01],
    [0x01, 0xfe, 0x01, 0xfe, 0x01, 0xfe, 0x01, 0xfe],
    [0xfe, 0x01, 0xfe, 0x01, 0xfe, 0x01, 0xfe, 0x01],
    [0x1f, 0xe0, 0x1f, 0xe0, 0x0e, 0xf1, 0x0e, 0xf1],
    [0xe0, 0x1f, 0xe0, 0x1f, 0xf1, 0x0e, 0xf1, 0x0e],
    [0x1f, 0xfe, 0x1f, 0xfe, 0x0e, 0xfe, 0x0e, 0xfe],
    [0xfe, 0x1f, 0xfe, 0x1f, 0xfe, 0x0e, 0xfe, 0x0e],
    [0xe0, 0xfe, 0xe0, 0xfe, 0xf1, 0xfe, 0xf1, 0xfe],
    [0xfe, 0xe0, 0xfe, 0xe0, 0xfe, 0xf1, 0xfe, 0xf1],
    [0x01, 0x01, 0x1f, 0x1f, 0x01, 0x01, 0x0e, 0x0e],
    [0x1f, 0x1f, 0x01, 0x01, 0x0e, 0x0e, 0x01, 0x01],
    [0xe0, 0xe0, 0x1f, 0x1f, 0xf1, 0xf1, 0x0e, 0x0e],
    [0x01, 0x01, 0xe0, 0xe0, 0x01, 0x01, 0xf1, 0xf1],
    [0x1f, 0x1f, 0xe0, 0xe0, 0x0e, 0x0e, 0xf1, 0xf1],
    [0xe0, 0xe0, 0xfe, 0xfe, 0xf1, 0xf1, 0xfe, 0xfe],
    [0x01, 0x01, 0xfe, 0xfe, 0x01, 0x01, 0xfe, 0xfe],
    [0x1f, 0x1f, 0xfe, 0xfe, 0x0e, 0x0e, 0xfe, 0xfe],
    [0xe0, 0xfe, 0x01, 0x1f, 0xf1, 0xfe, 0x01, 0x0e],
    [0x01, 0x1f, 0x1f, 0x01, 0x01, 0x0e, 0x0e, 0x01],
    [0x1f, 0xe0, 0x01, 0xfe, 0x0e, 0xf1, 0x01, 0xfe],
    [0xe0, 0xfe, 0x1f, 0x01, 0xf1, 0xfe, 0x0e, 0x01],
    [0x01, 0x1f, 0xe0, 0xfe, 0x01, 0x0e, 0xf1, 0xfe],
    [0x1f, 0xe0, 0xe0, 0x1f, 0x0e, 0xf1, 0xf1, 0x0e],
    [0xe0, 0xfe, 0xfe, 0xe0, 0xf1, 0xfe, 0xfe, 0xf1],
    [0x01, 0x1f, 0xfe, 0xe0, 0x01, 0x0e, 0xfe, 0xf1],
    [0x1f, 0xe0, 0xfe, 0x01, 0x0e, 0xf1, 0xfe, 0x01],
    [0xfe, 0x01, 0x01, 0xfe, 0xfe, 0x01, 0x01, 0xfe],
    [0x01, 0xe0, 0x1f, 0xfe, 0x01, 0xf1, 0x0e, 0xfe],
    [0x1f, 0xfe, 0x01, 0xe0, 0x0e, 0xfe, 0x01, 0xf1],
    [0xfe, 0x01, 0x1f, 0xe0, 0xfe, 0x01, 0x0e, 0xf1],
    [0xfe, 0x01, 0xe0, 0x1f, 0xfe, 0x01, 0xf1, 0x0e],
    [0x1f, 0xfe, 0xe0, 0x01, 0x0e, 0xfe, 0xf1, 0x01],
    [0xfe, 0x1f, 0x01, 0xe0, 0xfe, 0x0e, 0x01, 0xf1],
    [0x01, 0xe0, 0xe0, 0x01, 0x01, 0xf1, 0xf1, 0x01],
    [0x1f, 0xfe, 0xfe, 0x1f, 0x0e, 0xfe, 0xfe, 0x0e],
    [0xfe, 0x1f, 0xe0, 0x01, 0xfe, 0x0e, 0xf1, 0x01],
    [0x01, 0xe0, 0xfe, 0x1f, 0x01, 0xf1, 0xfe, 0x0e],
    [0xe0, 0x01, 0x01, 0xe0, 0xf1, 0x01, 0x01, 0xf1],
    [0xfe, 0x1f, 0x1f, 0xfe, 0xfe, 0x0e, 0x0e, 0xfe],
    [0x01, 0xfe, 0x1f, 0xe0, 0x01, 0xfe, 0x0e, 0xf1],
    [0xe0, 0x01, 0x1f, 0xfe, 0xf1, 0x01, 0x0e, 0xfe],
    [0xfe, 0xe0, 0x01, 0x1f, 0xfe, 0xf1, 0x01, 0x0e],
    [0x01, 0xfe, 0xe0, 0x1f, 0x01, 0xfe, 0xf1, 0x0e],
    [0xe0, 0x01, 0xfe, 0x1f, 0xf1, 0x01, 0xfe, 0x0e],
    [0xfe, 0xe0, 0x1f, 0x01, 0xfe, 0xf1, 0x0e, 0x01],
    [0x01, 0xfe, 0xfe, 0x01, 0x01, 0xfe, 0xfe, 0x01],
    [0xe0, 0x1f, 0x01, 0xfe, 0xf1, 0x0e, 0x01, 0xfe],
    [0xfe, 0xe0, 0xe0, 0xfe, 0xfe, 0xf1, 0xf1, 0xfe],
    [0x1f, 0x01, 0x01, 0x1f, 0x0e, 0x01, 0x01, 0x0e],
    [0xe0, 0x1f, 0x1f, 0xe0, 0xf1, 0x0e, 0x0e, 0xf1],
    [0xfe, 0xfe, 0x01, 0x01, 0xfe, 0xfe, 0x01, 0x01],
    [0x1f, 0x01, 0xe0, 0xfe, 0x0e, 0x01, 0xf1, 0xfe],
    [0xe0, 0x1f, 0xfe, 0x01, 0xf1, 0x0e, 0xfe, 0x01],
    [0xfe, 0xfe, 0x1f, 0x1f, 0xfe, 0xfe, 0x0e, 0x0e],
    [0x1f, 0x01, 0xfe, 0xe0, 0x0e, 0x01, 0xfe, 0xf1],
    [0xe0, 0xe0, 0x01, 0x01, 0xf1, 0xf1, 0x01, 0x01],
    [0xfe, 0xfe, 0xe0, 0xe0, 0xfe, 0xfe, 0xf1, 0xf1],
];

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 46-3 IP, bit by bit.
    const IP: [u8; 64] = [
        58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14,
        6, 64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11,
        3, 61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
    ];

    /// IP is a bit permutation, so agreeing on every single-bit input proves
    /// the bit-swap form equal to the table; FP must undo it.
    #[test]
    fn ip_matches_table_and_fp_inverts() {
        for i in 0..64 {
            let x = 1u64 << i;
            let (l, r) = ip((x >> 32) as u32, x as u32);
            assert_eq!(
                (u64::from(l) << 32) | u64::from(r),
                permute(x, &IP, 64),
                "bit {i}"
            );
            assert_eq!(fp(l, r), ((x >> 32) as u32, x as u32));
        }
    }

    #[test]
    fn windows_are_byte_aligned() {
        let w: Vec<u32> = (1..=8).map(window).collect();
        assert_eq!(w, [24, 24, 16, 16, 8, 8, 0, 0]);
    }

    // FIPS 81 Appendix B (ECB).
    #[test]
    fn known_answers() {
        let k = Des::new(&0x0123_4567_89ab_cdef_u64.to_be_bytes());
        let mut d = *b"Now is the time for all ";
        k.encrypt_ecb(&mut d);
        let want = [
            0x3f, 0xa4, 0x0e, 0x8a, 0x98, 0x4d, 0x48, 0x15, 0x6a, 0x27, 0x17, 0x87, 0xab, 0x88,
            0x83, 0xf9, 0x89, 0x3d, 0x51, 0xec, 0x4b, 0x56, 0x3b, 0x53,
        ];
        assert_eq!(d, want);
        k.decrypt_ecb(&mut d);
        assert_eq!(&d, b"Now is the time for all ");
        // 3DES with K1 = K2 = K3 is single DES.
        let mut k3 = [0u8; 24];
        for c in k3.chunks_exact_mut(8) {
            c.copy_from_slice(&0x0123_4567_89ab_cdef_u64.to_be_bytes());
        }
        let t = TdesEde3::new(&k3);
        t.encrypt_ecb(&mut d);
        assert_eq!(d, want);
    }

    #[test]
    fn debug_redacts() {
        let k = Des::new(&[0x42; 8]);
        assert_eq!(format!("{k:?}"), "Des(<redacted>)");
    }
}
