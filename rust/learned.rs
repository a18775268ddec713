//! What a drafter learned while serving, as a file that survives restarts: the online index's
//! responses, the copy pointer's and the neighbours' outcomes, and the served (prompt, response)
//! pairs. Tied to its drafter by a fingerprint (the drafter file's checksum), so that a snapshot
//! of another drafter is refused rather than mixed in. Little-endian:
//!
//! ```text
//! magic    8 bytes  "TASCLRN\0"
//! version  u32      1
//! drafter  u32      crc32 of the drafter file the state was learned with
//! responses u64, then per response: length u32, its ids
//! copy outcomes u64, then per context: key u64, tries u32, hits u32
//! neighbour buckets u32, then per bucket: tries u32, hits u32
//! pairs u64, then per pair: request length u32, its ids, answer length u32, its ids
//! crc32    u32      of every byte before it
//! ```
//!
//! Written atomically ([`crate::persist::write_atomically`]): a process killed while saving
//! leaves the previous snapshot whole.

use thiserror::Error;

use crate::copy::CopyStats;
use crate::format::FormatError;
use crate::neighbours::{NeighbourStats, OnlinePairs};
use crate::online::OnlineIndex;
use crate::reader::Reader;

pub const MAGIC: &[u8; 8] = b"TASCLRN\0";
pub const VERSION: u32 = 1;

/// A snapshot that cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SnapshotError {
    #[error("not a tasc-rs learned-state file (bad magic bytes)")]
    BadMagic,
    #[error("unsupported learned-state version {0}; this build reads version {VERSION}")]
    Version(u32),
    #[error(
        "learned state of another drafter (fingerprint {found:#010x}, this drafter's {expected:#010x})"
    )]
    Foreign { found: u32, expected: u32 },
    #[error("learned-state file checksum mismatch: the file is corrupted")]
    Checksum,
    #[error("learned-state file is corrupted: {0}")]
    Corrupt(String),
}

impl From<FormatError> for SnapshotError {
    /// A truncated or malformed part, as the shared reader reports it.
    fn from(e: FormatError) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// A drafter's learned state, read out of it or out of a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub responses: Vec<Vec<u32>>,
    pub copy: Vec<(u64, u32, u32)>,
    pub buckets: Vec<(u32, u32)>,
    pub pairs: Vec<(Vec<u32>, Vec<u32>)>,
}

impl Snapshot {
    /// The state of a drafter's learners.
    pub fn take(
        online: &OnlineIndex,
        copy: &CopyStats,
        near: &NeighbourStats,
        pairs: &OnlinePairs,
    ) -> Self {
        Self {
            responses: online.each_response().map(<[u32]>::to_vec).collect(),
            copy: copy.entries(),
            buckets: near.buckets(),
            pairs: pairs
                .each_pair()
                .map(|(r, a)| (r.to_vec(), a.to_vec()))
                .collect(),
        }
    }

    /// Replaces the learners' state with this one (responses re-learned oldest first, within
    /// the learners' current capacities).
    pub fn restore(
        &self,
        online: &mut OnlineIndex,
        copy: &CopyStats,
        near: &NeighbourStats,
        pairs: &mut OnlinePairs,
    ) {
        online.clear();
        for r in &self.responses {
            online.learn(r);
        }
        copy.restore(&self.copy);
        near.restore(&self.buckets);
        pairs.clear();
        for (r, a) in &self.pairs {
            pairs.insert(r, a);
        }
    }

    /// The file's bytes, for the drafter of fingerprint `drafter`.
    pub fn to_bytes(&self, drafter: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&drafter.to_le_bytes());
        let ids = |out: &mut Vec<u8>, ids: &[u32]| {
            out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
            for t in ids {
                out.extend_from_slice(&t.to_le_bytes());
            }
        };
        out.extend_from_slice(&(self.responses.len() as u64).to_le_bytes());
        for r in &self.responses {
            ids(&mut out, r);
        }
        out.extend_from_slice(&(self.copy.len() as u64).to_le_bytes());
        for &(k, t, h) in &self.copy {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&h.to_le_bytes());
        }
        out.extend_from_slice(&(self.buckets.len() as u32).to_le_bytes());
        for &(t, h) in &self.buckets {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&h.to_le_bytes());
        }
        out.extend_from_slice(&(self.pairs.len() as u64).to_le_bytes());
        for (r, a) in &self.pairs {
            ids(&mut out, r);
            ids(&mut out, a);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses a file's bytes for the drafter of fingerprint `drafter` whose ids are below
    /// `limit`; every count is checked against the bytes left before anything is allocated.
    pub fn from_bytes(bytes: &[u8], drafter: u32, limit: u32) -> Result<Self, SnapshotError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        if bytes.len() < MAGIC.len() + 12 {
            return Err(SnapshotError::Corrupt("truncated".into()));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let mut r = Reader {
            bytes: body,
            pos: MAGIC.len(),
        };
        let version = r.u32()?;
        if version != VERSION {
            return Err(SnapshotError::Version(version));
        }
        if crc32fast::hash(body).to_le_bytes() != tail {
            return Err(SnapshotError::Checksum);
        }
        let found = r.u32()?;
        if found != drafter {
            return Err(SnapshotError::Foreign {
                found,
                expected: drafter,
            });
        }
        let mut s = Self::default();
        for _ in 0..r.count(4, "responses")? {
            s.responses.push(r.ids(limit, "response")?);
        }
        for _ in 0..r.count(16, "copy outcomes")? {
            let (k, t, h) = (r.u64()?, r.u32()?, r.u32()?);
            let ok = |x: u32| x == u32::MAX || x < limit;
            if !ok((k >> 32) as u32) || !ok(k as u32) || h > t {
                return Err(SnapshotError::Corrupt("copy outcome".into()));
            }
            s.copy.push((k, t, h));
        }
        let n = r.u32()? as usize;
        if n > body.len() / 8 {
            return Err(SnapshotError::Corrupt(format!("{n} buckets")));
        }
        for _ in 0..n {
            let (t, h) = (r.u32()?, r.u32()?);
            if h > t {
                return Err(SnapshotError::Corrupt("neighbour outcome".into()));
            }
            s.buckets.push((t, h));
        }
        for _ in 0..r.count(8, "pairs")? {
            let request = r.ids(limit, "pair")?;
            s.pairs.push((request, r.ids(limit, "pair")?));
        }
        if r.pos != body.len() {
            return Err(SnapshotError::Corrupt("trailing bytes".into()));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learners() -> (OnlineIndex, CopyStats, NeighbourStats, OnlinePairs) {
        let mut online = OnlineIndex::new(4, 1000);
        online.learn(&[1, 2, 3]);
        online.learn(&[4, 5]);
        let copy = CopyStats::default();
        copy.record(7, true);
        copy.record(7, false);
        copy.record(u64::MAX, true);
        let near = NeighbourStats::default();
        near.record(0.95, true);
        near.record(0.35, false);
        let mut pairs = OnlinePairs::new(1000);
        pairs.add(&[9, 8, 7, 6], &[1, 2], 16);
        (online, copy, near, pairs)
    }

    #[test]
    fn a_snapshot_round_trips_into_fresh_learners() {
        let (online, copy, near, pairs) = learners();
        let snap = Snapshot::take(&online, &copy, &near, &pairs);
        assert_eq!(snap.responses, vec![vec![1, 2, 3], vec![4, 5]]);
        let bytes = snap.to_bytes(42);
        let back = Snapshot::from_bytes(&bytes, 42, 100).unwrap();
        assert_eq!(back, snap);
        let (mut o2, c2, n2, mut p2) = (
            OnlineIndex::new(4, 1000),
            CopyStats::default(),
            NeighbourStats::default(),
            OnlinePairs::new(1000),
        );
        o2.learn(&[50, 51]); // replaced, not added to
        back.restore(&mut o2, &c2, &n2, &mut p2);
        assert_eq!(Snapshot::take(&o2, &c2, &n2, &p2), snap);
        assert_eq!(o2.tokens(), 5);
    }

    #[test]
    fn foreign_damaged_and_forged_snapshots_are_refused() {
        let (online, copy, near, pairs) = learners();
        let bytes = Snapshot::take(&online, &copy, &near, &pairs).to_bytes(42);
        assert!(matches!(
            Snapshot::from_bytes(&bytes, 43, 100),
            Err(SnapshotError::Foreign { found: 42, .. })
        ));
        assert_eq!(
            Snapshot::from_bytes(b"TASCNGR\0rest", 42, 100),
            Err(SnapshotError::BadMagic)
        );
        for n in 0..bytes.len() {
            assert!(Snapshot::from_bytes(&bytes[..n], 42, 100).is_err(), "{n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(Snapshot::from_bytes(&b, 42, 100).is_err(), "byte {i}");
        }
        // re-signed forgeries: huge counts, ids past the vocabulary
        let resign = |mut b: Vec<u8>| {
            b.truncate(b.len() - 4);
            let crc = crc32fast::hash(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            b
        };
        let mut b = bytes.clone();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Snapshot::from_bytes(&resign(b), 42, 100).is_err());
        let mut b = bytes.clone();
        b[28..32].copy_from_slice(&500u32.to_le_bytes()); // the first response's first id
        assert!(matches!(
            Snapshot::from_bytes(&resign(b), 42, 100),
            Err(SnapshotError::Corrupt(_))
        ));
    }
}
