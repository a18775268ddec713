//! Integer arrays stored at the narrowest width (1, 2 or 4 bytes) that holds their largest value.
//!
//! Token ids of common vocabularies fit 16 bits and most n-gram counts fit 8 or 16, so packing
//! roughly halves the store. Each array has one width, so the `match` on it is perfectly predicted.

/// A read-only `u32` array with a per-array element width.
#[derive(Debug, Clone, PartialEq)]
pub enum Packed {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Default for Packed {
    fn default() -> Self {
        Packed::U8(Vec::new())
    }
}

impl Packed {
    /// Packs `values` at the narrowest width that holds their maximum.
    pub fn new(values: &[u32]) -> Self {
        match values.iter().copied().max().unwrap_or(0) {
            m if m <= u32::from(u8::MAX) => Packed::U8(values.iter().map(|&v| v as u8).collect()),
            m if m <= u32::from(u16::MAX) => {
                Packed::U16(values.iter().map(|&v| v as u16).collect())
            }
            _ => Packed::U32(values.to_vec()),
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

    /// Little-endian serialisation: width byte, u64 length, elements.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.push(self.width() as u8);
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        match self {
            Packed::U8(v) => out.extend_from_slice(v),
            Packed::U16(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Packed::U32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }

    /// Decodes `len` elements of `width` bytes from `bytes` (exactly `len * width` long).
    pub fn from_le_bytes(width: u8, bytes: &[u8]) -> Option<Self> {
        Some(match width {
            1 => Packed::U8(bytes.to_vec()),
            2 => Packed::U16(
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            4 => Packed::U32(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            _ => return None,
        })
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
            p.write_to(&mut bytes);
            assert_eq!(Packed::from_le_bytes(bytes[0], &bytes[9..]).unwrap(), p);
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
