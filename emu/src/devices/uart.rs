//! A 16550A UART (National Semiconductor PC16550D datasheet), as the COM1 port
//! test kernels poll: transmit is instantaneous, so LSR.THRE and LSR.TEMT always
//! read 1; there is no receive data. Output bytes collect in a buffer that the
//! machine drains to the host.
//!
//! The device is a plain state machine (`read(offset)`, `write(offset, value)`)
//! whose state struct is its snapshot.

use serde::{Deserialize, Serialize};

/// Register offsets from the base port.
pub mod reg {
    /// Receiver buffer (read) / transmitter holding (write); DLL when DLAB=1.
    pub const DATA: u16 = 0;
    /// Interrupt enable; DLM when DLAB=1.
    pub const IER: u16 = 1;
    /// Interrupt identification (read) / FIFO control (write).
    pub const IIR_FCR: u16 = 2;
    /// Line control.
    pub const LCR: u16 = 3;
    /// Modem control.
    pub const MCR: u16 = 4;
    /// Line status.
    pub const LSR: u16 = 5;
    /// Modem status.
    pub const MSR: u16 = 6;
    /// Scratch.
    pub const SCR: u16 = 7;
}

const LCR_DLAB: u8 = 0x80;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;
const IER_THRI: u8 = 0x02;
const MCR_LOOP: u8 = 0x10;

/// The UART's register state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    fcr: u8,
    /// A THR-empty interrupt is pending (cleared by reading IIR or writing THR).
    thre_pending: bool,
    /// Bytes transmitted and not yet drained by the machine.
    #[serde(skip)]
    pub output: Vec<u8>,
}

impl Uart16550 {
    /// Reads the register at `offset` (0-7).
    pub fn read(&mut self, offset: u16) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            reg::DATA if dlab => self.dll,
            reg::DATA => 0,
            reg::IER if dlab => self.dlm,
            reg::IER => self.ier,
            reg::IIR_FCR => {
                let fifo = if self.fcr & 1 != 0 { 0xc0 } else { 0 };
                if self.thre_pending && self.ier & IER_THRI != 0 {
                    self.thre_pending = false;
                    fifo | 0x02
                } else {
                    fifo | 0x01
                }
            }
            reg::LCR => self.lcr,
            reg::MCR => self.mcr,
            reg::LSR => LSR_THRE | LSR_TEMT,
            // In loopback, the modem-status inputs reflect MCR outputs.
            reg::MSR if self.mcr & MCR_LOOP != 0 => {
                ((self.mcr & 0x0c) << 4) | ((self.mcr & 0x01) << 5) | ((self.mcr & 0x02) << 3)
            }
            // CTS, DSR and DCD asserted.
            reg::MSR => 0xb0,
            reg::SCR => self.scr,
            _ => 0xff,
        }
    }

    /// Writes `value` to the register at `offset` (0-7).
    pub fn write(&mut self, offset: u16, value: u8) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset {
            reg::DATA if dlab => self.dll = value,
            reg::DATA => {
                if self.mcr & MCR_LOOP == 0 {
                    self.output.push(value);
                }
                self.thre_pending = true;
            }
            reg::IER if dlab => self.dlm = value,
            reg::IER => {
                self.ier = value & 0x0f;
                self.thre_pending = true;
            }
            reg::IIR_FCR => self.fcr = value & 0xc9,
            reg::LCR => self.lcr = value,
            reg::MCR => self.mcr = value & 0x1f,
            reg::SCR => self.scr = value,
            _ => {}
        }
    }

    /// True if the UART asserts its interrupt line (THR empty and enabled).
    pub fn irq(&self) -> bool {
        self.thre_pending && self.ier & IER_THRI != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmit_and_status() {
        let mut u = Uart16550::default();
        assert_eq!(u.read(reg::LSR) & LSR_THRE, LSR_THRE);
        u.write(reg::DATA, b'h');
        u.write(reg::DATA, b'i');
        assert_eq!(u.output, b"hi");
    }

    #[test]
    fn divisor_latch_does_not_transmit() {
        let mut u = Uart16550::default();
        u.write(reg::LCR, 0x80);
        u.write(reg::DATA, 1);
        u.write(reg::IER, 0);
        u.write(reg::LCR, 0x03);
        assert!(u.output.is_empty());
        u.write(reg::LCR, 0x83);
        assert_eq!(u.read(reg::DATA), 1);
    }

    #[test]
    fn loopback_swallows_output() {
        let mut u = Uart16550::default();
        u.write(reg::MCR, 0x1f);
        u.write(reg::DATA, 0xae);
        assert!(u.output.is_empty());
        assert_eq!(u.read(reg::MSR) & 0xf0, 0xf0);
    }
}
