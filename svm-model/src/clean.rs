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
//!
//! The cache also keeps one spare image buffer, so VMRUN reads the VMCB page
//! into storage it already has and hands it over to the cache afterwards: no
//! 4-KiB allocation or copy per world switch. The spare holds no state (the
//! part VMRUN uses is overwritten before every use) and is not part of a
//! snapshot.
//!
//! VMRUN reads only the part of the VMCB below [`VMRUN_READ_END`](crate::vmcb::VMRUN_READ_END); every
//! image VMRUN stores here, and so the spare, holds zeros above it (a new
//! image is zeroed, and VMRUN and #VMEXIT write nothing above), so a cached
//! image does not depend on which buffer it was read into.

use crate::features::SvmConfig;
use crate::vmcb::{CleanBits, VmcbField, VmcbImage};
use serde::{Deserialize, Serialize};

/// The VMCB state cache of one logical processor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VmcbCache {
    capacity: usize,
    /// Most recently used first: (VMCB physical address, cached image).
    entries: Vec<(u64, VmcbImage)>,
    /// Storage for the next VMRUN's image (contents meaningless).
    #[serde(skip)]
    spare: Option<VmcbImage>,
}

impl PartialEq for VmcbCache {
    /// The architectural content: capacity and cached images (not the spare
    /// buffer).
    fn eq(&self, o: &Self) -> bool {
        self.capacity == o.capacity && self.entries == o.entries
    }
}

impl Eq for VmcbCache {}

/// Number of fields a clean bit covers.
const CLEAN_FIELD_COUNT: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < VmcbField::ALL.len() {
        if VmcbField::ALL[i].clean().is_some() {
            n += 1;
        }
        i += 1;
    }
    n
};

/// Every field a clean bit covers: (offset, width, clean-bit mask), derived
/// from the layout table.
const CLEAN_FIELDS: [(u16, u16, u32); CLEAN_FIELD_COUNT] = {
    let mut t = [(0u16, 0u16, 0u32); CLEAN_FIELD_COUNT];
    let (mut n, mut i) = (0, 0);
    while i < VmcbField::ALL.len() {
        let f = VmcbField::ALL[i];
        if let Some(bit) = f.clean() {
            t[n] = (f.offset() as u16, f.width() as u16, bit.mask());
            n += 1;
        }
        i += 1;
    }
    t
};

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
            spare: None,
        }
    }

    /// An image buffer for the next VMRUN to read into (contents meaningless).
    pub fn take_spare(&mut self) -> VmcbImage {
        self.spare.take().unwrap_or_default()
    }

    /// Returns an image buffer for reuse (its bytes above
    /// [`VMRUN_READ_END`](crate::vmcb::VMRUN_READ_END) are cleared, as every image the cache hands out
    /// holds zeros there).
    pub fn recycle(&mut self, mut img: VmcbImage) {
        img.clear_above_vmrun_part();
        self.spare = Some(img);
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
        let honoured = self.merge_into(cfg, pa, &mut merged);
        (merged, honoured)
    }

    /// [`VmcbCache::merge`] in place: `img`, the VMCB's memory image, becomes
    /// the merged image. Returns the clean bits that were honoured.
    pub fn merge_into(&self, cfg: &SvmConfig, pa: u64, img: &mut VmcbImage) -> CleanBits {
        if !cfg.features.vmcb_clean {
            return CleanBits(0);
        }
        let Some(cached) = self.get(pa) else {
            return CleanBits(0);
        };
        let clean = img.get(VmcbField::VmcbClean) as u32;
        let mut honoured = 0u32;
        if clean != 0 {
            for &(at, len, mask) in &CLEAN_FIELDS {
                if clean & mask != 0 {
                    img.copy_range(cached, at.into(), len.into());
                    honoured |= mask;
                }
            }
        }
        CleanBits(honoured)
    }

    /// Records the state VMRUN loaded from the VMCB at `pa`.
    pub fn store(&mut self, cfg: &SvmConfig, pa: u64, img: &VmcbImage) {
        if !cfg.features.vmcb_clean || self.capacity == 0 {
            return;
        }
        self.invalidate(pa);
        let mut img = img.clone();
        img.clear_above_vmrun_part();
        self.entries.insert(0, (pa, img));
        self.entries.truncate(self.capacity);
    }

    /// [`VmcbCache::store`] taking the image: it replaces the cached image of
    /// `pa` (whose storage becomes the spare buffer), or is kept as the spare
    /// when nothing is cached.
    pub fn store_owned(&mut self, cfg: &SvmConfig, pa: u64, mut img: VmcbImage) {
        if !cfg.features.vmcb_clean || self.capacity == 0 {
            self.spare = Some(img);
            return;
        }
        match self.entries.iter().position(|(a, _)| *a == pa) {
            Some(i) => {
                core::mem::swap(&mut self.entries[i].1, &mut img);
                self.entries[..=i].rotate_right(1);
                self.spare = Some(img);
            }
            None => {
                self.entries.insert(0, (pa, img));
                if self.entries.len() > self.capacity {
                    self.spare = self.entries.pop().map(|(_, i)| i);
                }
            }
        }
    }

    /// Records a field #VMEXIT wrote back to the VMCB at `pa`.
    pub fn update(&mut self, pa: u64, f: VmcbField, v: u64) {
        if let Some(img) = self.image_mut(pa) {
            img.set(f, v);
        }
    }

    /// The cached image of the VMCB at `pa`, to record what #VMEXIT writes.
    pub fn image_mut(&mut self, pa: u64) -> Option<&mut VmcbImage> {
        self.entries
            .iter_mut()
            .find(|(a, _)| *a == pa)
            .map(|(_, i)| i)
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
    fn store_owned_matches_store() {
        let cfg = SvmConfig::amd();
        let (mut a, mut b) = (VmcbCache::new(2), VmcbCache::new(2));
        let img = |v: u64| VmcbBuilder::long_mode().set(VmcbField::Rip, v).build();
        for (pa, v) in [
            (0x1000, 1),
            (0x2000, 2),
            (0x1000, 3),
            (0x3000, 4),
            (0x3000, 5),
        ] {
            a.store(&cfg, pa, &img(v));
            b.store_owned(&cfg, pa, img(v));
            assert_eq!(a, b);
            let spare = b.take_spare();
            b.recycle(spare);
        }
        assert_eq!(b.get(0x3000).unwrap().get(VmcbField::Rip), 5);
        let first = SvmConfig::first_generation();
        b.store_owned(&first, 0x4000, img(6));
        assert!(!b.contains(0x4000));
    }

    #[test]
    fn merge_into_matches_merge() {
        let cfg = SvmConfig::amd();
        let mut cache = VmcbCache::default();
        cache.store(&cfg, 0x1000, &VmcbBuilder::long_mode().build());
        for clean in [0u64, 1, 0x20, 0x1ff, 0xffff_ffff] {
            let lie = VmcbBuilder::long_mode()
                .set(VmcbField::Cr3, 0x0099_9000)
                .set(VmcbField::CsSelector, 0x33)
                .set(VmcbField::VmcbClean, clean)
                .build();
            let (m, h) = cache.merge(&cfg, 0x1000, &lie);
            let mut slow = lie.clone();
            let mut hs = 0;
            for f in VmcbField::ALL {
                if let Some(bit) = f.clean() {
                    if CleanBits(clean as u32).contains(bit) {
                        slow.copy_field(cache.get(0x1000).unwrap(), *f);
                        hs |= bit.mask();
                    }
                }
            }
            assert_eq!(m, slow);
            assert_eq!(h, CleanBits(hs));
        }
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
