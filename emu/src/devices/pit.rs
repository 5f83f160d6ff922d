//! The 8254 programmable interval timer (Intel 8254 datasheet) at ports
//! 40H-43H, and the PC's port 61H (NMI status and control: channel 2 gate,
//! speaker data, refresh toggle, channel 2 output).
//!
//! Channel 0 drives IRQ 0; channel 2's gate is port 61H bit 0 and its output
//! reads back in bit 5; channel 1 (DRAM refresh on old PCs) counts but goes
//! nowhere. All six modes, binary and BCD counting, the counter-latch and
//! read-back commands and LSB/MSB access sequencing are modelled. Counters
//! run from the modelled clock ([`super::clock`]): a counter's state is a pure
//! function of the cycles since it was loaded, so nothing is stepped per tick.

use super::clock::{Clock, NEVER, PIT_HZ};
use serde::{Deserialize, Serialize};

/// One counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// The count register as written (0 means 65536, or 10000 in BCD).
    pub initial: u16,
    /// Mode 0-5.
    pub mode: u8,
    /// BCD counting.
    pub bcd: bool,
    /// Access mode: 1 LSB, 2 MSB, 3 LSB then MSB.
    pub rw: u8,
    /// Cycle at which counting (re)started from `initial`; `None` while no
    /// count has been written since the control word (or before a gate
    /// trigger in modes 1 and 5).
    start: Option<u64>,
    /// The gate input.
    pub gate: bool,
    /// Ticks counted before the gate went low (modes 0 and 4 pause).
    paused_ticks: Option<u64>,
    /// Writing the MSB of a 16-bit count is next.
    write_msb: bool,
    /// Reading the MSB is next.
    read_msb: bool,
    /// LSB written so far.
    write_lsb: u8,
    /// A latched count (counter-latch or read-back), and which byte is next.
    latched: Option<u16>,
    latched_msb: bool,
    /// A latched status byte (read-back).
    status: Option<u8>,
    /// The control word was written and no count loaded yet.
    null_count: bool,
    /// The output level when no count runs (after a control-word write).
    idle_out: bool,
}

impl Counter {
    fn new(gate: bool) -> Self {
        Self {
            gate,
            rw: 3,
            idle_out: true,
            ..Self::default()
        }
    }

    /// The count as a number of input clocks.
    fn period(&self) -> u64 {
        match (self.initial, self.bcd) {
            (0, false) => 65536,
            (0, true) => 10000,
            (n, true) => from_bcd(n) as u64,
            (n, false) => n as u64,
        }
    }

    /// Input clocks counted since `start`, at `now`.
    fn elapsed(&self, clock: &Clock, now: u64) -> Option<u64> {
        if let Some(p) = self.paused_ticks {
            return Some(p);
        }
        let start = self.start?;
        Some(clock.ticks(now.saturating_sub(start), PIT_HZ))
    }

    /// The current count (Intel 8254, "Operation": counting behaviour per
    /// mode; mode 3 decrements by two).
    pub fn count(&self, clock: &Clock, now: u64) -> u16 {
        let Some(d) = self.elapsed(clock, now) else {
            return self.initial;
        };
        let n = self.period();
        let modulus = if self.bcd { 10000 } else { 0x1_0000 };
        let c = match self.mode {
            2 => n - d % n,
            3 => n - (2 * d) % n,
            // Modes 0, 1, 4, 5 wrap through 0 and keep counting.
            _ => (n as i128 - d as i128).rem_euclid(modulus as i128) as u64,
        };
        let c = (c % modulus) as u32;
        if self.bcd {
            to_bcd(c as u16)
        } else {
            c as u16
        }
    }

    /// The output level at `now`.
    pub fn out(&self, clock: &Clock, now: u64) -> bool {
        let Some(d) = self.elapsed(clock, now) else {
            return self.idle_out;
        };
        let n = self.period();
        match self.mode {
            0 => d >= n,
            1 => d >= n,
            // Low for the one clock while the count is 1.
            2 => !self.gate || d % n != n - 1,
            // High for the first half (rounded up), low for the rest.
            3 => !self.gate || d % n < n.div_ceil(2),
            // Low for one clock when the count reaches 0.
            _ => d != n,
        }
    }

    /// The next cycle after `now` at which the output changes.
    pub fn next_transition(&self, clock: &Clock, now: u64) -> u64 {
        if self.paused_ticks.is_some() {
            return NEVER;
        }
        let (Some(start), Some(d)) = (self.start, self.elapsed(clock, now)) else {
            return NEVER;
        };
        let n = self.period();
        let next_tick = match self.mode {
            0 | 1 if d < n => n,
            2 if self.gate => {
                let base = d - d % n;
                if d % n < n - 1 {
                    base + n - 1
                } else {
                    base + n
                }
            }
            3 if self.gate => {
                let base = d - d % n;
                let half = n.div_ceil(2);
                if d % n < half {
                    base + half
                } else {
                    base + n
                }
            }
            4 | 5 if d < n => n,
            4 | 5 if d == n => n + 1,
            _ => return NEVER,
        };
        start.saturating_add(clock.cycles_for(next_tick, PIT_HZ))
    }

    /// Changes the gate input at `now`.
    fn set_gate(&mut self, clock: &Clock, now: u64, gate: bool) {
        if gate == self.gate {
            return;
        }
        self.gate = gate;
        match self.mode {
            // Counting is suspended while the gate is low.
            0 | 4 => {
                if gate {
                    if let (Some(p), Some(_)) = (self.paused_ticks.take(), self.start) {
                        self.start = Some(now - clock.cycles_for(p, PIT_HZ).min(now));
                    }
                } else if self.start.is_some() {
                    self.paused_ticks = self.elapsed(clock, now);
                }
            }
            // A rising gate edge (re)triggers modes 1, 5 and restarts 2, 3
            // once a count is loaded.
            _ => {
                if gate && !self.null_count {
                    self.start = Some(now);
                }
            }
        }
    }

    /// Loads a complete count at `now`.
    fn load(&mut self, now: u64, v: u16) {
        self.initial = v;
        self.null_count = false;
        self.paused_ticks = None;
        // Modes 1 and 5 wait for a gate trigger; the others start counting.
        self.start = match self.mode {
            1 | 5 => None,
            0 | 4 if !self.gate => {
                self.paused_ticks = Some(0);
                Some(now)
            }
            2 | 3 if !self.gate => None,
            _ => Some(now),
        };
        self.idle_out = !matches!(self.mode, 0);
    }

    fn write_count(&mut self, now: u64, v: u8) {
        match self.rw {
            1 => self.load(now, v as u16),
            2 => self.load(now, (v as u16) << 8),
            _ => {
                if self.write_msb {
                    self.write_msb = false;
                    self.load(now, self.write_lsb as u16 | (v as u16) << 8);
                } else {
                    self.write_lsb = v;
                    self.write_msb = true;
                    // Mode 0 stops counting when the LSB of a new count is written.
                    if self.mode == 0 {
                        self.start = None;
                        self.paused_ticks = None;
                        self.idle_out = false;
                    }
                }
            }
        }
    }

    fn read_count(&mut self, clock: &Clock, now: u64) -> u8 {
        if let Some(s) = self.status.take() {
            return s;
        }
        if let Some(l) = self.latched {
            let b = if self.rw == 2 || (self.rw == 3 && self.latched_msb) {
                (l >> 8) as u8
            } else {
                l as u8
            };
            if self.rw == 3 && !self.latched_msb {
                self.latched_msb = true;
            } else {
                self.latched = None;
                self.latched_msb = false;
            }
            return b;
        }
        let c = self.count(clock, now);
        match self.rw {
            1 => c as u8,
            2 => (c >> 8) as u8,
            _ => {
                self.read_msb = !self.read_msb;
                if self.read_msb {
                    c as u8
                } else {
                    (c >> 8) as u8
                }
            }
        }
    }

    fn control(&mut self, v: u8) {
        let rw = (v >> 4) & 3;
        if rw == 0 {
            // Counter latch command.
            return;
        }
        self.rw = rw;
        self.mode = match (v >> 1) & 7 {
            6 => 2,
            7 => 3,
            m => m,
        };
        self.bcd = v & 1 != 0;
        self.start = None;
        self.paused_ticks = None;
        self.write_msb = false;
        self.read_msb = false;
        self.latched = None;
        self.status = None;
        self.null_count = true;
        // Mode 0 sets the output low on the control word; the others high.
        self.idle_out = self.mode != 0;
    }

    fn status_byte(&self, clock: &Clock, now: u64) -> u8 {
        let mode = self.mode << 1;
        (self.out(clock, now) as u8) << 7
            | (self.null_count as u8) << 6
            | self.rw << 4
            | mode
            | self.bcd as u8
    }
}

fn from_bcd(v: u16) -> u16 {
    (v >> 12 & 0xf) * 1000 + (v >> 8 & 0xf) * 100 + (v >> 4 & 0xf) * 10 + (v & 0xf)
}

fn to_bcd(v: u16) -> u16 {
    ((v / 1000 % 10) << 12) | ((v / 100 % 10) << 8) | ((v / 10 % 10) << 4) | (v % 10)
}

/// The PIT and port 61H.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pit {
    /// Counters 0-2.
    pub counters: [Counter; 3],
    /// Port 61H bit 1: speaker data enable.
    pub speaker_data: bool,
}

impl Default for Pit {
    fn default() -> Self {
        Self {
            counters: [Counter::new(true), Counter::new(true), Counter::new(false)],
            speaker_data: false,
        }
    }
}

impl Pit {
    /// Reads port 40H-43H.
    pub fn read(&mut self, clock: &Clock, now: u64, port: u16) -> u8 {
        match port & 3 {
            3 => 0xff,
            n => self.counters[n as usize].read_count(clock, now),
        }
    }

    /// Writes port 40H-43H.
    pub fn write(&mut self, clock: &Clock, now: u64, port: u16, v: u8) {
        match port & 3 {
            3 => self.control(clock, now, v),
            n => self.counters[n as usize].write_count(now, v),
        }
    }

    fn control(&mut self, clock: &Clock, now: u64, v: u8) {
        let sel = v >> 6;
        if sel == 3 {
            // Read-back: bit 5 clear latches counts, bit 4 clear latches status.
            for n in 0..3 {
                if v & (2 << n) == 0 {
                    continue;
                }
                let c = &mut self.counters[n];
                if v & 0x10 == 0 && c.status.is_none() {
                    c.status = Some(c.status_byte(clock, now));
                }
                if v & 0x20 == 0 && c.latched.is_none() {
                    c.latched = Some(c.count(clock, now));
                }
            }
            return;
        }
        let c = &mut self.counters[sel as usize];
        if (v >> 4) & 3 == 0 {
            if c.latched.is_none() {
                c.latched = Some(c.count(clock, now));
                c.latched_msb = false;
            }
        } else {
            c.control(v);
        }
    }

    /// Port 61H read: refresh toggle (bit 4, every 15.085 us), channel 2
    /// output (bit 5), speaker data (bit 1), gate 2 (bit 0).
    pub fn read_port61(&self, clock: &Clock, now: u64) -> u8 {
        // The refresh request toggles every 18 PIT clocks (15.085 us).
        let refresh = (clock.ticks(now, PIT_HZ) / 18) & 1 != 0;
        (self.counters[2].out(clock, now) as u8) << 5
            | (refresh as u8) << 4
            | (self.speaker_data as u8) << 1
            | self.counters[2].gate as u8
    }

    /// Port 61H write: gate 2 and speaker data.
    pub fn write_port61(&mut self, clock: &Clock, now: u64, v: u8) {
        self.speaker_data = v & 2 != 0;
        self.counters[2].set_gate(clock, now, v & 1 != 0);
    }

    /// Channel 0's output (IRQ 0) at `now`.
    pub fn irq0(&self, clock: &Clock, now: u64) -> bool {
        self.counters[0].out(clock, now)
    }

    /// The next cycle at which IRQ 0 changes level.
    pub fn next_event(&self, clock: &Clock, now: u64) -> u64 {
        self.counters[0].next_transition(clock, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Clock = Clock {
        tsc_hz: super::super::clock::DEFAULT_TSC_HZ,
    };

    fn at(ticks: u64) -> u64 {
        C.cycles_for(ticks, PIT_HZ)
    }

    fn program(p: &mut Pit, ch: u16, mode: u8, count: u16, now: u64) {
        p.write(&C, now, 0x43, (ch as u8) << 6 | 0x30 | mode << 1);
        p.write(&C, now, 0x40 + ch, count as u8);
        p.write(&C, now, 0x40 + ch, (count >> 8) as u8);
    }

    #[test]
    fn mode0_interrupt_on_terminal_count() {
        let mut p = Pit::default();
        program(&mut p, 0, 0, 100, 0);
        assert!(!p.irq0(&C, 0));
        assert_eq!(p.next_event(&C, 0), at(100));
        assert!(!p.irq0(&C, at(100) - 1));
        assert!(p.irq0(&C, at(100)));
        assert_eq!(p.next_event(&C, at(100)), NEVER);
        // Latch and read the count.
        p.write(&C, at(40), 0x43, 0x00);
        let lo = p.read(&C, at(90), 0x40);
        let hi = p.read(&C, at(90), 0x40);
        assert_eq!(lo as u16 | (hi as u16) << 8, 60);
    }

    #[test]
    fn mode2_and_mode3_periods() {
        let mut p = Pit::default();
        program(&mut p, 0, 2, 10, 0);
        assert!(p.irq0(&C, 0));
        assert_eq!(p.next_event(&C, 0), at(9));
        assert!(!p.irq0(&C, at(9)));
        assert_eq!(p.next_event(&C, at(9)), at(10));
        assert!(p.irq0(&C, at(10)));
        program(&mut p, 0, 3, 10, 0);
        assert!(p.irq0(&C, at(4)));
        assert!(!p.irq0(&C, at(5)));
        assert_eq!(p.next_event(&C, at(5)), at(10));
    }

    #[test]
    fn channel2_gate_and_port61() {
        let mut p = Pit::default();
        program(&mut p, 2, 0, 50, 0);
        assert_eq!(p.read_port61(&C, at(60)) & 0x20, 0, "gate low: no counting");
        p.write_port61(&C, at(60), 1);
        assert_eq!(p.read_port61(&C, at(100)) & 0x20, 0);
        assert_eq!(
            p.read_port61(&C, at(111)) & 0x21,
            0x21,
            "out2 high at terminal count"
        );
    }

    #[test]
    fn gate_triggered_modes_1_and_5() {
        let mut p = Pit::default();
        program(&mut p, 2, 1, 100, 0);
        assert_eq!(
            p.read_port61(&C, at(50)) & 0x20,
            0x20,
            "mode 1: high until triggered"
        );
        p.write_port61(&C, at(50), 1);
        assert_eq!(p.read_port61(&C, at(51)) & 0x20, 0, "low while counting");
        assert_eq!(
            p.read_port61(&C, at(151)) & 0x20,
            0x20,
            "high at terminal count"
        );
        p.write_port61(&C, at(200), 0);
        program(&mut p, 2, 5, 100, at(200));
        assert_eq!(
            p.counters[2].count(&C, at(300)),
            100,
            "mode 5 waits for the gate"
        );
        let t = at(300);
        p.write_port61(&C, t, 1);
        let after = |ticks| t + C.cycles_for(ticks, PIT_HZ);
        assert_eq!(p.counters[2].count(&C, after(40)), 60);
        assert!(p.counters[2].out(&C, after(99)));
        assert!(
            !p.counters[2].out(&C, after(100)),
            "a one-clock strobe at 0"
        );
        assert!(p.counters[2].out(&C, after(101)));
    }

    #[test]
    fn read_back_status() {
        let mut p = Pit::default();
        program(&mut p, 0, 3, 0x1000, 0);
        p.write(&C, 0, 0x43, 0xe2); // latch status of counter 0
        let s = p.read(&C, 0, 0x40);
        assert_eq!(s & 0x3f, 0x36, "rw 3, mode 3, binary");
        assert_eq!(s & 0x80, 0x80, "output high");
    }

    #[test]
    fn bcd_counting() {
        let mut p = Pit::default();
        p.write(&C, 0, 0x43, 0x31); // counter 0, lsb/msb, mode 0, BCD
        p.write(&C, 0, 0x40, 0x00);
        p.write(&C, 0, 0x40, 0x10); // 1000 decimal
        p.write(&C, at(1), 0x43, 0x00);
        let lo = p.read(&C, 0, 0x40);
        let hi = p.read(&C, 0, 0x40);
        assert_eq!((hi, lo), (0x09, 0x99));
    }
}
