//! The I/O APIC (Intel 82093AA datasheet) at FEC00000H: the index register
//! (IOREGSEL) at +00H and the data window (IOWIN) at +10H; registers 00H ID,
//! 01H version, 02H arbitration ID, 10H-3FH the 24 redirection entries.
//!
//! The version register reads 00170020H (version 20H, 24 entries), as QEMU's
//! `pc` machine reports it; version 20H adds the EOI register at +40H, which
//! takes a vector and acts as the local APIC's EOI broadcast does.
//! Edge-triggered pins send a message on a rising edge of an unmasked entry;
//! level-triggered pins send while asserted, set Remote IRR, and send again
//! only after the local APIC's EOI for the vector clears it (82093AA 3.2.4).

use serde::{Deserialize, Serialize};

/// Number of input pins.
pub const PINS: usize = 24;
/// The version register value.
pub const VERSION: u32 = 0x0017_0020;

const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const REMOTE_IRR: u64 = 1 << 14;
/// Bits of a redirection entry software can write: vector, delivery mode,
/// destination mode, polarity, trigger mode, mask, destination.
const WRITABLE: u64 = 0xff00_0000_0001_afff;

/// An interrupt message to the local APICs (82093AA 3.2.4 fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// Vector.
    pub vector: u8,
    /// Delivery mode (0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT,
    /// 7 ExtINT).
    pub delivery: u8,
    /// Logical destination mode.
    pub logical: bool,
    /// Destination (APIC ID or logical mask).
    pub dest: u8,
    /// Level-triggered.
    pub level: bool,
    /// The pin that sent it.
    pub pin: u8,
}

/// The I/O APIC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoApic {
    /// IOREGSEL.
    pub index: u8,
    /// The ID register's APIC ID (bits 27:24).
    pub id: u8,
    /// Redirection entries.
    pub redir: Vec<u64>,
    /// Pin input levels.
    pub pins: u32,
}

impl Default for IoApic {
    fn default() -> Self {
        Self {
            index: 0,
            id: 0,
            redir: vec![MASKED; PINS],
            pins: 0,
        }
    }
}

impl IoApic {
    /// Reads the MMIO register at `offset` (IOREGSEL or IOWIN).
    pub fn read(&self, offset: u64) -> u32 {
        match offset {
            0x00 => self.index as u32,
            0x10 => self.read_reg(self.index),
            _ => 0,
        }
    }

    fn read_reg(&self, i: u8) -> u32 {
        match i {
            0x00 | 0x02 => (self.id as u32) << 24,
            0x01 => VERSION,
            0x10..=0x3f => {
                let e = self.redir[(i as usize - 0x10) / 2];
                if i & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    /// Writes the MMIO register at `offset`; returns messages the change
    /// sends (an unmasked level entry whose pin is asserted).
    pub fn write(&mut self, offset: u64, v: u32, out: &mut Vec<Message>) {
        match offset {
            0x00 => self.index = v as u8,
            0x10 => self.write_reg(self.index, v, out),
            0x40 => self.eoi(v as u8, out),
            _ => {}
        }
    }

    fn write_reg(&mut self, i: u8, v: u32, out: &mut Vec<Message>) {
        match i {
            0x00 => self.id = ((v >> 24) & 0xf) as u8,
            0x10..=0x3f => {
                let pin = (i as usize - 0x10) / 2;
                let e = &mut self.redir[pin];
                let keep = *e & !WRITABLE;
                let mut new = if i & 1 == 0 {
                    (*e & 0xffff_ffff_0000_0000) | v as u64
                } else {
                    (*e & 0xffff_ffff) | (v as u64) << 32
                };
                new = (new & WRITABLE) | keep;
                // Remote IRR has no meaning for edge entries.
                if new & LEVEL == 0 {
                    new &= !REMOTE_IRR;
                }
                *e = new;
                self.service(pin, out);
            }
            _ => {}
        }
    }

    /// The message entry `pin` sends.
    fn message(&self, pin: usize) -> Message {
        let e = self.redir[pin];
        Message {
            vector: e as u8,
            delivery: ((e >> 8) & 7) as u8,
            logical: e & (1 << 11) != 0,
            dest: (e >> 56) as u8,
            level: e & LEVEL != 0,
            pin: pin as u8,
        }
    }

    /// Sends pin `pin`'s message if it is level-triggered, asserted, unmasked
    /// and not awaiting EOI.
    fn service(&mut self, pin: usize, out: &mut Vec<Message>) {
        let e = self.redir[pin];
        let asserted = self.pins & (1 << pin) != 0;
        if e & LEVEL != 0 && asserted && e & MASKED == 0 && e & REMOTE_IRR == 0 {
            let m = self.message(pin);
            // Remote IRR is set when a fixed or lowest-priority level
            // interrupt is accepted (82093AA 3.2.4, bit 14).
            if m.delivery <= 1 {
                self.redir[pin] |= REMOTE_IRR;
            }
            out.push(m);
        }
    }

    /// Drives input `pin` to `level`.
    pub fn set_pin(&mut self, pin: usize, level: bool, out: &mut Vec<Message>) {
        let bit = 1u32 << pin;
        let was = self.pins & bit != 0;
        if level {
            self.pins |= bit;
        } else {
            self.pins &= !bit;
        }
        let e = self.redir[pin];
        if e & LEVEL != 0 {
            self.service(pin, out);
        } else if level && !was && e & MASKED == 0 {
            out.push(self.message(pin));
        }
    }

    /// An EOI for `vector` from a local APIC: clears Remote IRR of the level
    /// entries with that vector and resends those still asserted.
    pub fn eoi(&mut self, vector: u8, out: &mut Vec<Message>) {
        for pin in 0..PINS {
            let e = self.redir[pin];
            if e & LEVEL != 0 && e as u8 == vector && e & REMOTE_IRR != 0 {
                self.redir[pin] &= !REMOTE_IRR;
                self.service(pin, out);
            }
        }
    }

    /// No local APIC accepted pin `pin`'s level message: Remote IRR is set
    /// only on acceptance (82093AA 3.2.4, bit 14), so it clears again.
    pub fn not_accepted(&mut self, pin: usize) {
        self.redir[pin] &= !REMOTE_IRR;
    }

    /// True if pin `pin` is unmasked.
    pub fn unmasked(&self, pin: usize) -> bool {
        self.redir[pin] & MASKED == 0
    }

    /// Delivery mode and vector of entry `pin`.
    pub fn entry(&self, pin: usize) -> Message {
        self.message(pin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redir(io: &mut IoApic, pin: u8, lo: u32, hi: u32) -> Vec<Message> {
        let mut out = Vec::new();
        io.write(0, (0x10 + 2 * pin) as u32, &mut out);
        io.write(0x10, lo, &mut out);
        io.write(0, (0x11 + 2 * pin) as u32, &mut out);
        io.write(0x10, hi, &mut out);
        out
    }

    #[test]
    fn registers() {
        let mut io = IoApic::default();
        let mut out = Vec::new();
        io.write(0, 1, &mut out);
        assert_eq!(io.read(0x10), VERSION);
        io.write(0x10, 0, &mut out);
        assert_eq!(io.read(0x10), VERSION, "version is read-only");
        assert_eq!(
            VERSION & 0xff,
            0x20,
            "QEMU's version, with the EOI register"
        );
        io.write(0, 0, &mut out);
        io.write(0x10, 0xffff_ffff, &mut out);
        assert_eq!(
            io.read(0x10),
            0x0f00_0000,
            "only ID bits 27:24 are writable"
        );
        io.write(0, 2, &mut out);
        assert_eq!(io.read(0x10), 0x0f00_0000, "arbitration ID follows the ID");
        io.write(0, 0x10, &mut out);
        assert_eq!(io.read(0x10), 0x1_0000, "entries start masked");
    }

    #[test]
    fn edge_on_rising_edge_only_when_unmasked() {
        let mut io = IoApic::default();
        redir(&mut io, 14, 0x76, 0);
        let mut out = Vec::new();
        io.set_pin(14, true, &mut out);
        io.set_pin(14, true, &mut out);
        io.set_pin(14, false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].vector, 0x76);
        redir(&mut io, 14, 0x76 | 1 << 16, 0);
        out.clear();
        io.set_pin(14, true, &mut out);
        io.set_pin(14, false, &mut out);
        assert!(out.is_empty(), "a masked edge is lost");
        assert!(redir(&mut io, 14, 0x76, 0).is_empty());
    }

    #[test]
    fn level_remote_irr_and_eoi() {
        let mut io = IoApic::default();
        redir(&mut io, 14, 0x77 | 1 << 15, 0);
        let mut out = Vec::new();
        io.set_pin(14, true, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].level);
        io.set_pin(14, false, &mut out);
        io.set_pin(14, true, &mut out);
        assert_eq!(out.len(), 1, "Remote IRR holds further messages");
        io.eoi(0x77, &mut out);
        assert_eq!(out.len(), 2, "still asserted after EOI: sent again");
        io.set_pin(14, false, &mut out);
        io.set_pin(14, true, &mut out);
        io.write(0x40, 0x77, &mut out);
        assert_eq!(out.len(), 3, "the EOI register of version 20H");
        io.set_pin(14, false, &mut out);
        io.eoi(0x77, &mut out);
        assert_eq!(out.len(), 3);
        io.write(0, 0x1c, &mut out);
        assert_eq!(io.read(0x10) & (1 << 14), 0, "Remote IRR clear");
    }

    #[test]
    fn unmasking_an_asserted_level_pin_sends() {
        let mut io = IoApic::default();
        redir(&mut io, 14, 0x82 | 1 << 15 | 1 << 16, 0);
        let mut out = Vec::new();
        io.set_pin(14, true, &mut out);
        assert!(out.is_empty());
        let out = redir(&mut io, 14, 0x82 | 1 << 15, 0);
        assert_eq!(out.len(), 1);
    }
}
