//! SNAPSHOT TARGET: RESERVED.
//!
//! Machine snapshots (save/load) are being added to `nestemu` in parallel;
//! they do not exist on this branch yet. When they land, this target
//! decodes its input as (a) a valid snapshot of a booted kit program with
//! random bytes flipped, truncated or spliced, and (b) raw bytes, loads it
//! with the snapshot loader and requires: an `Ok` machine that then runs to
//! a defined `Stop` within an instruction limit, or the loader's error
//! value, never a panic, and no allocation sized by an unchecked length
//! field (peak memory measured as in the `limits` tests). Add "snapshot"
//! to [`super::NAMES`] then.

use crate::Target;

/// The snapshot target, once snapshots exist; `None` until then.
pub fn target() -> Option<Box<dyn Target>> {
    None
}
