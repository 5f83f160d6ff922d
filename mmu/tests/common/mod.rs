//! Test support: random memory full of plausible paging-structure entries, and
//! independent reference walkers (in `reference.rs`).
#![allow(dead_code)]

pub mod builder;
pub mod reference;

use mmu::paging::{EntrySize, PhysMemory};
use mmu::PhysAddr;
use std::collections::BTreeMap;

/// What kind of entries a region of random memory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Two 32-bit paging entries per 8 bytes.
    E32,
    /// 64-bit guest-format entries (PAE, IA-32e, NPT).
    G64,
    /// EPT entries.
    Ept,
}

/// Base of the pool of guest table frames (in the guest's physical space).
pub const GUEST_POOL: u64 = 0x0010_0000;
/// Base of the pool of nested table frames (machine-physical).
pub const NESTED_POOL: u64 = 0x7f00_0000;
/// Frames per pool (the nested pool has two per level, levels 1 to 5).
pub const POOL: u64 = 8;
/// Frames of the nested pool.
pub const NESTED_FRAMES: u64 = 10;

/// Memory whose every 8-byte granule is a pseudo-random entry (of the
/// region's profile) until written. Deterministic in its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandMem {
    pub seed: u64,
    pub guest: Profile,
    pub nested: Profile,
    pub maxphy: u32,
    pub written: BTreeMap<u64, u64>,
    /// Probability knobs for guest-profile regions.
    pub guest_knobs: Knobs,
    /// Probability knobs for the nested tables.
    pub nested_knobs: Knobs,
}

/// Probabilities out of 256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knobs {
    /// Present (P, or EPT bits 2:0 = 111b most of the time).
    pub present: u64,
    /// PS set.
    pub ps: u64,
    /// Writable / user.
    pub rw_us: u64,
    /// A reserved bit set somewhere.
    pub rsvd: u64,
    /// EPT: bits 6:3 (memory type, ignore PAT) set.
    pub mt: u64,
}

impl Knobs {
    /// Many faults of every kind.
    pub const HARSH: Knobs = Knobs {
        present: 232,
        ps: 40,
        rw_us: 205,
        rsvd: 10,
        mt: 56,
    };
    /// Mostly successful walks, so deep 2-D walks get somewhere.
    pub const KIND: Knobs = Knobs {
        present: 253,
        ps: 8,
        rw_us: 254,
        rsvd: 2,
        mt: 3,
    };
}

pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl RandMem {
    pub fn new(seed: u64, guest: Profile, nested: Profile, maxphy: u32) -> Self {
        Self {
            seed,
            guest,
            nested,
            maxphy,
            written: BTreeMap::new(),
            guest_knobs: Knobs::HARSH,
            nested_knobs: Knobs::HARSH,
        }
    }

    /// The nested level whose tables live at `a`, if `a` is in the nested
    /// pool.
    fn nested_level(a: u64) -> Option<u32> {
        if (NESTED_POOL..NESTED_POOL + NESTED_FRAMES * 0x1000).contains(&a) {
            Some((((a - NESTED_POOL) >> 12) / 2 + 1) as u32)
        } else {
            None
        }
    }

    /// The granule at 8-byte-aligned `a`.
    pub fn granule(&self, a: u64) -> u64 {
        if let Some(v) = self.written.get(&a) {
            return *v;
        }
        let h = splitmix(self.seed ^ a.wrapping_mul(0x2545_f491_4f6c_dd1d));
        match Self::nested_level(a) {
            Some(level) => match self.nested {
                Profile::Ept => self.gen_ept(h, self.nested_knobs, level),
                _ => self.gen64(h, self.nested_knobs, Some(level)),
            },
            None => match self.guest {
                Profile::E32 => {
                    let lo = self.gen32(h, self.guest_knobs);
                    let hi = self.gen32(splitmix(h), self.guest_knobs);
                    lo as u64 | ((hi as u64) << 32)
                }
                Profile::G64 => self.gen64(h, self.guest_knobs, None),
                Profile::Ept => self.gen_ept(h, self.guest_knobs, 1),
            },
        }
    }

    fn chance(h: u64, shift: u32, p: u64) -> bool {
        (h >> shift) & 0xff < p
    }

    fn gen32(&self, h: u64, k: Knobs) -> u32 {
        let mut e: u32 = 0;
        if Self::chance(h, 0, k.present) {
            e |= 1;
        }
        if Self::chance(h, 8, k.rw_us) {
            e |= 2;
        }
        if Self::chance(h, 16, k.rw_us) {
            e |= 4;
        }
        e |= ((h >> 24) as u32) & 0x178; // PWT, PCD, A, D, G (bits 3-6, 8)
        if Self::chance(h, 32, k.ps) {
            e |= 0x80;
        }
        let addr = if (h >> 40) & 1 == 0 {
            (GUEST_POOL + ((h >> 41) % POOL) * 0x1000) as u32
        } else {
            // A 4-MiB-aligned frame with random PSE-36 bits and PAT.
            let mut a = ((h >> 42) as u32) & 0xffc0_0000;
            a |= (((h >> 52) as u32) & 0xff) << 13;
            if (h >> 60) & 1 != 0 {
                a |= 1 << 12;
            }
            if Self::chance(h, 56, k.rsvd * 4) {
                a |= 1 << 21; // reserved with M = 40
            }
            a
        };
        e | addr
    }

    /// An address field. `level` is the nested level of the table holding
    /// the entry (None for guest tables): non-leaf nested entries point into
    /// the next level's frames most of the time, so deep walks get somewhere.
    fn addr64(&self, h: u64, level: Option<u32>, leaf: bool) -> u64 {
        if let Some(l) = level {
            if !leaf && l > 1 && (h >> 36) & 0xf != 0 {
                return nested_frame(l - 1, h >> 37);
            }
        }
        match (h >> 40) & 3 {
            0 | 1 => GUEST_POOL + ((h >> 42) % POOL) * 0x1000,
            2 => {
                // Large-page-aligned frame below MAXPHYADDR, sometimes with
                // the PAT bit.
                let mask = ((1u64 << self.maxphy) - 1) & !0x1f_ffff;
                let mut a = splitmix(h) & mask;
                if (h >> 44) & 3 == 0 {
                    a &= !0x3fff_ffff;
                }
                if (h >> 46) & 1 != 0 {
                    a |= 1 << 12;
                }
                a
            }
            _ => splitmix(h ^ 1) & ((1u64 << self.maxphy) - 1) & !0xfff,
        }
    }

    fn gen64(&self, h: u64, k: Knobs, level: Option<u32>) -> u64 {
        let mut e = 0u64;
        if Self::chance(h, 0, k.present) {
            e |= 1;
        }
        if Self::chance(h, 8, k.rw_us) {
            e |= 2;
        }
        if Self::chance(h, 16, k.rw_us) {
            e |= 4;
        }
        e |= (h >> 24) & 0x178; // PWT, PCD, A, D, G
        if Self::chance(h, 32, k.ps) {
            e |= 0x80;
        }
        let leaf = level == Some(1) || e & 0x80 != 0;
        e |= self.addr64(splitmix(h ^ 0x99), level, leaf);
        let h2 = splitmix(h ^ 0x55);
        if Self::chance(h2, 0, k.rsvd * 3) {
            e |= 1 << 63; // XD
        }
        if Self::chance(h2, 8, 48) {
            e |= splitmix(h2) & (0xf << 59); // protection key
        }
        if Self::chance(h2, 24, k.rsvd) {
            e |= splitmix(h2 ^ 3) & (0x7f << 52); // ignored / reserved in PAE
        }
        if Self::chance(h2, 40, k.rsvd) {
            // A bit at or above MAXPHYADDR.
            let span = 52 - self.maxphy.min(52);
            if span > 0 {
                e |= 1u64 << (self.maxphy + ((h2 >> 48) as u32 % span));
            }
        }
        if Self::chance(h2, 56, k.rsvd) {
            e |= 1 << 13; // reserved in large-page leaves
        }
        e
    }

    fn gen_ept(&self, h: u64, k: Knobs, level: u32) -> u64 {
        let rwx = if Self::chance(h, 0, k.present) {
            match (h >> 8) & 0xf {
                0 => 1,
                1 => 3,
                2 => 4, // execute-only
                3 => 5,
                4 if k.rsvd > 4 => 2, // write-only: misconfigured
                5 if k.rsvd > 4 => (h >> 12) & 7,
                _ => 7,
            }
        } else {
            0
        };
        let mut e = rwx;
        // Bits 6:3 must be clear in non-leaf entries; memory type 0 (UC) is
        // valid in leaves too, so clear them most of the time.
        if Self::chance(h, 16, k.mt) {
            let mt = if Self::chance(h, 24, 200) {
                6
            } else {
                (h >> 32) & 7
            };
            e |= mt << 3;
            if (h >> 35) & 1 != 0 {
                e |= 1 << 6; // ignore PAT
            }
        }
        if Self::chance(h, 40, k.ps) {
            e |= 0x80;
        }
        e |= (h >> 40) & (0xb << 8); // A, D, bit 11
        if (h >> 48) & 1 != 0 {
            e |= 1 << 10; // user execute
        }
        let leaf = level == 1 || e & 0x80 != 0;
        e |= self.addr64(splitmix(h), Some(level), leaf);
        let h2 = splitmix(h ^ 0x77);
        if Self::chance(h2, 40, k.rsvd) {
            let span = 52 - self.maxphy.min(52);
            if span > 0 {
                e |= 1u64 << (self.maxphy + ((h2 >> 48) as u32 % span));
            }
        }
        e
    }

    /// Reads `n` (4 or 8) bytes.
    pub fn read(&self, a: u64, n: u32) -> u64 {
        let g = self.granule(a & !7);
        if n == 8 {
            g
        } else if a & 4 == 0 {
            g & 0xffff_ffff
        } else {
            g >> 32
        }
    }

    /// Writes `n` (4 or 8) bytes.
    pub fn write(&mut self, a: u64, n: u32, v: u64) {
        let g = self.granule(a & !7);
        let new = if n == 8 {
            v
        } else if a & 4 == 0 {
            (g & !0xffff_ffff) | (v & 0xffff_ffff)
        } else {
            (g & 0xffff_ffff) | (v << 32)
        };
        self.written.insert(a & !7, new);
    }
}

impl PhysMemory for RandMem {
    fn read_entry(&mut self, pa: PhysAddr, size: EntrySize) -> u64 {
        self.read(pa.0, size.bytes() as u32)
    }
    fn cmpxchg_entry(&mut self, pa: PhysAddr, size: EntrySize, old: u64, new: u64) -> bool {
        let n = size.bytes() as u32;
        if self.read(pa.0, n) != old {
            return false;
        }
        self.write(pa.0, n, new);
        true
    }
}

/// A pool frame of the guest tables.
pub fn guest_frame(k: u64) -> u64 {
    GUEST_POOL + (k % POOL) * 0x1000
}

/// A frame of the nested pool holding level-`level` tables.
pub fn nested_frame(level: u32, k: u64) -> u64 {
    NESTED_POOL + (((level as u64 - 1) * 2) + (k & 1)) * 0x1000
}
