//! What a VMCS field is: encoding, width, kind, and the feature that makes it exist
//! (SDM Vol. 3D appendix B, "Field Encoding in VMCS"; SDM Vol. 3C 25.11.2, "VMREAD,
//! VMWRITE, and Encodings of VMCS Fields").
//!
//! An encoding is 32 bits: bit 0 access type (0 full, 1 high), bits 9:1 index,
//! bits 11:10 type, bit 12 reserved, bits 14:13 width, bits 31:15 reserved.

use crate::controls::{
    EntryControls, ExitControls, PinControls, Proc2Controls, ProcControls, VmFuncControls,
};
use serde::{Deserialize, Serialize};

/// Field width, from encoding bits 14:13.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Width {
    /// 16 bits (encoding width 0).
    W16,
    /// 64 bits (encoding width 1); the only width with a "high" access type.
    W64,
    /// 32 bits (encoding width 2).
    W32,
    /// Natural width: 64 bits on processors supporting Intel 64 (encoding width 3).
    Natural,
}

impl Width {
    /// The width value in encoding bits 14:13.
    pub const fn code(self) -> u32 {
        match self {
            Width::W16 => 0,
            Width::W64 => 1,
            Width::W32 => 2,
            Width::Natural => 3,
        }
    }
    /// Mask of the bits a field of this width holds.
    pub const fn mask(self) -> u64 {
        match self {
            Width::W16 => 0xffff,
            Width::W32 => 0xffff_ffff,
            Width::W64 | Width::Natural => u64::MAX,
        }
    }
    /// Width in bits.
    pub const fn bits(self) -> u32 {
        match self {
            Width::W16 => 16,
            Width::W32 => 32,
            Width::W64 | Width::Natural => 64,
        }
    }
}

/// Field type, from encoding bits 11:10.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// Control field (type 0).
    Control,
    /// Read-only data field: VM-exit information (type 1).
    ExitInfo,
    /// Guest-state field (type 2).
    Guest,
    /// Host-state field (type 3).
    Host,
}

impl Kind {
    /// The type value in encoding bits 11:10.
    pub const fn code(self) -> u32 {
        match self {
            Kind::Control => 0,
            Kind::ExitInfo => 1,
            Kind::Guest => 2,
            Kind::Host => 3,
        }
    }
}

/// The capability that makes a field exist. A field whose feature the processor
/// does not support is an "unsupported VMCS component": VMREAD and VMWRITE fail
/// with error 12 (SDM Vol. 3D appendix B, footnotes to tables B-1 to B-14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Present on every processor with VMX.
    Always,
    /// The 1-setting of a pin-based control.
    Pin(PinControls),
    /// The 1-setting of a primary processor-based control.
    Proc(ProcControls),
    /// The 1-setting of a secondary processor-based control.
    Proc2(Proc2Controls),
    /// The 1-setting of a VM-exit control.
    Exit(ExitControls),
    /// The 1-setting of a VM-entry control.
    Entry(EntryControls),
    /// The 1-setting of either a VM-entry or a VM-exit control.
    EntryOrExit(EntryControls, ExitControls),
    /// Support of a VM function.
    VmFunc(VmFuncControls),
    /// Defined by the architecture for a feature this model never implements
    /// (tertiary controls, HLAT, PASID, TDX, user interrupts, ...).
    Unmodelled(&'static str),
}

/// One row of the field table.
#[derive(Clone, Copy, Debug)]
pub struct FieldInfo {
    /// The field.
    pub field: super::Field,
    /// The encoding of the full field (access type 0).
    pub encoding: u32,
    /// Width.
    pub width: Width,
    /// Type.
    pub kind: Kind,
    /// The feature that makes it exist.
    pub feature: Feature,
    /// SDM Vol. 3C section describing it.
    pub section: &'static str,
    /// The manual's name.
    pub name: &'static str,
}

impl FieldInfo {
    /// The encoding of the high 32 bits, for 64-bit fields.
    pub const fn high_encoding(&self) -> Option<u32> {
        match self.width {
            Width::W64 => Some(self.encoding | 1),
            _ => None,
        }
    }
    /// The index, encoding bits 9:1.
    pub const fn index(&self) -> u32 {
        (self.encoding >> 1) & 0x1ff
    }
}

/// The parts of an encoding (SDM Vol. 3C 25.11.2, table 25-21 in the 2023 edition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingParts {
    /// Bit 0: true for the high access type.
    pub high: bool,
    /// Bits 9:1.
    pub index: u32,
    /// Bits 11:10.
    pub kind: u32,
    /// Bits 14:13.
    pub width: u32,
    /// True if any reserved bit (12 or 31:15) is set.
    pub reserved: bool,
}

/// Splits an encoding into its parts.
pub const fn decode_encoding(enc: u64) -> EncodingParts {
    EncodingParts {
        high: enc & 1 != 0,
        index: ((enc >> 1) & 0x1ff) as u32,
        kind: ((enc >> 10) & 3) as u32,
        width: ((enc >> 13) & 3) as u32,
        reserved: enc & !0x6fff != 0,
    }
}
