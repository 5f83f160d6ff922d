//! Guest-physical memory: RAM and the map of where it lives.
//!
//! RAM is one zero-initialized host allocation. Hosts commit zero pages lazily
//! (the allocator asks the OS for fresh zeroed mappings), so a 4 GiB guest that
//! touches 100 MiB costs about 100 MiB of host memory.
//!
//! The map follows the PC layout QEMU's `pc` machine uses: RAM from 0 up to at
//! most 3.5 GiB, the rest above 4 GiB, leaving the hole below 4 GiB for the APIC,
//! I/O APIC and other MMIO.

pub mod access;
pub mod fast;
pub mod paging;

use serde::{Deserialize, Serialize};

/// Where RAM below 4 GiB ends at most.
pub const LOW_RAM_LIMIT: u64 = 0xe000_0000;
/// Where RAM above 4 GiB starts.
pub const HIGH_RAM_BASE: u64 = 0x1_0000_0000;
/// Page size.
pub const PAGE: u64 = 4096;

/// The physical-memory layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryMap {
    /// Bytes of RAM starting at 0.
    pub low: u64,
    /// Bytes of RAM starting at 4 GiB.
    pub high: u64,
}

impl MemoryMap {
    /// The layout for `bytes` of RAM.
    pub fn for_size(bytes: u64) -> Self {
        let low = bytes.min(LOW_RAM_LIMIT);
        Self {
            low,
            high: bytes - low,
        }
    }
    /// Total RAM.
    pub fn total(&self) -> u64 {
        self.low + self.high
    }
    /// The offset of `pa` in the RAM buffer, if `pa` is RAM.
    #[inline(always)]
    pub fn ram_offset(&self, pa: u64) -> Option<u64> {
        if pa < self.low {
            Some(pa)
        } else if pa.wrapping_sub(HIGH_RAM_BASE) < self.high {
            Some(pa - HIGH_RAM_BASE + self.low)
        } else {
            None
        }
    }
    /// The end of RAM in the physical address space (exclusive).
    pub fn top(&self) -> u64 {
        if self.high == 0 {
            self.low
        } else {
            HIGH_RAM_BASE + self.high
        }
    }
}

/// The machine's RAM.
#[derive(Clone)]
pub struct Ram {
    bytes: Vec<u8>,
    /// The layout.
    pub map: MemoryMap,
}

impl core::fmt::Debug for Ram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ram").field("map", &self.map).finish()
    }
}

/// Allocates `n` zeroed bytes, or `None` if the host cannot. The allocator
/// gets fresh zero pages from the OS, which commits them on first touch.
#[allow(unsafe_code)]
fn alloc_zeroed(n: usize) -> Option<Vec<u8>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(n).ok()?;
    // SAFETY: `layout` has a non-zero size (n > 0) and alignment 1.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a live allocation from the global allocator of exactly
    // `n` bytes with alignment 1, all initialized (zeroed); a Vec<u8> with
    // capacity `n` deallocates with that same layout.
    Some(unsafe { Vec::from_raw_parts(p, n, n) })
}

impl Ram {
    /// Allocates `bytes` of zeroed RAM (committed lazily by the host).
    /// Panics if the host cannot provide it; see [`Ram::try_new`].
    pub fn new(bytes: u64) -> Self {
        Self::try_new(bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Allocates `bytes` of zeroed RAM, or says why it cannot.
    pub fn try_new(bytes: u64) -> Result<Self, String> {
        let n = usize::try_from(bytes).map_err(|_| {
            format!("{bytes} bytes of guest RAM do not fit this host's address space")
        })?;
        let bytes_vec = alloc_zeroed(n)
            .ok_or_else(|| format!("the host cannot allocate {} MiB of guest RAM", bytes >> 20))?;
        Ok(Self {
            bytes: bytes_vec,
            map: MemoryMap::for_size(bytes),
        })
    }

    /// Total size.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The RAM buffer offset of physical address `pa`, if it is RAM and `len`
    /// bytes from it stay within the same RAM region.
    #[inline(always)]
    pub fn offset(&self, pa: u64, len: u64) -> Option<usize> {
        let off = self.map.ram_offset(pa)?;
        let end_ok = if pa < self.map.low {
            pa + len <= self.map.low
        } else {
            off + len <= self.size()
        };
        end_ok.then_some(off as usize)
    }

    /// The bytes at buffer offset `off`.
    #[inline(always)]
    pub fn slice(&self, off: usize, len: usize) -> &[u8] {
        &self.bytes[off..off + len]
    }

    /// The bytes at buffer offset `off`, mutably.
    #[inline(always)]
    pub fn slice_mut(&mut self, off: usize, len: usize) -> &mut [u8] {
        &mut self.bytes[off..off + len]
    }

    /// Reads a little-endian value of `N` bytes at buffer offset `off`.
    #[inline(always)]
    pub fn read_le<const N: usize>(&self, off: usize) -> [u8; N] {
        self.bytes[off..off + N].try_into().expect("length N")
    }

    /// Writes `N` bytes at buffer offset `off`.
    #[inline(always)]
    pub fn write_le<const N: usize>(&mut self, off: usize, v: [u8; N]) {
        self.bytes[off..off + N].copy_from_slice(&v);
    }

    /// Reads `size` (1, 2, 4 or 8; other sizes up to 8 take a byte loop)
    /// bytes little-endian at buffer offset `off`. Each common size is a
    /// fixed-width load, not a copy of run-time length.
    #[inline(always)]
    pub fn read_sized(&self, off: usize, size: usize) -> u64 {
        match size {
            8 => u64::from_le_bytes(self.read_le::<8>(off)),
            4 => u32::from_le_bytes(self.read_le::<4>(off)) as u64,
            2 => u16::from_le_bytes(self.read_le::<2>(off)) as u64,
            1 => self.bytes[off] as u64,
            _ => self.bytes[off..off + size]
                .iter()
                .rev()
                .fold(0, |v, &b| v << 8 | b as u64),
        }
    }

    /// Asks the host to bring the cache line at buffer offset `off` into
    /// its caches (a prefetch hint; nothing observable happens, and an
    /// offset past the end is ignored).
    #[inline(always)]
    pub fn prefetch(&self, off: usize) {
        let Some(b) = self.bytes.get(off) else {
            return;
        };
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: PREFETCHT0 is a hint: it never faults and has no
        // architectural effect (SDM Vol. 2B, PREFETCHh), and SSE is part of
        // every x86-64 target; the pointer is to a live byte anyway.
        unsafe {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(b as *const u8 as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = b;
    }

    /// Writes the low `size` (1..=8) bytes of `v` little-endian at buffer
    /// offset `off`, as [`Ram::read_sized`] reads them.
    #[inline(always)]
    pub fn write_sized(&mut self, off: usize, size: usize, v: u64) {
        match size {
            8 => self.write_le::<8>(off, v.to_le_bytes()),
            4 => self.write_le::<4>(off, (v as u32).to_le_bytes()),
            2 => self.write_le::<2>(off, (v as u16).to_le_bytes()),
            1 => self.bytes[off] = v as u8,
            _ => self.bytes[off..off + size].copy_from_slice(&v.to_le_bytes()[..size]),
        }
    }

    /// The whole buffer (for snapshots and the differential tester).
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_splits_at_3_5_gib() {
        let m = MemoryMap::for_size(4 << 30);
        assert_eq!(m.low, LOW_RAM_LIMIT);
        assert_eq!(m.high, (4 << 30) - LOW_RAM_LIMIT);
        assert_eq!(m.ram_offset(0x1000), Some(0x1000));
        assert_eq!(m.ram_offset(0xfee0_0000), None);
        assert_eq!(m.ram_offset(HIGH_RAM_BASE), Some(LOW_RAM_LIMIT));
        assert_eq!(m.ram_offset(m.top()), None);
    }

    #[test]
    fn small_ram_has_no_high_part() {
        let r = Ram::new(16 << 20);
        assert_eq!(r.map.high, 0);
        assert_eq!(r.offset(0xff_fffc, 4), Some(0xff_fffc));
        assert_eq!(r.offset(0xff_fffd, 4), None);
        assert_eq!(r.offset(HIGH_RAM_BASE, 1), None);
    }
}
