//! Modelled translation caches (SDM Vol. 3A 4.10, "Caching translation
//! information"; SDM Vol. 3C 29.4 for VPID- and EPT-tagged mappings; APM Vol. 2
//! 15.16, "TLB control", for ASIDs): first-level instruction and data TLBs, a
//! shared second-level TLB, paging-structure caches for the guest and nested
//! dimensions, and a nested TLB of guest-physical mappings.
//!
//! Sizes and associativity come from a [`TlbConfig`] (serde), with Intel-like
//! and AMD-like presets. These are models, calibrated on published figures, not
//! a description of any one microarchitecture.

pub mod array;
pub mod entry;
pub mod psc;
pub mod scope;

pub use entry::{Tag, TlbEntry, TlbLevel};
pub use psc::{GuestPsc, NestedPsc, NestedTlb, NestedTlbEntry};
pub use scope::{GlobalRule, RootSel, Scope, VpidSel};

use serde::{Deserialize, Serialize};

/// Entries and ways of one array. `ways == entries` is fully associative;
/// `entries == 0` means the structure does not cache that page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// Total entries.
    pub entries: u32,
    /// Ways per set.
    pub ways: u32,
}

impl Geometry {
    /// `entries` entries, `ways`-way set associative.
    pub const fn new(entries: u32, ways: u32) -> Self {
        Self { entries, ways }
    }
    /// No entries.
    pub const NONE: Geometry = Geometry::new(0, 0);

    fn validate(&self, what: &str) -> Result<(), TlbConfigError> {
        if self.entries == 0 {
            return Ok(());
        }
        let ok = self.ways > 0
            && self.ways <= 64
            && (self.entries / self.ways) * self.ways == self.entries
            && (self.entries / self.ways).is_power_of_two();
        if ok {
            Ok(())
        } else {
            Err(TlbConfigError(format!(
                "{what}: {} entries in {}-way sets must give a power-of-two number of sets (ways 1-64)",
                self.entries, self.ways
            )))
        }
    }
}

/// One TLB level: arrays for 4-KiB, 2/4-MiB and 1-GiB translations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbLevelConfig {
    /// 4-KiB pages.
    pub small: Geometry,
    /// 2-MiB pages (and 4-MiB pages of 32-bit paging, held as 2-MiB halves).
    pub large: Geometry,
    /// 1-GiB pages.
    pub huge: Geometry,
}

/// Sizes of the paging-structure caches of one dimension, by level of the
/// cached entry. Each is fully associative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PscConfig {
    /// PML5E cache.
    pub pml5: u32,
    /// PML4E cache.
    pub pml4: u32,
    /// PDPTE cache.
    pub pdpt: u32,
    /// PDE cache.
    pub pd: u32,
}

impl PscConfig {
    /// No paging-structure caches.
    pub const NONE: PscConfig = PscConfig {
        pml5: 0,
        pml4: 0,
        pdpt: 0,
        pd: 0,
    };

    /// Entries of the cache for entries at `level`.
    pub fn entries(&self, level: u8) -> u32 {
        match level {
            5 => self.pml5,
            4 => self.pml4,
            3 => self.pdpt,
            2 => self.pd,
            _ => 0,
        }
    }
}

/// The whole translation-cache configuration of a CPU model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlbConfig {
    /// First-level instruction TLB.
    pub itlb: TlbLevelConfig,
    /// First-level data TLB.
    pub dtlb: TlbLevelConfig,
    /// Shared second-level TLB.
    pub stlb: TlbLevelConfig,
    /// Guest-dimension paging-structure caches.
    pub guest_psc: PscConfig,
    /// Nested-dimension (EPT/NPT) paging-structure caches.
    pub nested_psc: PscConfig,
    /// Nested TLB: guest-physical to machine-physical mappings of 4-KiB
    /// guest-physical pages (SDM Vol. 3C 29.4.1, "guest-physical mappings").
    pub nested_tlb: Geometry,
}

/// A configuration the model cannot build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlbConfigError(pub String);

impl core::fmt::Display for TlbConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid TLB configuration: {}", self.0)
    }
}

impl std::error::Error for TlbConfigError {}

impl TlbConfig {
    /// Intel-like (Skylake-class figures): ITLB 128x8 4K + 8 large;
    /// DTLB 64x4 4K, 32x4 2M, 4 1G; STLB 1536x12 4K and 2M, 16x4 1G;
    /// PML4/PDPTE/PDE caches of 2/4/32 entries.
    pub fn intel() -> Self {
        Self {
            itlb: TlbLevelConfig {
                small: Geometry::new(128, 8),
                large: Geometry::new(8, 8),
                huge: Geometry::NONE,
            },
            dtlb: TlbLevelConfig {
                small: Geometry::new(64, 4),
                large: Geometry::new(32, 4),
                huge: Geometry::new(4, 4),
            },
            stlb: TlbLevelConfig {
                small: Geometry::new(1536, 12),
                large: Geometry::new(1536, 12),
                huge: Geometry::new(16, 4),
            },
            guest_psc: PscConfig {
                pml5: 2,
                pml4: 2,
                pdpt: 4,
                pd: 32,
            },
            nested_psc: PscConfig {
                pml5: 2,
                pml4: 2,
                pdpt: 4,
                pd: 32,
            },
            nested_tlb: Geometry::new(64, 4),
        }
    }

    /// AMD-like (Zen 2-class figures): fully associative 64-entry L1 ITLB and
    /// DTLB for every size; a 2048x16 L2 for 4K and 2M, 64 1G; a 64-entry
    /// page-walk cache split over the levels.
    pub fn amd() -> Self {
        let l1 = TlbLevelConfig {
            small: Geometry::new(64, 64),
            large: Geometry::new(64, 64),
            huge: Geometry::new(64, 64),
        };
        Self {
            itlb: l1,
            dtlb: l1,
            stlb: TlbLevelConfig {
                small: Geometry::new(2048, 16),
                large: Geometry::new(2048, 16),
                huge: Geometry::new(64, 16),
            },
            guest_psc: PscConfig {
                pml5: 8,
                pml4: 8,
                pdpt: 16,
                pd: 32,
            },
            nested_psc: PscConfig {
                pml5: 8,
                pml4: 8,
                pdpt: 16,
                pd: 32,
            },
            nested_tlb: Geometry::new(64, 4),
        }
    }

    /// No caching at all: every access walks. For teaching and for tests of
    /// the walkers through the [`crate::Mmu`].
    pub fn none() -> Self {
        let none = TlbLevelConfig {
            small: Geometry::NONE,
            large: Geometry::NONE,
            huge: Geometry::NONE,
        };
        Self {
            itlb: none,
            dtlb: none,
            stlb: none,
            guest_psc: PscConfig::NONE,
            nested_psc: PscConfig::NONE,
            nested_tlb: Geometry::NONE,
        }
    }

    /// The preset named `name`: "intel", "amd" or "none".
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "intel" => Some(Self::intel()),
            "amd" => Some(Self::amd()),
            "none" => Some(Self::none()),
            _ => None,
        }
    }

    /// Checks that every array can be built.
    pub fn validate(&self) -> Result<(), TlbConfigError> {
        for (name, l) in [
            ("itlb", &self.itlb),
            ("dtlb", &self.dtlb),
            ("stlb", &self.stlb),
        ] {
            l.small.validate(&format!("{name}.small"))?;
            l.large.validate(&format!("{name}.large"))?;
            l.huge.validate(&format!("{name}.huge"))?;
        }
        self.nested_tlb.validate("nested_tlb")?;
        for (name, p) in [
            ("guest_psc", &self.guest_psc),
            ("nested_psc", &self.nested_psc),
        ] {
            for level in 2..=5 {
                if p.entries(level) > 64 {
                    return Err(TlbConfigError(format!(
                        "{name}: level {level} cache of {} entries exceeds 64 (fully associative)",
                        p.entries(level)
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip() {
        for name in ["intel", "amd", "none"] {
            let c = TlbConfig::preset(name).unwrap();
            c.validate().unwrap();
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<TlbConfig>(&j).unwrap(), c);
        }
        let mut bad = TlbConfig::intel();
        bad.dtlb.small = Geometry::new(48, 4);
        assert!(bad.validate().is_err());
    }
}
