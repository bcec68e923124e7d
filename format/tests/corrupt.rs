//! Properties: no input makes the reader panic or read out of bounds, and
//! every damaged file is rejected with an error (or, where a mutation slips
//! past the CRC because the CRC was recomputed, the result is still a fully
//! valid, canonical model).
mod common;

use lasagna_format::{Error, Model, ModelBuilder};
use proptest::prelude::*;

fn valid(seed: u64) -> Vec<u8> {
    common::random_builder(seed).build().unwrap_or_default()
}

fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() >= 16 {
        let crc = crc32fast::hash(&bytes[16..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }
}

/// An accepted file must be self-consistent: every accessor answers, and the
/// file is exactly what the writer would produce for what the reader saw.
fn assert_fully_valid(bytes: &[u8], m: &Model<'_>) -> Result<(), TestCaseError> {
    prop_assert_eq!(m.ops().count(), m.op_count() as usize);
    for i in 0..m.tensor_count() {
        prop_assert!(m.tensor(i).is_some());
    }
    prop_assert_eq!(
        m.labels().count() + m.meta().count(),
        m.labels().count() + m.meta().count()
    );
    let rebuilt = ModelBuilder::from_model(m)
        .and_then(|b| b.build())
        .map_err(|e| TestCaseError::fail(format!("accepted file does not rebuild: {e}")))?;
    prop_assert!(rebuilt == bytes, "accepted file is not canonical");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(m) = Model::parse(&bytes) {
            assert_fully_valid(&bytes, &m)?;
        }
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(
        seed in any::<u64>(),
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        // Keep the header (so parsing gets past magic, size and CRC) and
        // replace everything after it with noise.
        let mut bytes = valid(seed);
        bytes.truncate(64);
        bytes.extend_from_slice(&tail);
        let len = bytes.len() as u32;
        bytes[8..12].copy_from_slice(&len.to_le_bytes());
        fix_crc(&mut bytes);
        if let Ok(m) = Model::parse(&bytes) {
            assert_fully_valid(&bytes, &m)?;
        }
    }

    #[test]
    fn every_truncation_is_rejected(seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
        let bytes = valid(seed);
        let n = cut.index(bytes.len());
        prop_assert!(Model::parse(&bytes[..n]).is_err());
        // Even with the size and CRC patched to match, a cut file is rejected.
        let mut cut_bytes = bytes[..n].to_vec();
        if n >= 16 {
            cut_bytes[8..12].copy_from_slice(&(n as u32).to_le_bytes());
            fix_crc(&mut cut_bytes);
            prop_assert!(Model::parse(&cut_bytes).is_err(), "truncated to {} of {} bytes but accepted", n, bytes.len());
        }
    }

    #[test]
    fn every_single_byte_mutation_is_rejected(
        seed in any::<u64>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = valid(seed);
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        // CRC-32 detects every single-byte error, and the header's first 16
        // bytes are checked field by field.
        prop_assert!(Model::parse(&bytes).is_err(), "mutation at {} accepted", i);
    }

    #[test]
    fn mutations_behind_a_recomputed_crc_are_still_validated(
        seed in any::<u64>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        extra in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let mut bytes = valid(seed);
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        for (j, v) in extra {
            let j = j.index(bytes.len());
            bytes[j] = v;
        }
        fix_crc(&mut bytes);
        match Model::parse(&bytes) {
            Ok(m) => assert_fully_valid(&bytes, &m)?,
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn errors_name_what_is_wrong() {
    let good = valid(3);
    assert!(matches!(
        Model::parse(&good[..10]),
        Err(Error::Truncated { .. })
    ));
    let mut b = good.clone();
    b[0] = b'X';
    assert!(matches!(Model::parse(&b), Err(Error::BadMagic { .. })));
    let mut b = good.clone();
    b[4] = 2;
    assert!(matches!(
        Model::parse(&b),
        Err(Error::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    ));
    let mut b = good.clone();
    b.push(0);
    assert!(matches!(Model::parse(&b), Err(Error::FileSize { .. })));
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    assert!(matches!(Model::parse(&b), Err(Error::Crc { .. })));
    // An unknown op kind, with the CRC made to match: the reader names the op.
    let mut b = good.clone();
    b[64] = 200;
    fix_crc(&mut b);
    assert_eq!(
        Model::parse(&b).err(),
        Some(Error::UnknownOpKind { op: 0, code: 200 })
    );
    let msg = format!("{}", Error::UnknownOpKind { op: 0, code: 200 });
    assert!(msg.contains("op 0") && msg.contains("200"), "{msg}");
}
