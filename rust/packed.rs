//! Integer arrays stored at the narrowest width (1, 2 or 4 bytes) that holds their largest value.
//!
//! Token ids of common vocabularies fit 16 bits and most n-gram counts fit 8 or 16, so packing
//! roughly halves the store. Each array has one width, so the `match` on it is perfectly predicted.

use crate::slab::{Mapping, Slab};

/// A read-only `u32` array with a per-array element width, on the heap or read in place from a
/// mapped file ([`Slab`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Packed {
    U8(Slab<u8>),
    U16(Slab<u16>),
    U32(Slab<u32>),
}

impl Default for Packed {
    fn default() -> Self {
        Packed::U8(Slab::default())
    }
}

impl Packed {
    /// Packs `values` at the narrowest width that holds their maximum.
    pub fn new(values: &[u32]) -> Self {
        match values.iter().copied().max().unwrap_or(0) {
            m if m <= u32::from(u8::MAX) => {
                Packed::U8(values.iter().map(|&v| v as u8).collect::<Vec<_>>().into())
            }
            m if m <= u32::from(u16::MAX) => {
                Packed::U16(values.iter().map(|&v| v as u16).collect::<Vec<_>>().into())
            }
            _ => Packed::U32(values.to_vec().into()),
        }
    }

    /// Bytes per element: 1, 2 or 4.
    pub fn width(&self) -> usize {
        match self {
            Packed::U8(_) => 1,
            Packed::U16(_) => 2,
            Packed::U32(_) => 4,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Packed::U8(v) => v.len(),
            Packed::U16(v) => v.len(),
            Packed::U32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes used.
    pub fn bytes(&self) -> usize {
        self.len() * self.width()
    }

    /// Element `i`; panics if out of bounds (callers index within validated ranges).
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Packed::U8(v) => u32::from(v[i]),
            Packed::U16(v) => u32::from(v[i]),
            Packed::U32(v) => v[i],
        }
    }

    /// Binary search for `value` in the sorted range `start..end`; the absolute index if found.
    #[inline]
    pub fn search(&self, start: usize, end: usize, value: u32) -> Option<usize> {
        let found = match self {
            Packed::U8(v) => u8::try_from(value)
                .ok()
                .and_then(|x| v[start..end].binary_search(&x).ok()),
            Packed::U16(v) => u16::try_from(value)
                .ok()
                .and_then(|x| v[start..end].binary_search(&x).ok()),
            Packed::U32(v) => v[start..end].binary_search(&value).ok(),
        };
        found.map(|i| start + i)
    }

    /// Calls `f(i, value)` for every index in `start..end`.
    #[inline]
    pub fn for_each_in(&self, start: usize, end: usize, mut f: impl FnMut(usize, u32)) {
        match self {
            Packed::U8(v) => v[start..end]
                .iter()
                .enumerate()
                .for_each(|(i, &x)| f(start + i, u32::from(x))),
            Packed::U16(v) => v[start..end]
                .iter()
                .enumerate()
                .for_each(|(i, &x)| f(start + i, u32::from(x))),
            Packed::U32(v) => v[start..end]
                .iter()
                .enumerate()
                .for_each(|(i, &x)| f(start + i, x)),
        }
    }

    /// Whether the elements are read in place from a mapped file.
    pub fn is_mapped(&self) -> bool {
        match self {
            Packed::U8(v) => v.is_mapped(),
            Packed::U16(v) => v.is_mapped(),
            Packed::U32(v) => v.is_mapped(),
        }
    }

    /// Little-endian serialisation: width byte, u64 length, then (when `align` is given) zero
    /// bytes up to the next multiple of `align` of the bytes written so far, then the elements.
    /// Aligned arrays can be read in place from a mapped file.
    pub fn write_to(&self, out: &mut impl Sink, align: Option<usize>) {
        out.put(&[self.width() as u8]);
        out.put(&(self.len() as u64).to_le_bytes());
        if let Some(align) = align {
            out.pad(align);
        }
        match self {
            Packed::U8(v) => out.put(v),
            Packed::U16(v) => v.iter().for_each(|x| out.put(&x.to_le_bytes())),
            Packed::U32(v) => v.iter().for_each(|x| out.put(&x.to_le_bytes())),
        }
    }

    /// Decodes `len` elements of `width` bytes from `bytes` (exactly `len * width` long).
    pub fn from_le_bytes(width: u8, bytes: &[u8]) -> Option<Self> {
        Some(match width {
            1 => Packed::U8(bytes.to_vec().into()),
            2 => Packed::U16(
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect::<Vec<_>>()
                    .into(),
            ),
            4 => Packed::U32(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect::<Vec<_>>()
                    .into(),
            ),
            _ => return None,
        })
    }

    /// `len` elements of `width` bytes read in place at byte `offset` of `map`; `None` for a
    /// width other than 1, 2 or 4 or a range that is misaligned or outside the mapping.
    pub fn mapped(width: u8, map: &Mapping, offset: usize, len: usize) -> Option<Self> {
        Some(match width {
            1 => Packed::U8(Slab::mapped(map, offset, len)?),
            2 => Packed::U16(Slab::mapped(map, offset, len)?),
            4 => Packed::U32(Slab::mapped(map, offset, len)?),
            _ => return None,
        })
    }
}

/// Where serialised bytes go: a buffer, or a checksum that never holds them all.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
    /// Bytes put so far.
    fn written(&self) -> usize;
    /// Zero bytes up to the next multiple of `align` of [`Sink::written`].
    fn pad(&mut self, align: usize) {
        let n = self.written().next_multiple_of(align) - self.written();
        self.put(&[0u8; 64][..n]);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn written(&self) -> usize {
        self.len()
    }
}

/// The CRC32 of everything put, and its length.
#[derive(Default)]
pub struct Crc {
    pub hasher: crc32fast::Hasher,
    pub len: usize,
}

impl Sink for Crc {
    fn put(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len();
    }
    fn written(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_narrowest_width_and_round_trips() {
        for (values, width) in [
            (vec![0u32, 255], 1),
            (vec![3, 256, 65535], 2),
            (vec![1, 65536], 4),
            (vec![], 1),
        ] {
            let p = Packed::new(&values);
            assert_eq!(p.width(), width);
            assert_eq!((0..p.len()).map(|i| p.get(i)).collect::<Vec<_>>(), values);
            let mut bytes = Vec::new();
            p.write_to(&mut bytes, None);
            assert_eq!(Packed::from_le_bytes(bytes[0], &bytes[9..]).unwrap(), p);
            let mut aligned = vec![7u8];
            p.write_to(&mut aligned, Some(8));
            assert_eq!(aligned.len(), 16 + p.bytes(), "1 + 9 bytes padded to 16");
            assert_eq!(
                Packed::from_le_bytes(aligned[1], &aligned[16..]).unwrap(),
                p
            );
        }
    }

    #[test]
    fn search_finds_within_the_range_only() {
        let p = Packed::new(&[1, 5, 9, 2, 7, 300]);
        assert_eq!(p.search(0, 3, 5), Some(1));
        assert_eq!(p.search(3, 6, 7), Some(4));
        assert_eq!(p.search(3, 5, 9), None);
        assert_eq!(
            p.search(0, 3, 70_000),
            None,
            "values wider than the array are absent"
        );
    }
}
