//! VMCB state caching and the clean bits (APM Vol. 2 15.15).
//!
//! Hardware may keep guest register values on chip between #VMEXIT and the next
//! VMRUN of the same VMCB (identified by its physical address, not the ASID)
//! and load a field group from that cache when its clean bit is set. The clean
//! bits are a hint the processor may ignore, but a hypervisor that modifies a
//! field and leaves its clean bit set sees whatever the cache holds. This model
//! always honours set clean bits on a cache hit, so such a hypervisor sees the
//! stale value deterministically: the worst case hardware is allowed to show.
//!
//! The cache holds the merged image VMRUN loaded, updated with every field
//! #VMEXIT writes back. A VMRUN of a VMCB address not in the cache treats the
//! clean field as zero (15.15.2).

use crate::features::SvmConfig;
use crate::vmcb::{CleanBits, VmcbField, VmcbImage};
use serde::{Deserialize, Serialize};

/// The VMCB state cache of one logical processor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmcbCache {
    capacity: usize,
    /// Most recently used first: (VMCB physical address, cached image).
    entries: Vec<(u64, VmcbImage)>,
}

impl Default for VmcbCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl VmcbCache {
    /// How many VMCBs the model caches by default.
    pub const DEFAULT_CAPACITY: usize = 4;

    /// An empty cache holding up to `capacity` VMCBs (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Vec::new(),
        }
    }

    /// True if the VMCB at `pa` is cached.
    pub fn contains(&self, pa: u64) -> bool {
        self.entries.iter().any(|(a, _)| *a == pa)
    }

    /// The cached image of the VMCB at `pa`.
    pub fn get(&self, pa: u64) -> Option<&VmcbImage> {
        self.entries.iter().find(|(a, _)| *a == pa).map(|(_, i)| i)
    }

    /// The state VMRUN loads from the VMCB at `pa` whose memory image is
    /// `img`: every field covered by a set clean bit comes from the cache on a
    /// hit; everything else from memory. Returns the merged image and the
    /// clean bits that were honoured.
    pub fn merge(&self, cfg: &SvmConfig, pa: u64, img: &VmcbImage) -> (VmcbImage, CleanBits) {
        let mut merged = img.clone();
        if !cfg.features.vmcb_clean {
            return (merged, CleanBits(0));
        }
        let Some(cached) = self.get(pa) else {
            return (merged, CleanBits(0));
        };
        let clean = CleanBits(img.get(VmcbField::VmcbClean) as u32);
        let mut honoured = 0u32;
        for f in VmcbField::ALL {
            if let Some(bit) = f.clean() {
                if clean.contains(bit) {
                    merged.copy_field(cached, *f);
                    honoured |= bit.mask();
                }
            }
        }
        (merged, CleanBits(honoured))
    }

    /// Records the state VMRUN loaded from the VMCB at `pa`.
    pub fn store(&mut self, cfg: &SvmConfig, pa: u64, img: &VmcbImage) {
        if !cfg.features.vmcb_clean || self.capacity == 0 {
            return;
        }
        self.invalidate(pa);
        self.entries.insert(0, (pa, img.clone()));
        self.entries.truncate(self.capacity);
    }

    /// Records a field #VMEXIT wrote back to the VMCB at `pa`.
    pub fn update(&mut self, pa: u64, f: VmcbField, v: u64) {
        if let Some((_, img)) = self.entries.iter_mut().find(|(a, _)| *a == pa) {
            img.set(f, v);
        }
    }

    /// Drops the VMCB at `pa` from the cache.
    pub fn invalidate(&mut self, pa: u64) {
        self.entries.retain(|(a, _)| *a != pa);
    }

    /// Drops every cached VMCB.
    pub fn invalidate_all(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmcb::{CleanBit, VmcbBuilder};

    #[test]
    fn miss_treats_clean_as_zero() {
        let cfg = SvmConfig::amd();
        let cache = VmcbCache::default();
        let img = VmcbBuilder::long_mode()
            .set(VmcbField::VmcbClean, 0xffff_ffff)
            .build();
        let (m, honoured) = cache.merge(&cfg, 0x1000, &img);
        assert_eq!(m, img);
        assert_eq!(honoured, CleanBits(0));
    }

    #[test]
    fn hit_uses_cached_fields_for_clean_bits_only() {
        let cfg = SvmConfig::amd();
        let mut cache = VmcbCache::default();
        let img = VmcbBuilder::long_mode().build();
        cache.store(&cfg, 0x1000, &img);
        // The hypervisor changes CR3 and RIP but claims CRx is clean.
        let lie = VmcbBuilder::long_mode()
            .set(VmcbField::Cr3, 0x0099_9000)
            .set(VmcbField::Rip, 0x1234)
            .set(VmcbField::VmcbClean, CleanBit::Crx.mask().into())
            .build();
        let (m, honoured) = cache.merge(&cfg, 0x1000, &lie);
        assert_eq!(
            m.get(VmcbField::Cr3),
            0x0010_0000,
            "stale CR3 from the cache"
        );
        assert_eq!(m.get(VmcbField::Rip), 0x1234, "RIP is never cached");
        assert_eq!(honoured, CleanBits(CleanBit::Crx.mask()));
    }

    #[test]
    fn without_the_feature_nothing_is_cached() {
        let cfg = SvmConfig::first_generation();
        let mut cache = VmcbCache::default();
        let img = VmcbBuilder::long_mode().build();
        cache.store(&cfg, 0x1000, &img);
        assert!(!cache.contains(0x1000));
    }

    #[test]
    fn cache_survives_a_snapshot() {
        let cfg = SvmConfig::amd();
        let mut cache = VmcbCache::default();
        cache.store(&cfg, 0x1000, &VmcbBuilder::long_mode().build());
        let json = serde_json::to_string(&cache).unwrap();
        let back: VmcbCache = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cache);
        assert!(serde_json::from_str::<VmcbImage>("[1,2,3]").is_err());
    }

    #[test]
    fn capacity_evicts_least_recent() {
        let cfg = SvmConfig::amd();
        let mut cache = VmcbCache::new(2);
        let img = VmcbImage::zeroed();
        cache.store(&cfg, 0x1000, &img);
        cache.store(&cfg, 0x2000, &img);
        cache.store(&cfg, 0x3000, &img);
        assert!(!cache.contains(0x1000));
        assert!(cache.contains(0x2000) && cache.contains(0x3000));
        cache.update(0x3000, VmcbField::Cr2, 7);
        assert_eq!(cache.get(0x3000).unwrap().get(VmcbField::Cr2), 7);
        cache.invalidate_all();
        assert!(!cache.contains(0x3000));
    }
}
