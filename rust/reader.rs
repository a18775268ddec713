//! Little-endian reading of a file's bytes, shared by the drafter file ([`crate::persist`]) and
//! learned-state snapshots ([`crate::learned`]): its own module, so that neither imports the
//! other's.

use crate::format::FormatError;

/// A cursor over a file's bytes: every read checked against the bytes left.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl Reader<'_> {
    pub(crate) fn truncated(&self, needed: usize) -> FormatError {
        FormatError::Truncated {
            offset: self.pos,
            needed,
            available: self.bytes.len().saturating_sub(self.pos),
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.truncated(n)),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, FormatError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, FormatError> {
        Ok(f64::from_bits(self.u64()?))
    }

    pub(crate) fn u32s(&mut self, n: usize) -> Result<Vec<u32>, FormatError> {
        let len = n.checked_mul(4).ok_or_else(|| self.truncated(usize::MAX))?;
        let b = self.take(len)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// A u64 count of `what`, items of at least `size` bytes each: one the bytes left cannot
    /// hold is refused before anything is allocated for it.
    pub(crate) fn count(&mut self, size: usize, what: &str) -> Result<usize, FormatError> {
        let n = self.u64()?;
        let left = self.bytes.len().saturating_sub(self.pos) / size.max(1);
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| FormatError::Corrupt(format!("{n} {what}")))
    }

    /// A u32 length, then that many ids of a `what`, each below `limit`.
    pub(crate) fn ids(&mut self, limit: u32, what: &str) -> Result<Vec<u32>, FormatError> {
        let len = self.u32()? as usize;
        let ids = self.u32s(len)?;
        if ids.iter().any(|&t| t >= limit) {
            return Err(FormatError::Corrupt(format!("{what} id out of range")));
        }
        Ok(ids)
    }
}
