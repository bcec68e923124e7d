//! The checkpoint's header line, `LASAGNA-CKPT 2 crc32=XXXXXXXX len=N\n`
//! (the layout is in the parent module's documentation): written by
//! [`frame`], checked by [`split`].

use super::{bad, Bad, CHECKPOINT_MAGIC, CHECKPOINT_VERSION};

/// A header is a few dozen bytes; anything longer is not one.
pub(super) const MAX_HEADER: usize = 128;

/// The header for `payload`, then the payload.
pub(super) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{CHECKPOINT_MAGIC} {CHECKPOINT_VERSION} crc32={:08x} len={}\n",
        crc32fast::hash(payload),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The whole file's length as the header line at the start of `head`
/// declares it (header, newline and `len=` payload bytes), or `None` when
/// `head` starts with no readable header ([`split`] then says why). Lets
/// the reader compare it with the file's length before reading the body.
pub(super) fn declared_total(head: &[u8]) -> Option<u64> {
    let end = head.iter().take(MAX_HEADER).position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(head.get(..end)?).ok()?;
    let len = header
        .split(' ')
        .find_map(|w| w.strip_prefix("len="))?
        .parse::<u64>()
        .ok()?;
    len.checked_add(end as u64 + 1)
}

/// How much of a file without a readable header is read for [`split`]'s
/// message: enough for a version-1 checkpoint of a small model to name its
/// version, and never the whole of a wrong multi-gigabyte file.
pub(super) const HEADERLESS_READ: u64 = 1 << 20;

/// Checks the header against the payload and returns the payload, or
/// what is wrong and a hint.
pub(super) fn split(bytes: &[u8]) -> std::result::Result<&[u8], (Bad, &'static str)> {
    const NEW_RUN: &str = "start a new run without --resume";
    if bytes.first() == Some(&b'{') {
        // Version 1 was bare JSON with a `version` field.
        let v = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|j| j.get("version").and_then(|v| v.as_u64()));
        return Err((
            bad(
                "version",
                v.map_or("unknown".into(), |v| v.to_string()),
                format!(
                    "a checkpoint without a header (version 1, no checksum, no normalization); \
                     this lasagna reads version {CHECKPOINT_VERSION}"
                ),
            ),
            "finish that run with the lasagna that wrote it, or start a new run without --resume",
        ));
    }
    let end = bytes.iter().take(MAX_HEADER).position(|&b| b == b'\n');
    let header = end
        .and_then(|e| bytes.get(..e))
        .and_then(|h| std::str::from_utf8(h).ok());
    let Some((end, header)) = end.zip(header) else {
        return Err((
            bad(
                "header",
                "missing",
                format!("not a Lasagna checkpoint (no `{CHECKPOINT_MAGIC}` line)"),
            ),
            NEW_RUN,
        ));
    };
    let words: Vec<&str> = header.split(' ').collect();
    let [magic, version, crc, len] = words.as_slice() else {
        return Err((
            bad(
                "header",
                header,
                "expected `LASAGNA-CKPT <version> crc32=<hex> len=<bytes>`",
            ),
            NEW_RUN,
        ));
    };
    if *magic != CHECKPOINT_MAGIC {
        return Err((
            bad(
                "header",
                header,
                format!("not a Lasagna checkpoint (no `{CHECKPOINT_MAGIC}` line)"),
            ),
            NEW_RUN,
        ));
    }
    if version.parse::<u32>().ok() != Some(CHECKPOINT_VERSION) {
        return Err((
            bad(
                "version",
                version,
                format!("this lasagna reads version {CHECKPOINT_VERSION}"),
            ),
            "resume it with the lasagna that wrote it, or start a new run without --resume",
        ));
    }
    let crc_value = crc
        .strip_prefix("crc32=")
        .filter(|h| h.len() == 8)
        .and_then(|h| u32::from_str_radix(h, 16).ok());
    let len_value = len
        .strip_prefix("len=")
        .and_then(|n| n.parse::<usize>().ok());
    let (Some(want_crc), Some(want_len)) = (crc_value, len_value) else {
        return Err((
            bad(
                "header",
                header,
                "expected `crc32=<8 hex digits> len=<bytes>`",
            ),
            NEW_RUN,
        ));
    };
    let payload = bytes.get(end + 1..).unwrap_or_default();
    if payload.len() != want_len {
        return Err((
            bad(
                "len",
                want_len,
                format!("the file holds {} payload bytes", payload.len()),
            ),
            "the file was cut short or appended to; use an earlier copy, or start a new run without --resume",
        ));
    }
    let got = crc32fast::hash(payload);
    if got != want_crc {
        return Err((
            bad(
                "crc32",
                format!("{want_crc:08x}"),
                format!("the payload's CRC-32 is {got:08x}: the file was changed or damaged after it was written"),
            ),
            "use an earlier copy of the checkpoint, or start a new run without --resume",
        ));
    }
    Ok(payload)
}
