//! Modelled time: every device clock derives from the machine's cycle counter
//! (DESIGN.md principle 1), so the same run gives the same interrupts at the
//! same instructions on every host.
//!
//! The cycle counter runs at the modelled TSC frequency. A device clock at
//! `hz` has ticked `floor(cycles * hz / tsc_hz)` times after `cycles` cycles;
//! conversions go through 128-bit integers, so nothing drifts or rounds
//! differently across hosts.

use serde::{Deserialize, Serialize};

/// The default modelled TSC (and core-cycle) frequency: 2 GHz.
pub const DEFAULT_TSC_HZ: u64 = 2_000_000_000;
/// The 8254 PIT input clock (1.193182 MHz, the PC's 14.31818 MHz crystal / 12).
pub const PIT_HZ: u64 = 1_193_182;
/// The ACPI power-management timer (3.579545 MHz, ACPI spec 4.8.3.3).
pub const PM_TIMER_HZ: u64 = 3_579_545;
/// The local APIC timer's base clock: 1 GHz, as QEMU and KVM model the APIC
/// bus (one tick per nanosecond).
pub const APIC_BUS_HZ: u64 = 1_000_000_000;
/// The MC146818 time base (32.768 kHz crystal).
pub const RTC_HZ: u64 = 32_768;

/// A device clock of `hz` ticks per second, driven by cycles at `tsc_hz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// Cycles per second.
    pub tsc_hz: u64,
}

impl Clock {
    /// Whole ticks of a `hz` clock in `cycles` cycles (rounded down).
    #[inline]
    pub fn ticks(&self, cycles: u64, hz: u64) -> u64 {
        ((cycles as u128 * hz as u128) / self.tsc_hz as u128) as u64
    }

    /// The first cycle count at which a `hz` clock has made `ticks` ticks
    /// (rounded up, so `ticks(cycles_for(t)) >= t`).
    #[inline]
    pub fn cycles_for(&self, ticks: u64, hz: u64) -> u64 {
        let c = (ticks as u128 * self.tsc_hz as u128).div_ceil(hz as u128);
        c.min(u64::MAX as u128) as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            tsc_hz: DEFAULT_TSC_HZ,
        }
    }
}

/// "Never": no event scheduled.
pub const NEVER: u64 = u64::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        let c = Clock::default();
        for t in [0u64, 1, 2, 1000, 65536, 1 << 40] {
            let cy = c.cycles_for(t, PIT_HZ);
            assert!(c.ticks(cy, PIT_HZ) >= t);
            if cy > 0 {
                assert!(c.ticks(cy - 1, PIT_HZ) < t, "{t}: {cy} is the first");
            }
        }
        assert_eq!(c.ticks(2_000_000_000, PIT_HZ), PIT_HZ);
        assert_eq!(c.cycles_for(1, APIC_BUS_HZ), 2);
    }
}
