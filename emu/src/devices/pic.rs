//! The 8259A programmable interrupt controller pair of the PC (Intel 8259A
//! datasheet): master at ports 20H/21H with the slave cascaded on its IR2,
//! slave at A0H/A1H, and the PIIX edge/level control registers (ELCR) at
//! 4D0H/4D1H.
//!
//! Modelled: the ICW1-ICW4 initialization sequence, OCW1 masks, OCW2 EOI and
//! rotation commands, OCW3 register select, poll and special mask, automatic
//! EOI, fully nested priority with rotation, edge and level triggering, and
//! the spurious IRQ 7 / IRQ 15 an INTA cycle returns when the request went away.
//! Buffered mode and 8080/85 call vectors are accepted and ignored (a PC never
//! uses them). The reset state here is the one QEMU's SeaBIOS programs,
//! vector bases 08H and 70H, both chips fully masked; the machine's
//! firmware hand-off then opens SeaBIOS's IRQs (see
//! `Devices::firmware_handoff`).

use serde::{Deserialize, Serialize};

/// One 8259A.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pic8259 {
    /// Interrupt request register.
    pub irr: u8,
    /// In-service register.
    pub isr: u8,
    /// Interrupt mask register (OCW1).
    pub imr: u8,
    /// Input levels seen last (edge detection).
    last_level: u8,
    /// Edge/level control (1 = level), from the PIIX ELCR.
    pub elcr: u8,
    /// The ELCR bits that may be set (the timer, keyboard and cascade inputs
    /// are always edge-triggered).
    elcr_mask: u8,
    /// Vector base (ICW2, bits 7:3).
    pub vector_base: u8,
    /// The IR with the lowest priority is `priority_add + 7` (rotation).
    priority_add: u8,
    /// Next initialization word expected: 0 none, 2-4 ICW2-ICW4.
    init_step: u8,
    /// ICW4 will follow (ICW1.IC4).
    icw4_needed: bool,
    /// Single mode (ICW1.SNGL): no ICW3.
    single: bool,
    /// Automatic EOI (ICW4.AEOI).
    pub auto_eoi: bool,
    /// Rotate on automatic EOI (OCW2 R/SL/EOI = 100/000).
    rotate_on_auto_eoi: bool,
    /// Special fully nested mode (ICW4.SFNM).
    special_fully_nested: bool,
    /// OCW3 read-register select: ISR instead of IRR.
    read_isr: bool,
    /// OCW3 poll command pending: the next read is a poll.
    poll: bool,
    /// Special mask mode (OCW3 ESMM/SMM).
    special_mask: bool,
}

impl Pic8259 {
    fn new(vector_base: u8, elcr_mask: u8) -> Self {
        Self {
            imr: 0xff,
            vector_base,
            elcr_mask,
            ..Self::default()
        }
    }

    /// Why this state is not one the 8259A model reaches (a damaged
    /// snapshot), if it is not.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.priority_add > 7 || !matches!(self.init_step, 0 | 2 | 3 | 4) {
            return Err(format!(
                "8259 with lowest priority {} + 7 and initialization step {}",
                self.priority_add, self.init_step
            ));
        }
        Ok(())
    }

    /// The highest-priority bit set in `mask`, as an IR number.
    fn priority(&self, mask: u8) -> Option<u8> {
        (0..8)
            .map(|k| (k + self.priority_add) & 7)
            .find(|&ir| mask & (1 << ir) != 0)
    }

    /// The IR this chip asks the CPU to service, if any (its INT output).
    pub fn pending(&self, cascade_ir: Option<u8>) -> Option<u8> {
        let ir = self.priority(self.irr & !self.imr)?;
        let mut isr = self.isr;
        if self.special_mask {
            isr &= !self.imr;
        }
        // In special fully nested mode the master lets the slave interrupt
        // again while the cascade input is in service.
        if let Some(c) = cascade_ir {
            if self.special_fully_nested {
                isr &= !(1 << c);
            }
        }
        match self.priority(isr) {
            Some(cur) if self.rank(cur) <= self.rank(ir) => None,
            _ => Some(ir),
        }
    }

    /// Position of `ir` in the current priority order (0 = highest).
    fn rank(&self, ir: u8) -> u8 {
        ir.wrapping_sub(self.priority_add) & 7
    }

    /// Drives input `ir` to `level`.
    pub fn set_input(&mut self, ir: u8, level: bool) {
        let bit = 1u8 << ir;
        if self.elcr & bit != 0 {
            if level {
                self.irr |= bit;
                self.last_level |= bit;
            } else {
                self.irr &= !bit;
                self.last_level &= !bit;
            }
        } else if level {
            if self.last_level & bit == 0 {
                self.irr |= bit;
            }
            self.last_level |= bit;
        } else {
            self.last_level &= !bit;
        }
    }

    /// The INTA cycle for `ir`: IRR to ISR (or automatic EOI).
    fn acknowledge(&mut self, ir: u8) {
        let bit = 1u8 << ir;
        if self.elcr & bit == 0 {
            self.irr &= !bit;
        }
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.priority_add = (ir + 1) & 7;
            }
        } else {
            self.isr |= bit;
        }
    }

    /// Reads port 0 (IRR/ISR/poll) or 1 (IMR) of this chip.
    pub fn read(&mut self, port: u8) -> u8 {
        if self.poll {
            self.poll = false;
            return match self.pending(None) {
                Some(ir) => {
                    self.acknowledge(ir);
                    0x80 | ir
                }
                None => 0,
            };
        }
        match port {
            0 if self.read_isr => self.isr,
            0 => self.irr,
            _ => self.imr,
        }
    }

    /// Writes port 0 (ICW1, OCW2, OCW3) or 1 (ICW2-4, OCW1).
    pub fn write(&mut self, port: u8, v: u8) {
        if port == 0 {
            if v & 0x10 != 0 {
                self.icw1(v);
            } else if v & 0x08 != 0 {
                self.ocw3(v);
            } else {
                self.ocw2(v);
            }
            return;
        }
        match self.init_step {
            2 => {
                self.vector_base = v & 0xf8;
                self.init_step = if !self.single {
                    3
                } else if self.icw4_needed {
                    4
                } else {
                    0
                };
            }
            3 => self.init_step = if self.icw4_needed { 4 } else { 0 },
            4 => {
                self.auto_eoi = v & 0x02 != 0;
                self.special_fully_nested = v & 0x10 != 0;
                self.init_step = 0;
            }
            _ => self.imr = v,
        }
    }

    /// ICW1: starts initialization; clears masks, ISR and modes (8259A
    /// datasheet, "Initialization command words": edge sense latch reset,
    /// IMR cleared, IR7 lowest priority, special mask off, IRR selected).
    fn icw1(&mut self, v: u8) {
        self.init_step = 2;
        self.icw4_needed = v & 0x01 != 0;
        self.single = v & 0x02 != 0;
        self.imr = 0;
        self.isr = 0;
        self.irr &= self.elcr;
        self.last_level &= self.elcr;
        self.priority_add = 0;
        self.auto_eoi = false;
        self.rotate_on_auto_eoi = false;
        self.special_fully_nested = false;
        self.special_mask = false;
        self.read_isr = false;
        self.poll = false;
    }

    /// OCW2: EOI and rotation commands.
    fn ocw2(&mut self, v: u8) {
        let ir = v & 7;
        match v >> 5 {
            0 => self.rotate_on_auto_eoi = false,
            4 => self.rotate_on_auto_eoi = true,
            // Non-specific EOI (optionally rotating).
            1 | 5 => {
                if let Some(cur) = self.priority(self.isr) {
                    self.isr &= !(1 << cur);
                    if v >> 5 == 5 {
                        self.priority_add = (cur + 1) & 7;
                    }
                }
            }
            // Specific EOI (optionally rotating).
            3 | 7 => {
                self.isr &= !(1 << ir);
                if v >> 5 == 7 {
                    self.priority_add = (ir + 1) & 7;
                }
            }
            // Set priority: IR `ir` becomes the lowest.
            6 => self.priority_add = (ir + 1) & 7,
            _ => {}
        }
    }

    /// OCW3: read-register select, poll, special mask.
    fn ocw3(&mut self, v: u8) {
        if v & 0x04 != 0 {
            self.poll = true;
        }
        if v & 0x02 != 0 {
            self.read_isr = v & 0x01 != 0;
        }
        if v & 0x40 != 0 {
            self.special_mask = v & 0x20 != 0;
        }
    }
}

/// The master/slave pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PicPair {
    /// The master (IRQ 0-7).
    pub master: Pic8259,
    /// The slave (IRQ 8-15), on the master's IR2.
    pub slave: Pic8259,
}

/// The master input the slave drives.
const CASCADE: u8 = 2;

impl Default for PicPair {
    fn default() -> Self {
        Self {
            master: Pic8259::new(0x08, 0xf8),
            slave: Pic8259::new(0x70, 0xde),
        }
    }
}

impl PicPair {
    /// Drives ISA IRQ `irq` (0-15) to `level`.
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        if irq < 8 {
            self.master.set_input(irq, level);
        } else {
            self.slave.set_input(irq - 8, level);
            self.update_cascade();
        }
    }

    /// The slave's INT output drives master IR2.
    fn update_cascade(&mut self) {
        let level = self.slave.pending(None).is_some();
        self.master.set_input(CASCADE, level);
    }

    /// True if the master asserts INTR to the CPU.
    pub fn intr(&self) -> bool {
        self.master.pending(Some(CASCADE)).is_some()
    }

    /// The INTA cycle: the vector of the highest-priority request, or the
    /// spurious IR7 vector of the chip whose request went away.
    pub fn acknowledge(&mut self) -> u8 {
        let v = match self.master.pending(Some(CASCADE)) {
            Some(CASCADE) => {
                self.master.acknowledge(CASCADE);
                match self.slave.pending(None) {
                    Some(ir) => {
                        self.slave.acknowledge(ir);
                        self.slave.vector_base + ir
                    }
                    None => self.slave.vector_base + 7,
                }
            }
            Some(ir) => {
                self.master.acknowledge(ir);
                self.master.vector_base + ir
            }
            None => self.master.vector_base + 7,
        };
        self.update_cascade();
        v
    }

    /// Reads a PIC port (20H, 21H, A0H, A1H, 4D0H, 4D1H).
    pub fn read(&mut self, port: u16) -> u8 {
        let v = match port {
            0x20 | 0x21 => self.master.read((port & 1) as u8),
            0xa0 | 0xa1 => self.slave.read((port & 1) as u8),
            0x4d0 => self.master.elcr,
            0x4d1 => self.slave.elcr,
            _ => 0xff,
        };
        self.update_cascade();
        v
    }

    /// Writes a PIC port.
    pub fn write(&mut self, port: u16, v: u8) {
        match port {
            0x20 | 0x21 => self.master.write((port & 1) as u8, v),
            0xa0 | 0xa1 => self.slave.write((port & 1) as u8, v),
            0x4d0 => self.master.elcr = v & self.master.elcr_mask,
            0x4d1 => self.slave.elcr = v & self.slave.elcr_mask,
            _ => {}
        }
        self.update_cascade();
    }

    /// True if `irq` is masked in its chip (and, for the slave, at the cascade).
    pub fn masked(&self, irq: u8) -> bool {
        if irq < 8 {
            self.master.imr & (1 << irq) != 0
        } else {
            self.slave.imr & (1 << (irq - 8)) != 0 || self.master.imr & (1 << CASCADE) != 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ICW sequence a PC kernel writes: ICW1 edge+ICW4, bases, cascade,
    /// 8086 mode.
    fn init(p: &mut PicPair, base_m: u8, base_s: u8, icw4: u8) {
        p.write(0x20, 0x11);
        p.write(0x21, base_m);
        p.write(0x21, 0x04);
        p.write(0x21, icw4);
        p.write(0xa0, 0x11);
        p.write(0xa1, base_s);
        p.write(0xa1, 0x02);
        p.write(0xa1, icw4);
    }

    #[test]
    fn masked_at_reset() {
        let mut p = PicPair::default();
        assert_eq!(p.read(0x21), 0xff);
        assert_eq!(p.read(0xa1), 0xff);
        p.set_irq(0, true);
        assert!(!p.intr());
    }

    #[test]
    fn edge_request_eoi_and_nesting() {
        let mut p = PicPair::default();
        init(&mut p, 0x20, 0x28, 0x01);
        assert_eq!(p.read(0x21), 0, "ICW1 clears the mask");
        p.set_irq(3, true);
        p.set_irq(1, true);
        assert!(p.intr());
        assert_eq!(p.acknowledge(), 0x21, "IRQ1 has priority over IRQ3");
        assert!(!p.intr(), "IRQ3 waits for IRQ1's EOI");
        p.write(0x20, 0x20);
        assert_eq!(p.acknowledge(), 0x23);
        p.write(0x20, 0x63);
        assert!(!p.intr());
        // Edge: holding the line high does not request again.
        p.set_irq(1, false);
        p.set_irq(1, true);
        assert_eq!(p.acknowledge(), 0x21);
    }

    #[test]
    fn slave_through_cascade_and_spurious() {
        let mut p = PicPair::default();
        init(&mut p, 0x20, 0x28, 0x01);
        p.set_irq(8, true);
        assert!(p.intr());
        assert_eq!(p.acknowledge(), 0x28);
        p.write(0xa0, 0x20);
        p.write(0x20, 0x20);
        // A level request that drops before INTA gives the spurious IR7.
        p.write(0x4d1, 0x02);
        p.set_irq(9, true);
        assert!(p.intr());
        p.set_irq(9, false);
        assert_eq!(p.acknowledge(), 0x2f, "spurious IRQ 15");
    }

    #[test]
    fn auto_eoi_poll_and_isr_read() {
        let mut p = PicPair::default();
        init(&mut p, 0x20, 0x28, 0x03);
        p.set_irq(4, true);
        assert_eq!(p.acknowledge(), 0x24);
        p.write(0x20, 0x0b);
        assert_eq!(p.read(0x20), 0, "automatic EOI leaves ISR clear");
        p.set_irq(5, true);
        p.write(0x20, 0x0c);
        assert_eq!(p.read(0x20), 0x85, "poll returns IR5 and acknowledges it");
        assert!(!p.intr());
    }

    #[test]
    fn rotation_changes_priority() {
        let mut p = PicPair::default();
        init(&mut p, 0x20, 0x28, 0x01);
        // Set priority: IR3 lowest, so IR4 is highest.
        p.write(0x20, 0xc3);
        p.set_irq(0, true);
        p.set_irq(4, true);
        assert_eq!(p.acknowledge(), 0x24);
    }
}
