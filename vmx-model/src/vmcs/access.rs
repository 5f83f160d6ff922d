//! Field access by encoding, as VMREAD and VMWRITE perform it (SDM Vol. 3C 25.11.2,
//! "VMREAD, VMWRITE, and Encodings of VMCS Fields"; 31.3, "VMREAD", "VMWRITE").
//!
//! * The operand is 64 bits in 64-bit mode and 32 bits otherwise. Outside 64-bit
//!   mode, bits 63:32 of the encoding operand do not exist; in 64-bit mode an
//!   encoding with any of bits 63:32 set names no field.
//! * A field narrower than the operand is zero-extended on VMREAD; VMWRITE ignores
//!   the excess source bits.
//! * The full access (bit 0 = 0) to a 64-bit field with a 32-bit operand reads the
//!   low 32 bits; a VMWRITE of it writes the low 32 bits and clears the high ones.
//!   The high access (bit 0 = 1) reads or writes bits 63:32 only. Only 64-bit fields
//!   have a high access; 16-bit, 32-bit and natural-width encodings with bit 0 set
//!   name no field.
//! * A field whose enabling feature is not supported is an unsupported component.

use super::{decode_encoding, Field, Kind, Vmcs, Width};
use crate::caps::VmxCaps;
use serde::{Deserialize, Serialize};

/// Operand size of VMREAD/VMWRITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperandSize {
    /// Outside 64-bit mode.
    Bits32,
    /// In 64-bit mode.
    Bits64,
}

impl OperandSize {
    const fn mask(self) -> u64 {
        match self {
            OperandSize::Bits32 => 0xffff_ffff,
            OperandSize::Bits64 => u64::MAX,
        }
    }
}

/// Why a field access failed; maps to VM-instruction errors 12 and 13.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessError {
    /// The encoding names no field of this processor (error 12).
    Unsupported,
    /// VMWRITE to a VM-exit information field without IA32_VMX_MISC bit 29 (error 13).
    ReadOnly,
}

impl AccessError {
    /// The VM-instruction error.
    pub const fn error(self) -> crate::VmInstructionError {
        match self {
            AccessError::Unsupported => crate::VmInstructionError::UnsupportedComponent,
            AccessError::ReadOnly => crate::VmInstructionError::VmwriteReadOnly,
        }
    }
}

/// Resolves an encoding operand to a field and its access type (true for high).
pub fn lookup(
    caps: &VmxCaps,
    encoding: u64,
    size: OperandSize,
) -> Result<(Field, bool), AccessError> {
    let enc = encoding & size.mask();
    let parts = decode_encoding(enc);
    if parts.reserved {
        return Err(AccessError::Unsupported);
    }
    let field = Field::from_full_encoding((enc & !1) as u32).ok_or(AccessError::Unsupported)?;
    if parts.high && field.width() != Width::W64 {
        return Err(AccessError::Unsupported);
    }
    if !caps.field_exists(field) {
        return Err(AccessError::Unsupported);
    }
    Ok((field, parts.high))
}

/// VMREAD of `encoding`: the value written to the destination operand.
pub fn read_field(
    caps: &VmxCaps,
    vmcs: &Vmcs,
    encoding: u64,
    size: OperandSize,
) -> Result<u64, AccessError> {
    let (field, high) = lookup(caps, encoding, size)?;
    let v = vmcs.get(field);
    let v = if high { v >> 32 } else { v };
    Ok(v & size.mask())
}

/// VMWRITE of `value` to `encoding`.
pub fn write_field(
    caps: &VmxCaps,
    vmcs: &mut Vmcs,
    encoding: u64,
    value: u64,
    size: OperandSize,
) -> Result<(), AccessError> {
    let (field, high) = lookup(caps, encoding, size)?;
    if field.kind() == Kind::ExitInfo && !caps.features.misc.vmwrite_any_field {
        return Err(AccessError::ReadOnly);
    }
    let value = value & size.mask();
    if high {
        let old = vmcs.get(field);
        vmcs.set(field, old & 0xffff_ffff | (value & 0xffff_ffff) << 32);
    } else {
        vmcs.set(field, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::VmxFeatures;

    #[test]
    fn high_access_and_narrow_operands() {
        let caps = VmxCaps::default();
        let mut v = Vmcs::new();
        let enc = Field::TscOffset.encoding() as u64;
        write_field(
            &caps,
            &mut v,
            enc,
            0x1111_2222_3333_4444,
            OperandSize::Bits64,
        )
        .unwrap();
        assert_eq!(
            read_field(&caps, &v, enc | 1, OperandSize::Bits64),
            Ok(0x1111_2222)
        );
        assert_eq!(
            read_field(&caps, &v, enc, OperandSize::Bits32),
            Ok(0x3333_4444)
        );
        write_field(
            &caps,
            &mut v,
            enc | 1,
            0xaaaa_bbbb_cccc,
            OperandSize::Bits64,
        )
        .unwrap();
        assert_eq!(v.get(Field::TscOffset), 0xbbbb_cccc_3333_4444);
        write_field(&caps, &mut v, enc, 0x5555_6666_7777, OperandSize::Bits32).unwrap();
        assert_eq!(
            v.get(Field::TscOffset),
            0x6666_7777,
            "full 32-bit write clears high"
        );
        let nat = Field::GuestRip.encoding() as u64;
        assert_eq!(
            read_field(&caps, &v, nat | 1, OperandSize::Bits64),
            Err(AccessError::Unsupported)
        );
        // Bits 63:32 of the encoding are ignored outside 64-bit mode only.
        let big = (1u64 << 40) | nat;
        assert!(read_field(&caps, &v, big, OperandSize::Bits32).is_ok());
        assert_eq!(
            read_field(&caps, &v, big, OperandSize::Bits64),
            Err(AccessError::Unsupported)
        );
    }

    #[test]
    fn read_only_and_unsupported() {
        let mut caps = VmxCaps::default();
        let mut v = Vmcs::new();
        let er = Field::ExitReason.encoding() as u64;
        assert!(write_field(&caps, &mut v, er, 1, OperandSize::Bits64).is_ok());
        let mut f = VmxFeatures::intel();
        f.misc.vmwrite_any_field = false;
        caps = VmxCaps::new(f);
        assert_eq!(
            write_field(&caps, &mut v, er, 1, OperandSize::Bits64),
            Err(AccessError::ReadOnly)
        );
        let pml = Field::PmlAddress.encoding() as u64;
        assert_eq!(
            read_field(&caps, &v, pml, OperandSize::Bits64),
            Err(AccessError::Unsupported)
        );
        assert_eq!(
            read_field(&caps, &v, 0x0001, OperandSize::Bits64),
            Err(AccessError::Unsupported)
        );
    }
}
