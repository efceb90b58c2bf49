//! UDVM memory: bounds-checked bytes and words, and the byte copying
//! rules of the circular buffer (RFC 3320 §8.4, RFC 4896 §4), a run of
//! contiguous bytes at a time.

use super::*;

impl<'a, S: StateStore + ?Sized> Run<'a, S> {
    // ----- memory -------------------------------------------------------

    #[inline(always)]
    pub(super) fn byte(&self, a: u16) -> R<u8> {
        self.mem
            .get(usize::from(a))
            .copied()
            .ok_or(Reason::Segfault)
    }

    #[inline(always)]
    pub(super) fn set_byte(&mut self, a: u16, v: u8) -> R<()> {
        *self.mem.get_mut(usize::from(a)).ok_or(Reason::Segfault)? = v;
        Ok(())
    }

    #[inline(always)]
    pub(super) fn word(&self, a: u16) -> R<u16> {
        let i = usize::from(a);
        if let Some(&[hi, lo]) = self.mem.get(i..i + 2) {
            return Ok(u16::from_be_bytes([hi, lo]));
        }
        // The last byte of a 64K memory: the word wraps to address 0.
        Ok(u16::from_be_bytes([
            self.byte(a)?,
            self.byte(a.wrapping_add(1))?,
        ]))
    }

    #[inline(always)]
    pub(super) fn set_word(&mut self, a: u16, v: u16) -> R<()> {
        let [hi, lo] = v.to_be_bytes();
        let i = usize::from(a);
        if let Some([h, l]) = self.mem.get_mut(i..i + 2) {
            (*h, *l) = (hi, lo);
            return Ok(());
        }
        // Check both before writing either.
        self.byte(a.wrapping_add(1))?;
        self.set_byte(a, hi)?;
        self.set_byte(a.wrapping_add(1), lo)
    }

    /// byte_copy_left and byte_copy_right as they are when the
    /// instruction starts (RFC 3320 §8.4).
    #[inline(always)]
    pub(super) fn bounds(&self) -> R<(u16, u16)> {
        match self
            .mem
            .get(usize::from(BYTE_COPY_LEFT)..usize::from(BYTE_COPY_RIGHT) + 2)
        {
            Some(&[a, b, c, d]) => Ok((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))),
            _ => Err(Reason::Segfault),
        }
    }

    // ----- byte copying (RFC 3320 §8.4, RFC 4896 §4) ---------------------

    /// Reads `len` bytes starting at `from` under the byte copying rules and
    /// gives each to `f`.
    pub(super) fn read_bytes(&self, from: u16, len: u16, mut f: impl FnMut(u8)) -> R<()> {
        let (bcl, bcr) = self.bounds()?;
        let mut a = from;
        for _ in 0..len {
            f(self.byte(a)?);
            a = next(a, bcl, bcr);
        }
        Ok(())
    }

    /// Copies `len` bytes from `src` to `dst` under the byte copying rules,
    /// with the result of copying one byte at a time (later bytes may be
    /// ones this copy wrote); returns the address after the last written.
    #[inline(always)]
    pub(super) fn copy(&mut self, src: u16, len: u16, dst: u16, (bcl, bcr): (u16, u16)) -> R<u16> {
        let (mut s, mut d) = (src, dst);
        let mut rem = usize::from(len);
        // A short copy that wraps at neither byte_copy_right nor the end of
        // memory: one byte at a time is the rule itself, and cheaper than
        // a call to memmove.
        if rem <= 16 && rem > 0 && rem <= run_len(s, bcr) && rem <= run_len(d, bcr) {
            let (su, du) = (usize::from(s), usize::from(d));
            if su + rem <= self.mem.len() && du + rem <= self.mem.len() {
                for i in 0..rem {
                    if let Some(&b) = self.mem.get(su + i) {
                        if let Some(x) = self.mem.get_mut(du + i) {
                            *x = b;
                        }
                    }
                }
                return Ok(next((du + rem - 1) as u16, bcl, bcr));
            }
        }
        while rem > 0 {
            let mut n = rem.min(run_len(s, bcr)).min(run_len(d, bcr));
            let (su, du) = (usize::from(s), usize::from(d));
            // A destination just ahead of the source repeats the bytes between
            // them: copy at most that distance at once.
            if du > su && du - su < n {
                n = du - su;
            }
            if su + n > self.mem.len() || du + n > self.mem.len() {
                return Err(Reason::Segfault);
            }
            self.mem.copy_within(su..su + n, du);
            s = next((su + n - 1) as u16, bcl, bcr);
            d = next((du + n - 1) as u16, bcl, bcr);
            rem -= n;
        }
        Ok(d)
    }

    /// Writes `src` at `dst` under the byte copying rules, a run at a time.
    pub(super) fn write_slice(&mut self, dst: u16, src: &[u8], (bcl, bcr): (u16, u16)) -> R<u16> {
        let mut d = dst;
        let mut rest = src;
        while !rest.is_empty() {
            let n = rest.len().min(run_len(d, bcr));
            let du = usize::from(d);
            let (now, later) = rest.split_at(n);
            self.mem
                .get_mut(du..du + n)
                .ok_or(Reason::Segfault)?
                .copy_from_slice(now);
            d = next((du + n - 1) as u16, bcl, bcr);
            rest = later;
        }
        Ok(d)
    }

    /// Writes bytes from `src` at `dst` under the byte copying rules.
    pub(super) fn write_bytes(&mut self, dst: u16, src: impl IntoIterator<Item = u8>) -> R<u16> {
        let (bcl, bcr) = self.bounds()?;
        let mut d = dst;
        for b in src {
            self.set_byte(d, b)?;
            d = next(d, bcl, bcr);
        }
        Ok(d)
    }
}

/// Appends `len` bytes of `mem` starting at `from`, under the byte copying
/// rules, to `out`, a run at a time.
pub(super) fn read_into(
    mem: &[u8],
    from: u16,
    len: u16,
    bounds: (u16, u16),
    out: &mut Vec<u8>,
) -> R<()> {
    for_runs(mem, from, len, bounds, |run| out.extend_from_slice(run))
}

/// Gives the `len` bytes of `mem` from `from`, under the byte copying
/// rules, to `f` as contiguous runs.
pub(super) fn for_runs(
    mem: &[u8],
    from: u16,
    len: u16,
    (bcl, bcr): (u16, u16),
    mut f: impl FnMut(&[u8]),
) -> R<()> {
    let mut a = from;
    let mut rem = usize::from(len);
    while rem > 0 {
        let n = rem.min(run_len(a, bcr));
        let start = usize::from(a);
        f(mem.get(start..start + n).ok_or(Reason::Segfault)?);
        a = next((start + n - 1) as u16, bcl, bcr);
        rem -= n;
    }
    Ok(())
}

/// How many bytes from `a` on are contiguous under the byte copying rules:
/// up to byte_copy_right, or to the end of the 64K address space.
#[inline]
pub(super) fn run_len(a: u16, bcr: u16) -> usize {
    if a < bcr {
        usize::from(bcr - a)
    } else {
        65536 - usize::from(a)
    }
}

/// The address after `a` under the byte copying rules (RFC 3320 §8.4).
#[inline]
pub(super) fn next(a: u16, bcl: u16, bcr: u16) -> u16 {
    let k = a.wrapping_add(1);
    if k == bcr { bcl } else { k }
}

/// COPY-OFFSET: counts `offset` addresses back from `dest`, jumping from
/// byte_copy_left to byte_copy_right - 1 (RFC 3320 §9.2.6, RFC 4896 §4),
/// in constant time.
pub(super) fn offset_back(dest: u16, offset: u16, bcl: u16, bcr: u16) -> u16 {
    // Steps until byte_copy_left is reached going left.
    let to_left = dest.wrapping_sub(bcl);
    if offset <= to_left {
        return dest.wrapping_sub(offset);
    }
    // At bcl with r steps left; the cycle is bcl ..= bcr - 1.
    let r = u32::from(offset - to_left);
    let len = u32::from(bcr.wrapping_sub(1).wrapping_sub(bcl)) + 1;
    let j = (len - r % len) % len;
    bcl.wrapping_add(j as u16)
}
