//! The drafter file format (version 4; version 1 files, which end before the copy section,
//! version 2 files, which end before the pairs section, and version 3 files, whose arrays are
//! not aligned and which hold no runner-up counts, still load), little-endian:
//!
//! ```text
//! magic    8 bytes  "TASCNGR\0"
//! version  u32      4
//! n_max u32, min_count u32, vocab_size u32 (0 = unbounded), corpus_weight f64, min_prob f64,
//! corpus_tokens u64, sequences u64
//! for depth 0..=n_max: node count u64, tokens, counts (packed arrays),
//!                      and for depth < n_max: padding, child_start [u32; nodes + 1], totals,
//!                      best, runner_up (packed; runner_up from version 4)
//! copy section (version 2): anchors u64, then per anchor: context key u64, anchor u64,
//!                      share f32; enders u64, then that many u32; window u64
//!                      (see [`crate::copy`])
//! pairs section (version 3): pairs u64, then per pair: request length u32, its ids,
//!                      answer length u32, its ids (see [`crate::neighbours`]; the index of
//!                      request tokens is rebuilt when loading)
//! packed array = width u8 (1, 2 or 4), length u64, padding (version 4), elements of that width
//! padding  (version 4) zero bytes up to the next multiple of 8 bytes from the file's start, so
//!          that a memory-mapped file's arrays are read in place ([`NgramStore::load_mapped`])
//! crc32    u32      of every byte before it
//! ```
//! Loading checks the checksum first, then every structural invariant the lookups rely on (and
//! that every stored runner-up count is the one the children give), so even a file with a forged
//! checksum cannot make a later lookup panic.

use std::io::Write;
use std::path::Path;

use crate::config::{DrafterConfig, MAX_N};
use crate::copy::{Anchor, CopyIndex, MAX_WINDOW};
use crate::error::Error;
use crate::neighbours::NeighbourIndex;
use crate::packed::{Crc, Packed, Sink};
use crate::reader::Reader;
use crate::slab::{Mapping, Slab};
use crate::store::{Level, NgramStore};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"TASCNGR\0";
pub use crate::format::{FormatError, FORMAT_VERSION, OLDEST_VERSION};

/// Longest file name part of a temporary file's name kept from its target's: with the rest of
/// the temporary name it stays under the 255 bytes file systems allow.
const TEMP_STEM: usize = 160;

/// What a save of `name` names its temporary files with (`.{stem}.{pid}.{n}.tmp`): the name
/// itself, or for a long one its first bytes and a checksum of the whole, so that a valid
/// 255-byte name still gets a valid temporary name.
fn temp_stem(name: &str) -> String {
    if name.len() <= TEMP_STEM {
        return name.to_string();
    }
    let mut cut = TEMP_STEM - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{:08x}", &name[..cut], crc32fast::hash(name.as_bytes()))
}

/// Removes the temporary files that saves of `name` in `dir` left behind when their process was
/// killed mid-write (`.{stem}.{pid}.{n}.tmp` whose `pid` no longer runs). Only where the OS
/// shows its processes under `/proc`; elsewhere, and on any error, nothing is touched.
fn remove_stale_temps(dir: &Path, name: &str) {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{}.", temp_stem(name));
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let mut parts = rest.split('.');
        let (Some(pid), Some(n), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if numeric(pid) && numeric(n) && !proc_root.join(pid).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl NgramStore {
    /// Serialises the store and its configuration (the current [`FORMAT_VERSION`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_as(FORMAT_VERSION)
    }

    /// Serialises the store as file format `version` (3 or 4) writes it.
    pub(crate) fn to_bytes_as(&self, version: u32) -> Vec<u8> {
        // at most six arrays a level, each with a 9-byte header and under ALIGN bytes of padding
        let framing = self.levels.len() * 6 * (9 + ALIGN);
        let mut out = Vec::with_capacity(self.bytes() + framing + 128);
        self.encode(&mut out, version);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// A checksum of the store's content that does not change with the file format: the CRC
    /// of its version 3 encoding (what a version 3 file's own checksum is), computed without
    /// holding the encoding.
    pub fn content_crc(&self) -> u32 {
        let mut crc = Crc::default();
        self.encode(&mut crc, 3);
        crc.hasher.finalize()
    }

    /// Everything a file of format `version` holds before its checksum. Version 4 starts every
    /// array at a multiple of 8 bytes from the file's start and stores the runner-up counts, so
    /// that a mapped file is read in place; version 3 packs arrays back to back.
    fn encode(&self, out: &mut impl Sink, version: u32) {
        let aligned = (version >= 4).then_some(ALIGN);
        out.put(MAGIC);
        let c = &self.config;
        for v in [
            version,
            c.n_max as u32,
            c.min_count,
            c.vocab_size.unwrap_or(0),
        ] {
            out.put(&v.to_le_bytes());
        }
        out.put(&c.corpus_weight.to_le_bytes());
        out.put(&c.min_prob.to_le_bytes());
        out.put(&self.corpus_tokens.to_le_bytes());
        out.put(&self.sequences.to_le_bytes());
        for (depth, level) in self.levels.iter().enumerate() {
            out.put(&(level.len() as u64).to_le_bytes());
            level.tokens.write_to(out, aligned);
            level.counts.write_to(out, aligned);
            if depth < c.n_max {
                if let Some(align) = aligned {
                    out.pad(align);
                }
                for v in level.child_start.iter() {
                    out.put(&v.to_le_bytes());
                }
                level.totals.write_to(out, aligned);
                level.best.write_to(out, aligned);
                if aligned.is_some() {
                    level.runner_up.write_to(out, aligned);
                }
            }
        }
        let (anchors, enders, window) =
            self.copy.as_ref().map_or((Vec::new(), Vec::new(), 0), |c| {
                (c.anchors(), c.enders(), c.window())
            });
        out.put(&(anchors.len() as u64).to_le_bytes());
        for (key, anchor) in anchors {
            out.put(&key.to_le_bytes());
            out.put(&anchor.tokens.to_le_bytes());
            out.put(&anchor.share.to_le_bytes());
        }
        out.put(&(enders.len() as u64).to_le_bytes());
        for t in enders {
            out.put(&t.to_le_bytes());
        }
        out.put(&(window as u64).to_le_bytes());
        let pairs = self.neighbours.as_deref().map_or(0, NeighbourIndex::len);
        out.put(&(pairs as u64).to_le_bytes());
        for (request, answer) in self.neighbours.iter().flat_map(|n| n.pairs()) {
            for ids in [request, answer] {
                out.put(&(ids.len() as u32).to_le_bytes());
                for t in ids {
                    out.put(&t.to_le_bytes());
                }
            }
        }
    }

    /// Parses and validates bytes written by [`NgramStore::to_bytes`] (any version from
    /// [`OLDEST_VERSION`]); the store holds copies of its arrays.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        parse(bytes, None)
    }

    /// Writes the store to `path` atomically: a temporary file in the same directory is written,
    /// synced and renamed over `path`, so a crash never leaves a half-written drafter. A symbolic
    /// link is followed (the file it points to is replaced, the link stays), and an existing
    /// file keeps its permissions.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        write_atomically(path, &self.to_bytes())
    }

    /// Reads a store written by [`NgramStore::save`]. Only regular files are read (a device,
    /// FIFO or directory is refused at once, without blocking), and no more bytes than the file
    /// held when it was opened.
    pub fn load(path: &Path) -> Result<Self, Error> {
        Self::from_bytes(&read_file(path, MAGIC)?)
    }

    /// Reads a store written by [`NgramStore::save`] in place: the file is memory-mapped
    /// read-only and the trie's arrays are read from its pages, which the operating system
    /// shares between every process that maps the same file (one copy for N ranks or
    /// replicas). Checked as [`NgramStore::load`] checks (the checksum and every invariant,
    /// which reads the whole file once). Version 4 files only (earlier ones have no aligned
    /// arrays: load and save them again to convert). The copy pointer's and the similar
    /// requests' indexes are built in each process's memory as with `load`.
    ///
    /// The file must not be changed in place while a store maps it: `save` replaces a file by
    /// renaming a new one over it, which leaves mapped stores on the old file, but a tool that
    /// truncates and rewrites the same file changes the store's pages, and reading a page past
    /// a truncated end kills the process (SIGBUS).
    pub fn load_mapped(path: &Path) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let file = open_regular(path)?;
        if cfg!(target_endian = "big") {
            return Err(FormatError::NotMappable("this machine is big-endian".into()).into());
        }
        // SAFETY: the mapping is read-only; the file changing in place is the caller's contract
        // (documented above and in `crate::slab`), and every array read from it is bounds-checked
        // against the mapping's length.
        let map: Mapping = Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?);
        parse(&map, Some(&map))
    }

    /// Whether the trie is read in place from a mapped file ([`NgramStore::load_mapped`]).
    pub fn is_mapped(&self) -> bool {
        self.levels.first().is_some_and(Level::is_mapped)
    }
}

/// Where every array of a version 4 file starts: a multiple of this many bytes from the
/// file's start.
const ALIGN: usize = 8;

/// Parses a drafter file's `bytes`; with `map` (the mapping `bytes` is), a version 4 file's
/// arrays are read in place from it, and other versions are refused.
fn parse(bytes: &[u8], map: Option<&Mapping>) -> Result<NgramStore, Error> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(FormatError::BadMagic.into());
    }
    let mut r = Reader {
        bytes,
        pos: MAGIC.len(),
    };
    let version = r.u32()?;
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion { found: version }.into());
    }
    if map.is_some() && version < 4 {
        return Err(FormatError::NotMappable(format!(
            "a version {version} file has no aligned arrays (load it and save it again to \
             write version {FORMAT_VERSION})"
        ))
        .into());
    }
    if bytes.len() < 12 {
        return Err(r.truncated(4).into());
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(FormatError::Checksum { stored, computed }.into());
    }
    let mut r = Reader {
        bytes: body,
        pos: r.pos,
    };
    let mut store = read_store(&mut r, version, map)?;
    if version >= 2 {
        let copy = read_copy(&mut r, store.config.id_limit())?;
        store = store.with_copy(copy);
    }
    if version >= 3 {
        let pairs = read_pairs(&mut r, store.config.id_limit())?;
        store = store.with_neighbours(pairs);
    }
    if r.pos != body.len() {
        return Err(corrupt(format!("{} trailing bytes", body.len() - r.pos)));
    }
    Ok(store)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// synced and renamed over `path`, so a crash never leaves a half-written file. A symbolic link
/// is followed (the file it points to is replaced, the link stays), an existing file keeps its
/// permissions, and a device, FIFO or directory is never replaced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(resolved) => resolved,
            // a dangling link: create the file it names
            Err(_) => {
                let link = std::fs::read_link(path).map_err(io)?;
                path.parent().map_or(link.clone(), |p| p.join(&link))
            }
        },
        _ => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let existing = std::fs::metadata(&target).ok();
    if existing.as_ref().is_some_and(|m| !m.is_file()) {
        // renaming over a device, FIFO or directory would replace it with a regular file
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "exists and is not a regular file (a device, FIFO or directory is never replaced)",
        )));
    }
    let permissions = existing.map(|m| m.permissions());
    remove_stale_temps(&dir, &name);
    // Unique per process and per call, so concurrent saves to one path never share a file.
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}.{n}.tmp",
        temp_stem(&name),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create_new(&tmp)?;
        if let Some(p) = permissions {
            file.set_permissions(p)?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// `path` opened for reading if it is a regular file: a device, FIFO or directory is refused at
/// once, without blocking.
fn open_regular(path: &Path) -> Result<std::fs::File, Error> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let not_regular = || {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    };
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(not_regular());
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(0o4000); // O_NONBLOCK: a FIFO swapped in cannot block the open
    }
    let file = options.open(path).map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

/// The bytes of the regular file at `path`, read whole, unless its first bytes are not `magic`:
/// then those first bytes alone (what the caller's parser refuses), so that a large file of
/// another format costs a few bytes, not its size. A device, FIFO or directory is refused at
/// once, without blocking; a file too large for memory is an error, not an abort.
pub fn read_file(path: &Path, magic: &[u8]) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let file = open_regular(path)?;
    let len = file.metadata().map_err(io)?.len();
    // The magic first: a large file of another format costs 8 bytes, not its size.
    let mut file = file.take(len);
    let mut head = vec![0u8; magic.len()];
    let n = read_up_to(&mut file, &mut head).map_err(io)?;
    if n < magic.len() || head != magic {
        head.truncate(n);
        return Ok(head);
    }
    // A drafter file is read whole; one too large for memory is an error, not an abort.
    let mut bytes = Vec::new();
    let size = usize::try_from(len).unwrap_or(usize::MAX);
    bytes.try_reserve_exact(size).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!("a file of {len} bytes does not fit in memory"),
        ))
    })?;
    bytes.extend_from_slice(&head);
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Reads into `buf` until it is full or the reader ends; the bytes read.
fn read_up_to(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The copy section (version 2), every id checked against the vocabulary.
fn read_copy(r: &mut Reader<'_>, limit: u32) -> Result<CopyIndex, Error> {
    let ok = |t: u32| t < limit;
    let key_ok = |k: u64| {
        [(k >> 32) as u32, k as u32]
            .iter()
            .all(|&t| t == u32::MAX || ok(t))
    };
    // a one-token anchor's first half is u32::MAX
    let anchor_ok = |a: u64| ((a >> 32) as u32 == u32::MAX || ok((a >> 32) as u32)) && ok(a as u32);
    // each anchor takes 20 bytes
    let n = r.count(20, "copy anchors")?;
    let mut anchors = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.u64()?;
        let tokens = r.u64()?;
        let share = f32::from_bits(r.u32()?);
        if !key_ok(key) || !anchor_ok(tokens) {
            return Err(corrupt("copy anchor id out of range".into()));
        }
        if !(share.is_finite() && (0.0..=1.0).contains(&share)) {
            return Err(corrupt(format!("copy anchor share {share}")));
        }
        anchors.push((key, Anchor { tokens, share }));
    }
    let n = usize::try_from(r.u64()?).map_err(|_| corrupt("copy enders".into()))?;
    let enders = r.u32s(n)?;
    if enders.iter().any(|&t| !ok(t)) {
        return Err(corrupt("copy ender id out of range".into()));
    }
    let window = r.u64()?;
    if window > MAX_WINDOW as u64 {
        return Err(corrupt(format!("copy window {window}")));
    }
    Ok(CopyIndex::from_parts(anchors, enders, window as usize))
}

/// The pairs section (version 3), every id checked against the vocabulary.
fn read_pairs(r: &mut Reader<'_>, limit: u32) -> Result<NeighbourIndex, Error> {
    // each pair takes 8 bytes at least
    let n = r.count(8, "pairs")?;
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let request = r.ids(limit, "pair")?;
        pairs.push((request, r.ids(limit, "pair")?));
    }
    Ok(NeighbourIndex::build(
        pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice())),
    ))
}

/// A packed array that must hold exactly `n` elements; from version 4 (`aligned`) its elements
/// start at a multiple of [`ALIGN`] bytes after zero padding, and with `map` they are read in
/// place.
fn read_packed(
    r: &mut Reader<'_>,
    n: usize,
    aligned: bool,
    map: Option<&Mapping>,
) -> Result<Packed, Error> {
    let width = r.take(1)?[0];
    let len = r.u64()?;
    if len != n as u64 || !matches!(width, 1 | 2 | 4) {
        return Err(corrupt(format!(
            "packed array: width {width}, length {len}, expected {n}"
        )));
    }
    if aligned {
        skip_padding(r)?;
    }
    let at = r.pos;
    let bytes = r.take(
        n.checked_mul(usize::from(width))
            .ok_or_else(|| r.truncated(usize::MAX))?,
    )?;
    match map {
        Some(map) => Packed::mapped(width, map, at, n),
        None => Packed::from_le_bytes(width, bytes),
    }
    .ok_or_else(|| corrupt("packed array width or alignment".into()))
}

/// `n` u32 values after zero padding to [`ALIGN`] (version 4) or straight away.
fn read_u32s(
    r: &mut Reader<'_>,
    n: usize,
    aligned: bool,
    map: Option<&Mapping>,
) -> Result<Slab<u32>, Error> {
    if aligned {
        skip_padding(r)?;
    }
    match map {
        Some(map) => {
            let at = r.pos;
            r.take(n.checked_mul(4).ok_or_else(|| r.truncated(usize::MAX))?)?;
            Slab::mapped(map, at, n).ok_or_else(|| corrupt("u32 array alignment".into()))
        }
        None => Ok(r.u32s(n)?.into()),
    }
}

/// The zero bytes that bring the reader to the next multiple of [`ALIGN`].
fn skip_padding(r: &mut Reader<'_>) -> Result<(), Error> {
    let n = r.pos.next_multiple_of(ALIGN) - r.pos;
    if r.take(n)?.iter().any(|&b| b != 0) {
        return Err(corrupt("non-zero padding".into()));
    }
    Ok(())
}

fn corrupt(msg: String) -> Error {
    FormatError::Corrupt(msg).into()
}

fn read_store(
    r: &mut Reader<'_>,
    version: u32,
    map: Option<&Mapping>,
) -> Result<NgramStore, Error> {
    let aligned = version >= 4;
    let n_max = r.u32()? as usize;
    if !(1..=MAX_N).contains(&n_max) {
        return Err(corrupt(format!("n_max {n_max}")));
    }
    let min_count = r.u32()?;
    let vocab = r.u32()?;
    let config = DrafterConfig {
        n_max,
        min_count,
        vocab_size: (vocab != 0).then_some(vocab),
        corpus_weight: r.f64()?,
        min_prob: r.f64()?,
    };
    config.validate().map_err(|e| corrupt(e.to_string()))?;
    let corpus_tokens = r.u64()?;
    let sequences = r.u64()?;
    let mut levels = Vec::with_capacity(n_max + 1);
    for depth in 0..=n_max {
        let n = usize::try_from(r.u64()?).map_err(|_| corrupt("level size".into()))?;
        let mut level = Level {
            tokens: read_packed(r, n, aligned, map)?,
            counts: read_packed(r, n, aligned, map)?,
            ..Level::default()
        };
        if depth < n_max {
            let starts = n
                .checked_add(1)
                .ok_or_else(|| corrupt("level size".into()))?;
            level.child_start = read_u32s(r, starts, aligned, map)?;
            level.totals = read_packed(r, n, aligned, map)?;
            level.best = read_packed(r, n, aligned, map)?;
            if aligned {
                level.runner_up = read_packed(r, n, aligned, map)?;
            }
        }
        levels.push(level);
    }
    validate_levels(&levels, config.id_limit(), aligned).map_err(corrupt)?;
    if !aligned {
        crate::store::fill_runner_up(&mut levels);
    }
    Ok(NgramStore {
        config,
        levels,
        corpus_tokens,
        sequences,
        copy: None,
        neighbours: None,
    })
}

/// Checks the invariants `NgramStore` lookups index with, without trusting the file, and
/// (`runner_up`: stored in the file) that every runner-up count is the one its children give.
fn validate_levels(levels: &[Level], limit: u32, runner_up: bool) -> Result<(), String> {
    if levels[0].len() != 1 {
        return Err("the root level must hold one node".into());
    }
    for depth in 0..levels.len() - 1 {
        let (level, next) = (&levels[depth], &levels[depth + 1]);
        let cs = &level.child_start;
        if cs.len() != level.len() + 1
            || cs.first() != Some(&0)
            || cs.last().map(|&e| e as usize) != Some(next.len())
        {
            return Err(format!(
                "depth {depth}: child ranges do not cover the next level"
            ));
        }
        // Non-decreasing ranges ending at next.len() keep every range inside the next level:
        // checked for the whole level before any range is used.
        if cs.windows(2).any(|w| w[0] > w[1]) {
            return Err(format!("depth {depth}: child ranges decrease"));
        }
        for i in 0..level.len() {
            let (s, e) = (cs[i] as usize, cs[i + 1] as usize);
            let (mut prev, mut sorted, mut total, mut second) = (None, true, 0u64, 0);
            let best_at = s + level.best.get(i) as usize;
            next.tokens.for_each_in(s, e, |j, t| {
                sorted &= t < limit && prev.is_none_or(|p| p < t);
                prev = Some(t);
                let count = next.counts.get(j);
                total += u64::from(count);
                if j != best_at {
                    second = second.max(count);
                }
            });
            if !sorted {
                return Err(format!(
                    "depth {}: children unsorted or out of vocabulary",
                    depth + 1
                ));
            }
            let best = level.best.get(i) as usize;
            let best_ok = if s == e { best == 0 } else { best < e - s };
            if total != u64::from(level.totals.get(i)) || !best_ok {
                return Err(format!("depth {depth}: totals or best child inconsistent"));
            }
            if runner_up && level.runner_up.get(i) != second {
                return Err(format!("depth {depth}: runner-up count inconsistent"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::Corpus;

    fn sample() -> NgramStore {
        let corpus =
            Corpus::from_sequences(&[vec![1, 2, 3, 4], vec![1, 2, 3, 5], vec![2, 3]], Some(10))
                .unwrap();
        let config = DrafterConfig {
            min_count: 1,
            vocab_size: Some(10),
            ..DrafterConfig::default()
        };
        NgramStore::build(&corpus, &config).unwrap()
    }

    #[test]
    fn round_trip_is_identical() {
        let s = sample();
        assert_eq!(NgramStore::from_bytes(&s.to_bytes()).unwrap(), s);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.tasc");
        s.save(&path).unwrap();
        assert_eq!(NgramStore::load(&path).unwrap(), s);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn long_names_save_and_special_files_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join(format!("{}.tasc", "d".repeat(245)));
        sample().save(&long).unwrap();
        sample().save(&long).unwrap();
        assert_eq!(NgramStore::load(&long).unwrap(), sample());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let err = sample().save(&sub).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(sub.is_dir());
        if Path::new("/dev/null").exists() {
            let err = sample()
                .save(Path::new("/dev/null"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a regular file"), "{err}");
        }
    }

    #[test]
    fn a_large_file_of_another_format_is_refused_by_its_magic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(1 << 34).unwrap(); // sparse: 16 GiB of zeros on disk costs nothing
        let err = NgramStore::load(&path).unwrap_err().to_string();
        assert!(err.contains("magic"), "{err}");
    }

    #[test]
    fn a_save_removes_what_killed_saves_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.tasc");
        // a writer that died (no such pid), one still running (this process), another target's
        let dead = dir.path().join(".d.tasc.999999999.3.tmp");
        let running = dir
            .path()
            .join(format!(".d.tasc.{}.7.tmp", std::process::id()));
        let other = dir.path().join(".e.tasc.999999999.3.tmp");
        for f in [&dead, &running, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        sample().save(&path).unwrap();
        let on_linux = Path::new("/proc/self").exists();
        assert_eq!(dead.exists(), !on_linux);
        assert!(running.exists() && other.exists() && path.exists());
    }

    #[test]
    fn version_3_files_load_and_keep_the_content_checksum() {
        let s = with_pairs();
        let v3 = s.to_bytes_as(3);
        assert_eq!(NgramStore::from_bytes(&v3).unwrap(), s);
        assert_eq!(
            s.content_crc(),
            crc32fast::hash(&v3[..v3.len() - 4]),
            "the content checksum is a version 3 file's own (learned state stays tied to it)"
        );
        let v4 = NgramStore::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(v4.content_crc(), s.content_crc());
        assert_ne!(v3, s.to_bytes());
    }

    #[test]
    fn mapped_stores_read_every_array_in_place_and_equal_loaded_ones() {
        let s = with_pairs();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.tasc");
        s.save(&path).unwrap();
        let mapped = NgramStore::load_mapped(&path).unwrap();
        assert_eq!(mapped, s);
        assert!(mapped.is_mapped() && !s.is_mapped());
        for (depth, level) in mapped.levels.iter().enumerate() {
            let mut arrays = vec![&level.tokens, &level.counts];
            if depth < mapped.n_max() {
                arrays.extend([&level.totals, &level.best, &level.runner_up]);
                assert!(level.child_start.is_mapped(), "depth {depth} child_start");
            }
            assert!(arrays.iter().all(|a| a.is_mapped()), "depth {depth}");
        }
        let clone = mapped.clone();
        assert!(clone.is_mapped());
        assert_eq!(clone.to_bytes(), s.to_bytes());
    }

    #[test]
    fn saving_over_a_mapped_file_leaves_the_mapped_store_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.tasc");
        let first = sample();
        first.save(&path).unwrap();
        let mapped = NgramStore::load_mapped(&path).unwrap();
        let second = with_pairs();
        let other = NgramStore::build(
            &Corpus::from_sequences(&[vec![7, 8, 9, 7, 8, 9]], Some(10)).unwrap(),
            &first.config,
        )
        .unwrap();
        for replacement in [&second, &other] {
            replacement.save(&path).unwrap();
            assert_eq!(mapped, first, "a save renames a new file over the old one");
            assert_eq!(&NgramStore::load_mapped(&path).unwrap(), replacement);
        }
    }

    #[test]
    fn only_version_4_regular_files_are_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.tasc");
        std::fs::write(&path, sample().to_bytes_as(3)).unwrap();
        let err = NgramStore::load_mapped(&path).unwrap_err();
        assert!(
            matches!(&err, Error::Format(FormatError::NotMappable(m)) if m.contains("version 3")),
            "{err}"
        );
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(
            NgramStore::load_mapped(&path),
            Err(Error::Format(FormatError::BadMagic))
        ));
        let err = NgramStore::load_mapped(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        if Path::new("/dev/zero").exists() {
            let err = NgramStore::load_mapped(Path::new("/dev/zero"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a regular file"), "{err}");
        }
    }

    #[test]
    fn a_forged_runner_up_count_is_refused() {
        let s = sample();
        let root = &s.levels[0];
        assert!(
            root.runner_up.get(0) > 0,
            "the sample's root has a runner-up"
        );
        let mut bytes = s.to_bytes();
        bytes.truncate(bytes.len() - 4);
        // the root's runner-up: the root level's last array (after the 56-byte header, the node
        // count, tokens, counts, child starts, totals and best), one element of one byte
        let mut r = Reader {
            bytes: &bytes,
            pos: 56 + 8,
        };
        let skip_packed = |r: &mut Reader<'_>| {
            let width = r.take(1).unwrap()[0] as usize;
            let len = r.u64().unwrap() as usize;
            skip_padding(r).unwrap();
            let at = r.pos;
            r.take(width * len).unwrap();
            at
        };
        skip_packed(&mut r);
        skip_packed(&mut r);
        skip_padding(&mut r).unwrap();
        r.take(8).unwrap(); // two child starts
        skip_packed(&mut r);
        skip_packed(&mut r);
        let at = skip_packed(&mut r);
        assert_eq!(u32::from(bytes[at]), root.runner_up.get(0));
        bytes[at] += 1;
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            NgramStore::from_bytes(&bytes),
            Err(Error::Format(FormatError::Corrupt(m))) if m.contains("runner-up")
        ));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        for bytes in [sample().to_bytes(), sample().to_bytes_as(3)] {
            every_truncation_and_bit_flip_of(&bytes);
        }
    }

    fn every_truncation_and_bit_flip_of(bytes: &[u8]) {
        let bytes = bytes.to_vec();
        for n in 0..bytes.len() {
            assert!(
                NgramStore::from_bytes(&bytes[..n]).is_err(),
                "truncated at {n}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(NgramStore::from_bytes(&b).is_err(), "flipped byte {i}");
        }
    }

    #[test]
    fn wrong_version_is_reported() {
        for version in [0u8, FORMAT_VERSION as u8 + 1] {
            let mut bytes = sample().to_bytes();
            bytes[8] = version;
            assert!(matches!(
                NgramStore::from_bytes(&bytes),
                Err(Error::Format(FormatError::UnsupportedVersion { found })) if found == u32::from(version)
            ));
        }
    }

    /// `store` (without pairs) as version 1 wrote it: no copy section.
    fn version_1(store: &NgramStore) -> Vec<u8> {
        let mut bytes = store.to_bytes_as(3);
        // checksum, two empty copy section counts, window, empty pairs count
        bytes.truncate(bytes.len() - 4 - 32);
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn with_copy() -> NgramStore {
        // requests 1 2 <name> 3, answers that start with the name
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..5u32)
            .map(|i| (vec![1, 2, 5 + i, 6, 3], vec![5 + i, 6, 4]))
            .collect();
        let copy = CopyIndex::build(pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice())));
        assert!(!copy.is_empty());
        sample().with_copy(copy)
    }

    #[test]
    fn version_1_files_load_and_the_copy_section_round_trips() {
        let old = sample();
        assert_eq!(NgramStore::from_bytes(&version_1(&old)).unwrap(), old);
        let s = with_copy();
        let back = NgramStore::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back, s);
        assert!(back.copy_index().is_some());
    }

    #[test]
    fn forged_copy_sections_are_refused() {
        let s = with_copy();
        let good = s.to_bytes();
        let body = good.len() - 4;
        let enders = s.copy_index().unwrap().enders().len();
        // the first anchor's share (after the anchor count, its key and tokens)
        let section =
            body - 8 - 8 - 8 - 4 * enders - 20 * s.copy_index().unwrap().anchors().len() - 8;
        let share_at = section + 8 + 16;
        let resign = |mut b: Vec<u8>| {
            b.truncate(body);
            let crc = crc32fast::hash(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            b
        };
        let mut bad = good.clone();
        bad[share_at..share_at + 4].copy_from_slice(&f32::NAN.to_bits().to_le_bytes());
        assert!(NgramStore::from_bytes(&resign(bad)).is_err());
        let mut bad = good.clone();
        bad[section..section + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(NgramStore::from_bytes(&resign(bad)).is_err());
        let mut bad = good.clone();
        // the first anchor's tokens: ids past the vocabulary (10)
        bad[section + 16..section + 24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(NgramStore::from_bytes(&resign(bad)).is_err());
    }

    fn with_pairs() -> NgramStore {
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..5u32)
            .map(|i| (vec![1, 2, 5 + i, 6, 3], vec![5 + i, 6, 4]))
            .collect();
        with_copy().with_neighbours(NeighbourIndex::build(
            pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice())),
        ))
    }

    /// `store` (without pairs) as version 2 wrote it: no pairs section.
    fn version_2(store: &NgramStore) -> Vec<u8> {
        let mut bytes = store.to_bytes_as(3);
        bytes.truncate(bytes.len() - 4 - 8);
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn version_2_files_load_and_the_pairs_section_round_trips() {
        let old = with_copy();
        assert_eq!(NgramStore::from_bytes(&version_2(&old)).unwrap(), old);
        let s = with_pairs();
        let back = NgramStore::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.neighbour_index().unwrap().len(), 5);
    }

    #[test]
    fn forged_pairs_sections_are_refused() {
        let s = with_pairs();
        let good = s.to_bytes();
        let body = good.len() - 4;
        // 5 pairs of 5 + 3 ids, each side with its length
        let section = body - 8 - 5 * (4 * 5 + 4 * 3 + 8);
        assert_eq!(good[section..section + 8], 5u64.to_le_bytes());
        let resign = |mut b: Vec<u8>| {
            b.truncate(body);
            let crc = crc32fast::hash(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            b
        };
        let mut bad = good.clone();
        bad[section..section + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(NgramStore::from_bytes(&resign(bad)).is_err());
        let mut bad = good.clone();
        // the first request's length: past the file's end
        bad[section + 8..section + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(NgramStore::from_bytes(&resign(bad)).is_err());
        let mut bad = good.clone();
        // the first request's first id: past the vocabulary (10)
        bad[section + 12..section + 16].copy_from_slice(&10u32.to_le_bytes());
        assert!(matches!(
            NgramStore::from_bytes(&resign(bad)),
            Err(Error::Format(FormatError::Corrupt(m))) if m.contains("pair id")
        ));
    }

    #[test]
    fn forged_checksum_cannot_smuggle_bad_structure() {
        let s = sample();
        let mut bytes = s.to_bytes_as(3);
        bytes.truncate(bytes.len() - 4);
        // corrupt the first child token at depth 1 to exceed the vocabulary, then re-sign
        // header 56, root level 56 (count, 3 one-byte packed arrays, 2 child starts), depth-1 node
        // count 8, then the depth-1 token array: width byte, length, first token
        let pos = 56 + 56 + 8 + 1 + 8;
        assert_eq!(bytes[pos - 9], 1, "one-byte tokens");
        bytes[pos] = 99;
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            NgramStore::from_bytes(&bytes),
            Err(Error::Format(FormatError::Corrupt(m))) if m.contains("vocabulary")
        ));
    }

    /// Re-signed corruptions of a real store (bit flips, random bytes, single u32 fields such as
    /// `child_start` entries set to random values) never panic: each is refused with a
    /// `FormatError` or loads into a store whose every lookup works.
    #[test]
    fn resigned_corruptions_never_panic() {
        let seqs: Vec<Vec<u32>> = (0..60u32)
            .map(|i| (0..(5 + i % 7)).map(|j| (i * 7 + j * 3) % 40).collect())
            .collect();
        let corpus = Corpus::from_sequences(&seqs, Some(300)).unwrap();
        let config = DrafterConfig {
            min_count: 1,
            vocab_size: Some(300),
            ..DrafterConfig::default()
        };
        // with copy and pairs sections, so that their corruptions are exercised too
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..8u32)
            .map(|i| (vec![1, 2, 50 + i, 60 + i, 3], vec![50 + i, 60 + i, 4]))
            .collect();
        let copy = CopyIndex::build(pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice())));
        let near = NeighbourIndex::build(pairs.iter().map(|(r, a)| (r.as_slice(), a.as_slice())));
        let good = NgramStore::build(&corpus, &config)
            .unwrap()
            .with_copy(copy)
            .with_neighbours(near)
            .to_bytes();
        let body_len = good.len() - 4;
        let dir = tempfile::tempdir().unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut refused, mut loaded) = (0, 0);
        for round in 0..4000 {
            let mut bytes = good[..body_len].to_vec();
            match round % 3 {
                0 => {
                    for _ in 0..1 + next() % 4 {
                        let i = 12 + (next() as usize) % (body_len - 12);
                        bytes[i] ^= 1 << (next() % 8);
                    }
                }
                1 => {
                    let i = 12 + (next() as usize) % (body_len - 12);
                    bytes[i] = next() as u8;
                }
                _ => {
                    let i = 12 + (next() as usize) % (body_len - 16);
                    let v = (next() % 64) as u32;
                    bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            // every fourth file is read in place from a mapping, the rest from bytes
            let load = |bytes: &[u8]| {
                if round % 4 != 0 {
                    return NgramStore::from_bytes(bytes);
                }
                let path = dir.path().join(format!("{round}.tasc"));
                std::fs::write(&path, bytes).unwrap();
                NgramStore::load_mapped(&path)
            };
            let outcome = std::panic::catch_unwind(|| match load(&bytes) {
                Err(Error::Format(_)) => false,
                Err(e) => panic!("unexpected error kind: {e}"),
                Ok(store) => {
                    let ctx = crate::context::ContextIndex::new(store.n_max(), &[1, 8, 15]);
                    for history in [&[][..], &[1], &[7, 14], &[0, 3, 6, 9], &[299, 298]] {
                        let _ = store.longest_match_depth(history);
                    }
                    crate::draft::propose(&store, &ctx, 8, 0.75, 0.0).unwrap();
                    if let Some(index) = store.neighbour_index() {
                        let nearest = index.session(&[1, 2, 52, 62, 3], 8, None);
                        let src = crate::neighbours::NeighbourSource {
                            nearest: &nearest,
                            stats: None,
                        };
                        let _ = src.vote(&[3, 52, 62]);
                    }
                    let _ = store.stats();
                    let _ = NgramStore::from_bytes(&store.to_bytes()).unwrap();
                    true
                }
            });
            match outcome {
                Ok(true) => loaded += 1,
                Ok(false) => refused += 1,
                Err(_) => panic!("round {round}: a corrupted file panicked"),
            }
        }
        assert!(
            refused > 1000 && loaded > 0,
            "refused {refused}, loaded {loaded}"
        );
    }
}
