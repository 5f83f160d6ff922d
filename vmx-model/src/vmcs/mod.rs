//! The virtual-machine control structure (SDM Vol. 3C chapter 25): the field table,
//! the field values of one VMCS, its 4-KByte region in memory, and the VMX state of
//! a logical processor (VMXON pointer, current-VMCS pointer, the cached current VMCS
//! and its launch state).

mod access;
mod field;
mod region;
mod state;
mod table;

pub use access::{lookup, read_field, write_field, AccessError, OperandSize};
pub use field::{decode_encoding, EncodingParts, Feature, FieldInfo, Kind, Width};
pub use region::{LaunchState, Region, ABORT_OFFSET, DATA_OFFSET, LAUNCH_OFFSET};
pub use state::{CurrentVmcs, VmxState, INVALID_POINTER};
pub use table::{Field, FIELDS, FIELD_COUNT};

use serde::{Deserialize, Serialize};

/// The field values of one VMCS, dense by table row. Values are always truncated
/// to the field's width.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u64>", into = "Vec<u64>")]
pub struct Vmcs {
    values: Box<[u64; FIELD_COUNT]>,
}

impl Default for Vmcs {
    fn default() -> Self {
        Self {
            values: Box::new([0; FIELD_COUNT]),
        }
    }
}

impl core::fmt::Debug for Vmcs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut m = f.debug_map();
        for (field, v) in Field::ALL.iter().zip(self.values.iter()) {
            if *v != 0 {
                m.entry(&field.name(), &format_args!("{v:#x}"));
            }
        }
        m.finish()
    }
}

impl TryFrom<Vec<u64>> for Vmcs {
    type Error = String;
    fn try_from(values: Vec<u64>) -> Result<Self, String> {
        if values.len() != FIELD_COUNT {
            return Err(format!(
                "VMCS snapshot has {} fields, this build has {FIELD_COUNT}",
                values.len()
            ));
        }
        let values = values
            .into_boxed_slice()
            .try_into()
            .map_err(|_| "VMCS snapshot has the wrong field count".to_string())?;
        let mut v = Vmcs { values };
        for f in Field::ALL {
            let x = v.get(*f);
            v.set(*f, x);
        }
        Ok(v)
    }
}

impl From<Vmcs> for Vec<u64> {
    fn from(v: Vmcs) -> Self {
        Vec::from(v.values as Box<[u64]>)
    }
}

impl Vmcs {
    /// A VMCS with every field 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// The value of `f`.
    #[inline]
    pub fn get(&self, f: Field) -> u64 {
        self.values[f.row()]
    }
    /// The value of `f` as 32 bits (for 16- and 32-bit fields).
    #[inline]
    pub fn get32(&self, f: Field) -> u32 {
        self.values[f.row()] as u32
    }
    /// The value of `f` as 16 bits.
    #[inline]
    pub fn get16(&self, f: Field) -> u16 {
        self.values[f.row()] as u16
    }
    /// Sets `f`, truncating `v` to the field's width.
    #[inline]
    pub fn set(&mut self, f: Field, v: u64) {
        self.values[f.row()] = v & f.width().mask();
    }
    /// Builder form of [`Vmcs::set`].
    pub fn with(mut self, f: Field, v: u64) -> Self {
        self.set(f, v);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_agrees_with_its_encoding() {
        for (row, info) in FIELDS.iter().enumerate() {
            let p = decode_encoding(info.encoding as u64);
            assert_eq!(info.field as usize, row, "{}", info.name);
            assert!(!p.high, "{} lists a high encoding", info.name);
            assert!(!p.reserved, "{} sets reserved encoding bits", info.name);
            assert_eq!(p.width, info.width.code(), "{} width", info.name);
            assert_eq!(p.kind, info.kind.code(), "{} type", info.name);
            assert_eq!(Field::from_full_encoding(info.encoding), Some(info.field));
            assert!(
                crate::sdm::title(info.section).is_some(),
                "{} cites unknown section {}",
                info.name,
                info.section
            );
        }
    }

    #[test]
    fn encodings_and_names_are_unique() {
        let mut enc = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for info in FIELDS {
            assert!(enc.insert(info.encoding), "{:#x}", info.encoding);
            assert!(names.insert(info.name), "{}", info.name);
        }
        assert_eq!(FIELD_COUNT, 181, "appendix B rows (2023 edition)");
    }

    #[test]
    fn set_truncates_and_snapshot_round_trips() {
        let mut v = Vmcs::new();
        v.set(Field::GuestCsSelector, 0x1_2345);
        assert_eq!(v.get(Field::GuestCsSelector), 0x2345);
        v.set(Field::ExceptionBitmap, u64::MAX);
        assert_eq!(v.get(Field::ExceptionBitmap), 0xffff_ffff);
        v.set(Field::GuestRip, u64::MAX);
        let s: Vec<u64> = v.clone().into();
        assert_eq!(Vmcs::try_from(s).unwrap(), v);
        assert!(Vmcs::try_from(vec![0; 3]).is_err());
    }
}
