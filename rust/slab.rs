//! A read-only array that lives either on the heap or in a memory-mapped drafter file.
//!
//! A store loaded with [`crate::store::NgramStore::load_mapped`] reads its arrays in place from
//! the file's pages: the operating system keeps one copy of those pages however many processes
//! map the file, so N tensor-parallel ranks or replicas hold the task store once, not N times.
//! Reading is a plain slice either way (no branch on where the elements live).
//!
//! The mapped file must not be changed in place while it is mapped: tasc-rs's own saves replace
//! a file by renaming a new one over it (a mapping keeps the old file's pages), but a tool that
//! truncates and rewrites the same file (`cp new old`, `>`) changes the pages under the drafter,
//! and reading a page past a truncated end kills the process (SIGBUS).

use std::marker::PhantomData;
use std::sync::Arc;

/// Element types a file's bytes can be read as in place: plain little-endian integers.
pub trait Plain: Copy + Send + Sync + 'static {}
impl Plain for u8 {}
impl Plain for u16 {}
impl Plain for u32 {}

/// A read-only file mapping, shared by every array read from it.
pub type Mapping = Arc<memmap2::Mmap>;

enum Owner<T> {
    Heap(#[allow(dead_code)] Vec<T>),
    Map(Mapping),
}

/// A read-only `[T]` owned by a `Vec` or borrowed from a [`Mapping`] it keeps alive.
pub struct Slab<T: Plain> {
    ptr: *const T,
    len: usize,
    owner: Owner<T>,
    _marker: PhantomData<T>,
}

// SAFETY: a Slab is immutable after construction and owns (or keeps alive) what `ptr` points
// into; `T: Plain` holds only Send + Sync plain integers.
unsafe impl<T: Plain> Send for Slab<T> {}
unsafe impl<T: Plain> Sync for Slab<T> {}

impl<T: Plain> Slab<T> {
    /// `len` elements at byte `offset` of `map`; `None` unless they lie inside the mapping at an
    /// offset aligned for `T` (the mapping itself starts on a page boundary), or on a
    /// big-endian machine (the file's integers are little-endian).
    pub fn mapped(map: &Mapping, offset: usize, len: usize) -> Option<Self> {
        let size = std::mem::size_of::<T>();
        let end = len.checked_mul(size)?.checked_add(offset)?;
        let ptr = map.as_ptr().wrapping_add(offset);
        if cfg!(target_endian = "big")
            || end > map.len()
            || (ptr as usize) % std::mem::align_of::<T>() != 0
        {
            return None;
        }
        Some(Self {
            ptr: ptr.cast::<T>(),
            len,
            owner: Owner::Map(Arc::clone(map)),
            _marker: PhantomData,
        })
    }

    /// Whether the elements are read from a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.owner, Owner::Map(_))
    }
}

impl<T: Plain> From<Vec<T>> for Slab<T> {
    fn from(v: Vec<T>) -> Self {
        Self {
            ptr: v.as_ptr(),
            len: v.len(),
            owner: Owner::Heap(v),
            _marker: PhantomData,
        }
    }
}

impl<T: Plain> std::ops::Deref for Slab<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr..ptr + len` is a Vec's buffer that `owner` holds (moving a Vec never moves
        // its buffer), or lies inside the mapping `owner` keeps alive, aligned and in bounds
        // (checked in `mapped`); nothing writes to either while the Slab lives. Any bit pattern
        // is a valid `T`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Plain> Clone for Slab<T> {
    fn clone(&self) -> Self {
        match &self.owner {
            Owner::Heap(_) => Self::from(self.to_vec()),
            Owner::Map(map) => Self {
                ptr: self.ptr,
                len: self.len,
                owner: Owner::Map(Arc::clone(map)),
                _marker: PhantomData,
            },
        }
    }
}

impl<T: Plain> Default for Slab<T> {
    fn default() -> Self {
        Self::from(Vec::new())
    }
}

impl<T: Plain + PartialEq> PartialEq for Slab<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Plain + std::fmt::Debug> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn mapping(bytes: &[u8]) -> Mapping {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        // SAFETY: a private temporary file nothing else writes to.
        Arc::new(unsafe { memmap2::Mmap::map(&f) }.unwrap())
    }

    #[test]
    fn heap_and_mapped_slabs_read_alike() {
        let values: Vec<u16> = vec![1, 2, 300, 65535];
        let mut bytes = vec![9u8; 2];
        values
            .iter()
            .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        let map = mapping(&bytes);
        let mapped = Slab::<u16>::mapped(&map, 2, 4).unwrap();
        let heap = Slab::from(values.clone());
        assert!(mapped.is_mapped() && !heap.is_mapped());
        assert_eq!(&*mapped, values.as_slice());
        assert_eq!(mapped, heap);
        let copy = mapped.clone();
        drop(mapped);
        drop(map);
        assert_eq!(&*copy, values.as_slice(), "a clone keeps the mapping alive");
        assert_eq!(&*heap.clone(), values.as_slice());
    }

    #[test]
    fn misaligned_or_out_of_bounds_ranges_are_refused() {
        let map = mapping(&[0u8; 16]);
        assert!(Slab::<u32>::mapped(&map, 2, 1).is_none(), "misaligned");
        assert!(Slab::<u32>::mapped(&map, 8, 3).is_none(), "past the end");
        assert!(
            Slab::<u32>::mapped(&map, 0, usize::MAX).is_none(),
            "overflow"
        );
        assert_eq!(Slab::<u32>::mapped(&map, 12, 1).unwrap().len(), 1);
        assert_eq!(Slab::<u8>::mapped(&map, 16, 0).unwrap().len(), 0);
    }
}
