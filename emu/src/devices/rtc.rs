//! The MC146818 real-time clock and CMOS RAM (Motorola MC146818A datasheet)
//! at ports 70H (index; bit 7 is the NMI mask) and 71H (data).
//!
//! Time starts at a configured instant (not the host clock) and advances with
//! the modelled cycles, so a run reads the same dates every time. Modelled:
//! BCD and binary formats, 12- and 24-hour modes, the SET bit (time frozen
//! while software writes it), update-in-progress (set for the last 244 us
//! before each second's update), periodic, alarm and update-ended interrupts
//! on IRQ 8 with register C's flags cleared by reading it, and the CMOS bytes
//! a PC BIOS leaves (memory sizes, CPU count, century at 32H, as QEMU's
//! `pc_cmos_init`).

use super::clock::{Clock, NEVER, RTC_HZ};
use serde::{Deserialize, Serialize};

/// Register indices.
pub mod reg {
    /// Seconds.
    pub const SECONDS: u8 = 0x00;
    /// Seconds alarm.
    pub const SECONDS_ALARM: u8 = 0x01;
    /// Minutes.
    pub const MINUTES: u8 = 0x02;
    /// Minutes alarm.
    pub const MINUTES_ALARM: u8 = 0x03;
    /// Hours.
    pub const HOURS: u8 = 0x04;
    /// Hours alarm.
    pub const HOURS_ALARM: u8 = 0x05;
    /// Day of week (1 = Sunday).
    pub const DAY_OF_WEEK: u8 = 0x06;
    /// Day of month.
    pub const DAY_OF_MONTH: u8 = 0x07;
    /// Month.
    pub const MONTH: u8 = 0x08;
    /// Year (two digits).
    pub const YEAR: u8 = 0x09;
    /// Register A: UIP, divider, rate select.
    pub const A: u8 = 0x0a;
    /// Register B: SET, PIE, AIE, UIE, SQWE, DM, 24/12, DSE.
    pub const B: u8 = 0x0b;
    /// Register C: IRQF, PF, AF, UF (read-only, cleared by reading).
    pub const C: u8 = 0x0c;
    /// Register D: VRT.
    pub const D: u8 = 0x0d;
    /// The century byte (as QEMU and the ACPI FADT's CENTURY field place it).
    pub const CENTURY: u8 = 0x32;
}

const A_UIP: u8 = 0x80;
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_DM_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;

/// Update-in-progress lasts 244 us before each update (datasheet, "Update
/// cycle"): 8 ticks of the 32.768 kHz time base.
const UIP_TICKS: u64 = 8;

/// A calendar date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// Year (e.g. 2024).
    pub year: i64,
    /// Month 1-12.
    pub month: u8,
    /// Day 1-31.
    pub day: u8,
    /// Hour 0-23.
    pub hour: u8,
    /// Minute 0-59.
    pub minute: u8,
    /// Second 0-59.
    pub second: u8,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the "days from
/// civil" computation: years counted from March so leap days come last).
pub fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateTime {
    /// The date and time `secs` seconds after 1970-01-01T00:00:00.
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = yoe + era * 400 + (month <= 2) as i64;
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// Seconds since 1970-01-01T00:00:00.
    pub fn to_unix(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + self.hour as i64 * 3600
            + self.minute as i64 * 60
            + self.second as i64
    }

    /// Day of the week, 1 = Sunday (the RTC's convention).
    pub fn weekday(&self) -> u8 {
        // 1970-01-01 was a Thursday (5).
        ((days_from_civil(self.year, self.month, self.day) + 4).rem_euclid(7) + 1) as u8
    }

    /// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS` (QEMU's `-rtc base=`).
    pub fn parse(s: &str) -> Option<Self> {
        let (date, time) = match s.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (s, None),
        };
        let mut d = date.split('-');
        let year: i64 = d.next()?.parse().ok()?;
        let month: u8 = d.next()?.parse().ok()?;
        let day: u8 = d.next()?.parse().ok()?;
        if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        let (mut hour, mut minute, mut second) = (0, 0, 0);
        if let Some(t) = time {
            let mut t = t.split(':');
            hour = t.next()?.parse().ok()?;
            minute = t.next()?.parse().ok()?;
            second = t.next()?.parse().ok()?;
            if t.next().is_some() || hour > 23 || minute > 59 || second > 59 {
                return None;
            }
        }
        let dt = Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        };
        // Reject dates that do not exist (e.g. 2023-02-30).
        (Self::from_unix(dt.to_unix()) == dt).then_some(dt)
    }
}

/// The default start of the modelled clock: 2024-01-01T00:00:00Z.
pub const DEFAULT_START: i64 = 1_704_067_200;

/// The RTC and its CMOS RAM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rtc {
    /// The 128 bytes of CMOS RAM; time registers 0-9 are computed on read.
    #[serde(with = "cmos_bytes")]
    pub cmos: [u8; 128],
    /// The index register (port 70H, bits 6:0).
    pub index: u8,
    /// NMI disabled (port 70H bit 7).
    pub nmi_disabled: bool,
    /// Seconds since the epoch at cycle `base_cycle`.
    base_secs: i64,
    /// The cycle the time base refers to.
    base_cycle: u64,
    /// The time base's sub-second phase at `base_cycle`, in 32.768 kHz ticks.
    base_phase: u64,
    /// Register C flags accumulated by events (PF, AF, UF, IRQF).
    flags: u8,
    /// The last cycle at which register C was read (polled UF/PF derive
    /// from it).
    c_read_at: u64,
    /// The next second boundary an alarm/update event was processed for.
    next_update: u64,
    /// The next periodic-interrupt event.
    next_periodic: u64,
}

mod cmos_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 128], s: S) -> Result<S::Ok, S::Error> {
        v.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 128], D::Error> {
        let v = Vec::<u8>::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("CMOS RAM must be 128 bytes"))
    }
}

fn bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0xf)
}

impl Rtc {
    /// A clock at `start` (seconds since 1970) with CMOS describing `ram_low`
    /// bytes of RAM below 4 GiB, `ram_high` above, and `cpus` processors.
    pub fn new(start: i64, ram_low: u64, ram_high: u64, cpus: u32) -> Self {
        let mut cmos = [0u8; 128];
        cmos[reg::A as usize] = 0x26;
        cmos[reg::B as usize] = B_24H;
        cmos[reg::D as usize] = 0x80;
        // Equipment: FPU and PS/2 mouse present; 640 KiB base memory.
        cmos[0x14] = 0x06;
        cmos[0x15] = 0x80;
        cmos[0x16] = 0x02;
        let ext_kib = (ram_low.saturating_sub(1 << 20) / 1024).min(0xffff);
        for off in [0x17, 0x30] {
            cmos[off] = ext_kib as u8;
            cmos[off + 1] = (ext_kib >> 8) as u8;
        }
        let above16 = (ram_low.saturating_sub(16 << 20) / 65536).min(0xffff);
        cmos[0x34] = above16 as u8;
        cmos[0x35] = (above16 >> 8) as u8;
        let above4g = ram_high / 65536;
        cmos[0x5b] = above4g as u8;
        cmos[0x5c] = (above4g >> 8) as u8;
        cmos[0x5d] = (above4g >> 16) as u8;
        cmos[0x5f] = cpus.saturating_sub(1) as u8;
        let mut r = Self {
            cmos,
            index: 0,
            nmi_disabled: false,
            base_secs: start,
            base_cycle: 0,
            base_phase: 0,
            flags: 0,
            c_read_at: 0,
            next_update: NEVER,
            next_periodic: NEVER,
        };
        let century = DateTime::from_unix(start).year.div_euclid(100) as u8;
        r.cmos[reg::CENTURY as usize] = bcd(century % 100);
        r
    }

    /// 32.768 kHz ticks since the epoch at `now` (time runs unless SET).
    fn ticks_at(&self, clock: &Clock, now: u64) -> i128 {
        let running = self.cmos[reg::B as usize] & B_SET == 0;
        let elapsed = if running {
            clock.ticks(now.saturating_sub(self.base_cycle), RTC_HZ)
        } else {
            0
        };
        self.base_secs as i128 * RTC_HZ as i128 + self.base_phase as i128 + elapsed as i128
    }

    /// Seconds since the epoch at `now`.
    pub fn seconds(&self, clock: &Clock, now: u64) -> i64 {
        self.ticks_at(clock, now).div_euclid(RTC_HZ as i128) as i64
    }

    /// The sub-second phase at `now`, in 32.768 kHz ticks.
    fn phase(&self, clock: &Clock, now: u64) -> u64 {
        self.ticks_at(clock, now).rem_euclid(RTC_HZ as i128) as u64
    }

    /// The cycle at which 32.768 kHz tick `t` (counted from the epoch) occurs.
    fn cycle_of_tick(&self, clock: &Clock, t: i128) -> u64 {
        let base = self.base_secs as i128 * RTC_HZ as i128 + self.base_phase as i128;
        if t <= base {
            return self.base_cycle;
        }
        let d = (t - base).min(u64::MAX as i128) as u64;
        self.base_cycle.saturating_add(clock.cycles_for(d, RTC_HZ))
    }

    fn encode(&self, v: u8) -> u8 {
        if self.cmos[reg::B as usize] & B_DM_BINARY != 0 {
            v
        } else {
            bcd(v)
        }
    }

    fn decode(&self, v: u8) -> u8 {
        if self.cmos[reg::B as usize] & B_DM_BINARY != 0 {
            v
        } else {
            from_bcd(v)
        }
    }

    fn encode_hour(&self, h: u8) -> u8 {
        if self.cmos[reg::B as usize] & B_24H != 0 {
            return self.encode(h);
        }
        let pm = h >= 12;
        let h12 = match h % 12 {
            0 => 12,
            x => x,
        };
        self.encode(h12) | (pm as u8) << 7
    }

    fn decode_hour(&self, v: u8) -> u8 {
        if self.cmos[reg::B as usize] & B_24H != 0 {
            return self.decode(v);
        }
        let h = self.decode(v & 0x7f) % 12;
        h + if v & 0x80 != 0 { 12 } else { 0 }
    }

    /// Time-register contents at `now`.
    fn time_register(&self, clock: &Clock, now: u64, index: u8) -> u8 {
        let dt = DateTime::from_unix(self.seconds(clock, now));
        match index {
            reg::SECONDS => self.encode(dt.second),
            reg::MINUTES => self.encode(dt.minute),
            reg::HOURS => self.encode_hour(dt.hour),
            reg::DAY_OF_WEEK => self.encode(dt.weekday()),
            reg::DAY_OF_MONTH => self.encode(dt.day),
            reg::MONTH => self.encode(dt.month),
            // QEMU keeps the century byte with the clock; so does nestemu.
            reg::CENTURY => bcd(dt.year.div_euclid(100).rem_euclid(100) as u8),
            _ => self.encode(dt.year.rem_euclid(100) as u8),
        }
    }

    /// True during the 244 us before a second's update.
    fn update_in_progress(&self, clock: &Clock, now: u64) -> bool {
        let b = self.cmos[reg::B as usize];
        let divider_on = self.cmos[reg::A as usize] & 0x70 == 0x20;
        if b & B_SET != 0 || !divider_on {
            return false;
        }
        self.phase(clock, now) >= RTC_HZ - UIP_TICKS
    }

    /// The periodic-interrupt period in 32.768 kHz ticks, if enabled by the
    /// rate select (register A bits 3:0).
    fn periodic_ticks(&self) -> Option<u64> {
        let rate = self.cmos[reg::A as usize] & 0x0f;
        match rate {
            0 => None,
            1 | 2 => Some(1 << (rate + 6)),
            r => Some(1 << (r - 1)),
        }
    }

    /// Reads port 71H.
    pub fn read(&mut self, clock: &Clock, now: u64) -> (u8, bool) {
        let i = self.index;
        match i {
            reg::SECONDS | reg::MINUTES | reg::HOURS | 6..=9 | reg::CENTURY => {
                if self.cmos[reg::B as usize] & B_SET != 0 {
                    (self.cmos[i as usize], false)
                } else {
                    (self.time_register(clock, now, i), false)
                }
            }
            reg::A => {
                let uip = if self.update_in_progress(clock, now) {
                    A_UIP
                } else {
                    0
                };
                (self.cmos[i as usize] & !A_UIP | uip, false)
            }
            reg::C => {
                let v = self.register_c(clock, now);
                self.flags = 0;
                self.c_read_at = now;
                // Reading C lowers IRQ 8.
                (v, true)
            }
            _ => (self.cmos[i as usize & 0x7f], false),
        }
    }

    /// Register C: accumulated event flags plus polled UF/PF since last read.
    fn register_c(&self, clock: &Clock, now: u64) -> u8 {
        let mut f = self.flags;
        if self.cmos[reg::B as usize] & B_SET == 0 {
            let last = self.ticks_at(clock, self.c_read_at.max(self.base_cycle));
            let cur = self.ticks_at(clock, now);
            if cur.div_euclid(RTC_HZ as i128) > last.div_euclid(RTC_HZ as i128) {
                f |= C_UF;
            }
            if let Some(p) = self.periodic_ticks() {
                if cur.div_euclid(p as i128) > last.div_euclid(p as i128) {
                    f |= C_PF;
                }
            }
        }
        let b = self.cmos[reg::B as usize];
        if f & (b & (B_PIE | B_AIE | B_UIE)) != 0 {
            f |= C_IRQF;
        }
        f
    }

    /// Writes port 71H.
    pub fn write(&mut self, clock: &Clock, now: u64, v: u8) {
        let i = self.index;
        match i {
            reg::SECONDS | reg::MINUTES | reg::HOURS | 6..=9 | reg::CENTURY => {
                if self.cmos[reg::B as usize] & B_SET == 0 {
                    // Writing a time register while the clock runs: take the
                    // current time, change the field, restart from it.
                    self.freeze(clock, now);
                    self.cmos[i as usize] = v;
                    self.thaw(now);
                } else {
                    self.cmos[i as usize] = v;
                }
            }
            reg::A => {
                let old = self.cmos[reg::A as usize];
                self.cmos[reg::A as usize] = v & !A_UIP;
                // Leaving divider reset restarts the second 500 ms later
                // (datasheet: the first update occurs 500 ms after).
                if old & 0x70 != 0x20 && v & 0x70 == 0x20 {
                    self.base_secs = self.seconds(clock, now);
                    self.base_cycle = now;
                    self.base_phase = RTC_HZ / 2;
                }
            }
            reg::B => {
                let old = self.cmos[reg::B as usize];
                if v & B_SET != 0 && old & B_SET == 0 {
                    self.freeze(clock, now);
                }
                self.cmos[reg::B as usize] = v;
                if v & B_SET == 0 && old & B_SET != 0 {
                    self.thaw(now);
                }
                if v & B_SET != 0 {
                    // SET also clears UIE (datasheet, register B bit 7).
                    self.cmos[reg::B as usize] &= !B_UIE;
                }
            }
            reg::C | reg::D => {}
            _ => self.cmos[i as usize & 0x7f] = v,
        }
        self.schedule(clock, now);
    }

    /// Copies the running time into the time registers.
    fn freeze(&mut self, clock: &Clock, now: u64) {
        for i in [
            reg::SECONDS,
            reg::MINUTES,
            reg::HOURS,
            reg::DAY_OF_WEEK,
            reg::DAY_OF_MONTH,
            reg::MONTH,
            reg::YEAR,
            reg::CENTURY,
        ] {
            self.cmos[i as usize] = self.time_register(clock, now, i);
        }
        self.base_phase = self.phase(clock, now);
        self.base_secs = self.seconds(clock, now);
        self.base_cycle = now;
    }

    /// Restarts the clock from the time registers.
    fn thaw(&mut self, now: u64) {
        let c = &self.cmos;
        let century = from_bcd(c[reg::CENTURY as usize]) as i64;
        let dt = DateTime {
            year: century * 100 + self.decode(c[reg::YEAR as usize]) as i64 % 100,
            month: self.decode(c[reg::MONTH as usize]).clamp(1, 12),
            day: self.decode(c[reg::DAY_OF_MONTH as usize]).clamp(1, 31),
            hour: self.decode_hour(c[reg::HOURS as usize]).min(23),
            minute: self.decode(c[reg::MINUTES as usize]).min(59),
            second: self.decode(c[reg::SECONDS as usize]).min(59),
        };
        let phase = self.base_phase;
        self.base_secs = dt.to_unix();
        self.base_cycle = now;
        self.base_phase = phase;
    }

    /// Recomputes the next alarm/update and periodic event times.
    fn schedule(&mut self, clock: &Clock, now: u64) {
        let b = self.cmos[reg::B as usize];
        let running = b & B_SET == 0 && self.cmos[reg::A as usize] & 0x70 == 0x20;
        let t = self.ticks_at(clock, now);
        self.next_update = if running && b & (B_AIE | B_UIE) != 0 {
            let next_sec = (t.div_euclid(RTC_HZ as i128) + 1) * RTC_HZ as i128;
            self.cycle_of_tick(clock, next_sec)
        } else {
            NEVER
        };
        self.next_periodic = match self.periodic_ticks() {
            Some(p) if running && b & B_PIE != 0 => {
                let next = (t.div_euclid(p as i128) + 1) * p as i128;
                self.cycle_of_tick(clock, next)
            }
            _ => NEVER,
        };
    }

    /// The next cycle at which an interrupt event happens.
    pub fn next_event(&self) -> u64 {
        self.next_update.min(self.next_periodic)
    }

    /// Processes events due at `now`; returns true if IRQ 8 must be raised.
    pub fn advance(&mut self, clock: &Clock, now: u64) -> bool {
        let b = self.cmos[reg::B as usize];
        let mut raise = false;
        if self.next_periodic <= now {
            self.flags |= C_PF;
            raise |= b & B_PIE != 0;
        }
        if self.next_update <= now {
            self.flags |= C_UF;
            raise |= b & B_UIE != 0;
            if self.alarm_matches(clock, now) {
                self.flags |= C_AF;
                raise |= b & B_AIE != 0;
            }
        }
        if raise {
            self.flags |= C_IRQF;
        }
        self.schedule(clock, now);
        raise
    }

    fn alarm_matches(&self, clock: &Clock, now: u64) -> bool {
        let c = &self.cmos;
        let dt = DateTime::from_unix(self.seconds(clock, now));
        let field = |alarm: u8, cur: u8| alarm & 0xc0 == 0xc0 || alarm == cur;
        field(c[reg::SECONDS_ALARM as usize], self.encode(dt.second))
            && field(c[reg::MINUTES_ALARM as usize], self.encode(dt.minute))
            && field(c[reg::HOURS_ALARM as usize], self.encode_hour(dt.hour))
    }

    /// True if the RTC can raise IRQ 8 in the future (an interrupt enable is
    /// set and the clock runs).
    pub fn interrupts_enabled(&self) -> bool {
        self.next_event() != NEVER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Clock = Clock {
        tsc_hz: super::super::clock::DEFAULT_TSC_HZ,
    };

    fn read(r: &mut Rtc, now: u64, i: u8) -> u8 {
        r.index = i;
        r.read(&C, now).0
    }

    fn write(r: &mut Rtc, now: u64, i: u8, v: u8) {
        r.index = i;
        r.write(&C, now, v);
    }

    #[test]
    fn calendar_round_trips() {
        for secs in [0i64, 951_782_400, 1_704_067_200, 4_107_542_399, -86_400] {
            let d = DateTime::from_unix(secs);
            assert_eq!(d.to_unix(), secs, "{d:?}");
        }
        let d = DateTime::from_unix(951_782_400);
        assert_eq!((d.year, d.month, d.day), (2000, 2, 29));
        assert_eq!(DateTime::from_unix(0).weekday(), 5, "Thursday");
        assert_eq!(
            DateTime::parse("2024-02-29T12:34:56").map(|d| d.hour),
            Some(12)
        );
        assert_eq!(DateTime::parse("2023-02-29"), None);
    }

    #[test]
    fn reads_the_configured_time_in_bcd() {
        let mut r = Rtc::new(DEFAULT_START + 3600 * 13 + 62, 64 << 20, 0, 1);
        assert_eq!(read(&mut r, 0, reg::YEAR), 0x24);
        assert_eq!(read(&mut r, 0, reg::MONTH), 0x01);
        assert_eq!(read(&mut r, 0, reg::HOURS), 0x13);
        assert_eq!(read(&mut r, 0, reg::MINUTES), 0x01);
        assert_eq!(read(&mut r, 0, reg::SECONDS), 0x02);
        assert_eq!(read(&mut r, 0, reg::CENTURY), 0x20);
        // Two modelled seconds later.
        assert_eq!(read(&mut r, 4_000_000_000, reg::SECONDS), 0x04);
        // Binary, 12-hour mode: 13:01 is 1 PM.
        write(&mut r, 0, reg::B, B_DM_BINARY);
        assert_eq!(read(&mut r, 0, reg::HOURS), 0x81);
    }

    #[test]
    fn set_bit_freezes_and_writes_time() {
        let mut r = Rtc::new(DEFAULT_START, 64 << 20, 0, 1);
        write(&mut r, 0, reg::B, B_SET | B_24H);
        write(&mut r, 0, reg::HOURS, 0x22);
        write(&mut r, 0, reg::MINUTES, 0x59);
        assert_eq!(read(&mut r, 10_000_000_000, reg::HOURS), 0x22, "frozen");
        write(&mut r, 10_000_000_000, reg::B, B_24H);
        assert_eq!(
            read(&mut r, 10_000_000_000 + 2_000_000_000 * 60, reg::HOURS),
            0x23
        );
    }

    #[test]
    fn uip_before_each_update_and_periodic_flag() {
        let mut r = Rtc::new(DEFAULT_START, 64 << 20, 0, 1);
        assert_eq!(read(&mut r, 0, reg::A) & A_UIP, 0);
        let late = C.cycles_for(RTC_HZ - 4, RTC_HZ);
        assert_eq!(read(&mut r, late, reg::A) & A_UIP, A_UIP);
        // 1024 Hz periodic interrupt.
        write(&mut r, 0, reg::B, B_24H | B_PIE);
        let t = r.next_event();
        assert_eq!(t, C.cycles_for(32, RTC_HZ));
        assert!(r.advance(&C, t));
        assert_eq!(read(&mut r, t, reg::C) & 0xc0, 0xc0);
        assert_eq!(read(&mut r, t, reg::C), 0, "reading C clears it");
    }

    #[test]
    fn cmos_memory_sizes() {
        let r = Rtc::new(DEFAULT_START, 256 << 20, 1 << 30, 1);
        assert_eq!(u16::from_le_bytes([r.cmos[0x34], r.cmos[0x35]]), 0x0f00);
        assert_eq!(r.cmos[0x5c], 0x40);
        assert_eq!(u16::from_le_bytes([r.cmos[0x30], r.cmos[0x31]]), 0xffff);
    }
}
