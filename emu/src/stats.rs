//! Counters and the `--stats` JSON report (DESIGN.md, "Command line").

use serde::Serialize;
use std::collections::BTreeMap;

/// Counters of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles.
    pub cycles: u64,
    /// Exceptions and interrupts delivered, by vector name.
    pub events: BTreeMap<String, u64>,
}

/// The `--stats` report: counters plus host-side facts that do not depend on
/// the host (no timings, so two runs give identical files).
#[derive(Clone, Debug, Serialize)]
pub struct Report<'a> {
    /// Instructions retired.
    pub instructions: u64,
    /// Modelled cycles.
    pub cycles: u64,
    /// Exit status the run ended with.
    pub exit_status: i32,
    /// Why the run ended.
    pub stop: String,
    /// Events delivered by vector.
    pub events: &'a BTreeMap<String, u64>,
    /// Device accesses no device claimed.
    pub unclaimed: crate::devices::UnclaimedCounts,
    /// Decoded-code cache counters.
    pub code_cache: CodeCacheCounts,
}

/// Decoded-code cache counters.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CodeCacheCounts {
    /// Blocks decoded.
    pub decoded_blocks: u64,
    /// Blocks dropped because their page was written.
    pub invalidated_blocks: u64,
}
