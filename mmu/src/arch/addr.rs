//! Address newtypes: one type per kind of address, so that a linear address cannot
//! be handed where a physical one is expected (SDM Vol. 3A 3.1, "Memory management
//! overview": logical -> linear -> physical; with VMX or SVM the guest's
//! "physical" addresses are guest-physical and are translated again by EPT or NPT,
//! SDM Vol. 3C 29.3 and APM Vol. 2 15.25).

use serde::{Deserialize, Serialize};

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw value.
            #[inline]
            pub const fn get(self) -> u64 {
                self.0
            }
            /// The 4-KiB page frame number.
            #[inline]
            pub const fn pfn(self) -> u64 {
                self.0 >> 12
            }
            /// The offset within the 4-KiB page.
            #[inline]
            pub const fn page_offset(self) -> u64 {
                self.0 & 0xfff
            }
            /// The address rounded down to its 4-KiB page.
            #[inline]
            pub const fn page_base(self) -> Self {
                Self(self.0 & !0xfff)
            }
            /// Wrapping addition of a byte offset.
            #[inline]
            pub const fn add(self, offset: u64) -> Self {
                Self(self.0.wrapping_add(offset))
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}({:#x})", stringify!($name), self.0)
            }
        }

        impl core::fmt::LowerHex for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_type!(
    /// A linear (virtual) address: segment base plus effective address
    /// (SDM Vol. 3A 3.4).
    LinearAddr
);
address_type!(
    /// A guest-physical address: the output of the guest's own paging while in VMX
    /// non-root operation or SVM guest mode, the input of EPT or NPT.
    GuestPhysAddr
);
address_type!(
    /// A physical address of the emulated machine: what reaches RAM and devices.
    PhysAddr
);

/// Address widths of a CPU model (CPUID.80000008H:EAX, SDM Vol. 2A "CPUID").
///
/// MAXPHYADDR decides which physical-address bits of paging entries, CR3, VMCS
/// pointers and the like are reserved; the linear width decides canonicality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressWidths {
    /// MAXPHYADDR, 36..=52.
    pub phys_bits: u8,
    /// Linear-address width: 48 (4-level) or 57 (LA57 capable).
    pub linear_bits: u8,
}

impl Default for AddressWidths {
    fn default() -> Self {
        Self {
            phys_bits: 46,
            linear_bits: 48,
        }
    }
}

impl AddressWidths {
    /// Why these widths are not ones an x86-64 processor reports, if they are
    /// not: MAXPHYADDR 36..=52 (SDM Vol. 3A 4.1.4), a linear width of 48 or
    /// 57 (SDM Vol. 3A 4.5). The widths size shifts and masks everywhere.
    pub fn validate(self) -> Result<(), String> {
        if !(36..=52).contains(&self.phys_bits) || !matches!(self.linear_bits, 48 | 57) {
            return Err(format!(
                "address widths of {} physical and {} linear bits (MAXPHYADDR is 36 to 52, the linear width 48 or 57)",
                self.phys_bits, self.linear_bits
            ));
        }
        Ok(())
    }

    /// Mask of the physical-address bits below MAXPHYADDR.
    #[inline]
    pub const fn phys_mask(self) -> u64 {
        (1u64 << self.phys_bits) - 1
    }

    /// True if `pa` sets bits at or above MAXPHYADDR.
    #[inline]
    pub const fn exceeds_phys(self, pa: u64) -> bool {
        pa & !self.phys_mask() != 0
    }
}

/// True if `la` is canonical for a linear width of `bits` (SDM Vol. 3A 3.3.7.1:
/// bits 63 through the most-significant implemented bit are all equal).
#[inline]
pub const fn is_canonical(la: u64, bits: u8) -> bool {
    let shift = 64 - bits as u32;
    (((la << shift) as i64) >> shift) as u64 == la
}

/// Sign-extends `la` from `bits` to 64 bits.
#[inline]
pub const fn canonicalize(la: u64, bits: u8) -> u64 {
    let shift = 64 - bits as u32;
    (((la << shift) as i64) >> shift) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_48_and_57() {
        assert!(is_canonical(0x0000_7fff_ffff_ffff, 48));
        assert!(!is_canonical(0x0000_8000_0000_0000, 48));
        assert!(is_canonical(0xffff_8000_0000_0000, 48));
        assert!(is_canonical(0x0000_8000_0000_0000, 57));
        assert!(!is_canonical(0x0100_0000_0000_0000, 57));
        assert_eq!(
            canonicalize(0x0000_8000_0000_0000, 48),
            0xffff_8000_0000_0000
        );
    }

    #[test]
    fn phys_mask_follows_maxphyaddr() {
        let w = AddressWidths {
            phys_bits: 36,
            linear_bits: 48,
        };
        assert_eq!(w.phys_mask(), 0xf_ffff_ffff);
        assert!(w.exceeds_phys(0x10_0000_0000));
        assert!(!w.exceeds_phys(0xf_ffff_f000));
    }

    #[test]
    fn page_helpers() {
        let a = LinearAddr(0x1234_5678);
        assert_eq!(a.pfn(), 0x12345);
        assert_eq!(a.page_offset(), 0x678);
        assert_eq!(a.page_base(), LinearAddr(0x1234_5000));
    }
}
