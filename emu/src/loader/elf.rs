//! A minimal ELF reader for loaders: the header and the PT_LOAD program
//! headers of little-endian ELF32 (x86) and ELF64 (x86-64) files, with every
//! offset bounds-checked (System V ABI, "ELF header" and "Program header").

use super::LoadError;

/// A loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// File offset of the contents.
    pub offset: u64,
    /// Virtual address.
    pub vaddr: u64,
    /// Physical address.
    pub paddr: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory (the rest zero-filled).
    pub memsz: u64,
}

/// What a loader needs of an ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elf {
    /// 64-bit class.
    pub is64: bool,
    /// Entry point (virtual).
    pub entry: u64,
    /// PT_LOAD segments in file order.
    pub segments: Vec<Segment>,
}

const PT_LOAD: u32 = 1;

fn rd(b: &[u8], off: usize, n: usize, what: &str) -> Result<u64, LoadError> {
    let s = off
        .checked_add(n)
        .and_then(|end| b.get(off..end))
        .ok_or_else(|| {
            LoadError(format!(
                "truncated ELF: {what} lies beyond the end of the file"
            ))
        })?;
    let mut v = [0u8; 8];
    v[..n].copy_from_slice(s);
    Ok(u64::from_le_bytes(v))
}

/// True if `image` starts with the ELF magic.
pub fn is_elf(image: &[u8]) -> bool {
    image.starts_with(b"\x7fELF")
}

/// Parses an ELF image.
pub fn parse(image: &[u8]) -> Result<Elf, LoadError> {
    if !is_elf(image) {
        return Err(LoadError("not an ELF file".into()));
    }
    let class = rd(image, 4, 1, "the ELF identification")?;
    let data = rd(image, 5, 1, "the ELF identification")?;
    if data != 1 {
        return Err(LoadError("big-endian ELF files are not x86 images".into()));
    }
    let is64 = match class {
        1 => false,
        2 => true,
        c => return Err(LoadError(format!("unknown ELF class {c}"))),
    };
    let machine = rd(image, 18, 2, "the ELF header")?;
    if !matches!(machine, 3 | 62) {
        return Err(LoadError(format!(
            "ELF machine {machine} is not x86 (3) or x86-64 (62)"
        )));
    }
    let (entry, phoff, phentsize, phnum) = if is64 {
        (
            rd(image, 24, 8, "the ELF header")?,
            rd(image, 32, 8, "the ELF header")?,
            rd(image, 54, 2, "the ELF header")?,
            rd(image, 56, 2, "the ELF header")?,
        )
    } else {
        (
            rd(image, 24, 4, "the ELF header")?,
            rd(image, 28, 4, "the ELF header")?,
            rd(image, 42, 2, "the ELF header")?,
            rd(image, 44, 2, "the ELF header")?,
        )
    };
    let min_ph = if is64 { 56 } else { 32 };
    if phnum > 0 && phentsize < min_ph {
        return Err(LoadError(format!(
            "ELF program-header entries of {phentsize} bytes are too small"
        )));
    }
    let mut segments = Vec::new();
    for k in 0..phnum {
        let p = phoff
            .checked_add(k * phentsize)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| LoadError("truncated ELF: program header offset overflows".into()))?;
        if !matches!(p.checked_add(min_ph as usize), Some(end) if end <= image.len()) {
            return Err(LoadError(
                "truncated ELF: a program header lies beyond the end of the file".into(),
            ));
        }
        let typ = rd(image, p, 4, "a program header")? as u32;
        if typ != PT_LOAD {
            continue;
        }
        let s = if is64 {
            Segment {
                offset: rd(image, p + 8, 8, "a program header")?,
                vaddr: rd(image, p + 16, 8, "a program header")?,
                paddr: rd(image, p + 24, 8, "a program header")?,
                filesz: rd(image, p + 32, 8, "a program header")?,
                memsz: rd(image, p + 40, 8, "a program header")?,
            }
        } else {
            Segment {
                offset: rd(image, p + 4, 4, "a program header")?,
                vaddr: rd(image, p + 8, 4, "a program header")?,
                paddr: rd(image, p + 12, 4, "a program header")?,
                filesz: rd(image, p + 16, 4, "a program header")?,
                memsz: rd(image, p + 20, 4, "a program header")?,
            }
        };
        if s.filesz > s.memsz {
            return Err(LoadError(format!(
                "ELF segment at {:#x} has file size {:#x} above its memory size {:#x}",
                s.paddr, s.filesz, s.memsz
            )));
        }
        let end = s.offset.checked_add(s.filesz);
        if end.is_none_or(|e| e > image.len() as u64) {
            return Err(LoadError(format!(
                "truncated ELF: segment contents at file offset {:#x} (+{:#x}) lie beyond the end of the file ({} bytes)",
                s.offset,
                s.filesz,
                image.len()
            )));
        }
        segments.push(s);
    }
    if segments.is_empty() {
        return Err(LoadError("ELF file has no loadable segment".into()));
    }
    Ok(Elf {
        is64,
        entry,
        segments,
    })
}
