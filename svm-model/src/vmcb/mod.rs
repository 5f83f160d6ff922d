//! The VMCB (APM Vol. 2 appendix B): the layout table, byte images, typed
//! control fields and a builder for known-good VMCBs.

mod builder;
mod controls;
mod image;
mod layout;
mod staged;

pub use builder::VmcbBuilder;
pub use controls::*;
pub use image::*;
pub use layout::*;
pub use staged::{load_fields, store_fields, FieldLayout, FieldList, FieldSource, Staged};
