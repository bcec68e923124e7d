//! Labels and metadata: length-prefixed UTF-8 strings.
//!
//! `label := u8 len, len bytes` (len >= 1);
//! `meta := u8 key_len, key, u16 value_len, value` with keys in strictly
//! increasing byte order, so lookups can stop early and duplicates are impossible.

use crate::error::Error;
use crate::layout::le;

/// Walks the string section once, checking every rule; returns the offset
/// where the metadata entries start.
pub(crate) fn validate(sec: &[u8], n_labels: u16, n_meta: u16) -> Result<usize, Error> {
    let mut cur = 0usize;
    for i in 0..n_labels {
        let (s, next) = read_str8(sec, cur).ok_or(Error::BadString {
            index: i,
            reason: "label runs past the string section",
        })?;
        if s.is_empty() {
            return Err(Error::BadString {
                index: i,
                reason: "empty label",
            });
        }
        core::str::from_utf8(s).map_err(|_| Error::BadString {
            index: i,
            reason: "label is not UTF-8",
        })?;
        cur = next;
    }
    let meta_start = cur;
    let mut prev: Option<&[u8]> = None;
    for i in 0..n_meta {
        let (k, v, next) = read_meta(sec, cur).ok_or(Error::BadString {
            index: i,
            reason: "metadata entry runs past the string section",
        })?;
        check_key(k).map_err(|reason| Error::BadString { index: i, reason })?;
        if prev.is_some_and(|p| p >= k) {
            return Err(Error::BadString {
                index: i,
                reason: "metadata keys must be unique and sorted",
            });
        }
        core::str::from_utf8(v).map_err(|_| Error::BadString {
            index: i,
            reason: "metadata value is not UTF-8",
        })?;
        prev = Some(k);
        cur = next;
    }
    if cur != sec.len() {
        return Err(Error::BadString {
            index: n_labels.saturating_add(n_meta),
            reason: "bytes left over after the last metadata entry",
        });
    }
    Ok(meta_start)
}

/// Keys are namespaced (`lasagna.train.test_accuracy`): lower-case ASCII letters,
/// digits, `_`, `-` and `.`, with at least one dot.
pub fn check_key(k: &[u8]) -> Result<(), &'static str> {
    if k.is_empty() {
        return Err("empty metadata key");
    }
    if !k
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.".contains(c))
    {
        return Err("metadata key may only use a-z, 0-9, '_', '-', '.'");
    }
    if !k.contains(&b'.') {
        return Err("metadata key must be namespaced (contain a '.')");
    }
    Ok(())
}

fn read_str8(sec: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len = *sec.get(at)? as usize;
    let end = at.checked_add(1 + len)?;
    Some((sec.get(at + 1..end)?, end))
}

fn read_meta(sec: &[u8], at: usize) -> Option<(&[u8], &[u8], usize)> {
    let (k, after_k) = read_str8(sec, at)?;
    let vlen = le::u16_at(sec, after_k)? as usize;
    let vstart = after_k.checked_add(2)?;
    let vend = vstart.checked_add(vlen)?;
    Some((k, sec.get(vstart..vend)?, vend))
}

/// Iterator over the labels, in output order.
#[derive(Clone, Debug)]
pub struct Labels<'a> {
    pub(crate) sec: &'a [u8],
    pub(crate) cur: usize,
    pub(crate) left: u16,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.left == 0 {
            return None;
        }
        let (s, next) = read_str8(self.sec, self.cur)?;
        self.cur = next;
        self.left -= 1;
        core::str::from_utf8(s).ok()
    }
}

/// Iterator over metadata `(key, value)` pairs, sorted by key.
#[derive(Clone, Debug)]
pub struct Meta<'a> {
    pub(crate) sec: &'a [u8],
    pub(crate) cur: usize,
    pub(crate) left: u16,
}

impl<'a> Iterator for Meta<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.left == 0 {
            return None;
        }
        let (k, v, next) = read_meta(self.sec, self.cur)?;
        self.cur = next;
        self.left -= 1;
        Some((core::str::from_utf8(k).ok()?, core::str::from_utf8(v).ok()?))
    }
}
