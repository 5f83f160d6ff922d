//! The 8042 keyboard controller as far as kernels without a keyboard touch it
//! (ports 60H data, 64H status/command): the status register, the
//! controller command byte, self-test, and the reset line — command FEH
//! pulses it, and so does writing the output port with bit 0 clear. No
//! keyboard or mouse is attached, so no scan codes and no IRQ 1/12 arrive.

use serde::{Deserialize, Serialize};

const STATUS_OBF: u8 = 0x01;
const STATUS_SYS: u8 = 0x04;
const STATUS_CMD: u8 = 0x08;
const STATUS_UNLOCKED: u8 = 0x10;

/// What a KBC write asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KbcEffect {
    /// Nothing more.
    None,
    /// The CPU reset line was pulsed.
    Reset,
}

/// The controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kbc {
    /// The controller command byte.
    pub command_byte: u8,
    /// A byte waiting in the output buffer.
    output: Option<u8>,
    /// The command whose data byte port 60H receives next.
    pending: Option<u8>,
    /// The last write went to port 64H.
    last_was_command: bool,
}

impl Default for Kbc {
    fn default() -> Self {
        Self {
            // Keyboard interrupt enabled, system flag, translation.
            command_byte: 0x45,
            output: None,
            pending: None,
            last_was_command: false,
        }
    }
}

impl Kbc {
    /// Reads port 60H or 64H.
    pub fn read(&mut self, port: u16) -> u8 {
        if port == 0x64 {
            let mut s = STATUS_SYS | STATUS_UNLOCKED;
            if self.output.is_some() {
                s |= STATUS_OBF;
            }
            if self.last_was_command {
                s |= STATUS_CMD;
            }
            return s;
        }
        self.output.take().unwrap_or(0)
    }

    /// Writes port 60H or 64H.
    pub fn write(&mut self, port: u16, v: u8) -> KbcEffect {
        if port == 0x64 {
            self.last_was_command = true;
            self.pending = None;
            match v {
                0x20 => self.output = Some(self.command_byte),
                0x60 | 0xd1 | 0xd2 | 0xd3 | 0xd4 => self.pending = Some(v),
                0xaa => self.output = Some(0x55),
                0xab => self.output = Some(0x00),
                0xd0 => self.output = Some(0x03),
                // Pulse output-port bit 0 (the CPU reset line) low.
                0xfe => return KbcEffect::Reset,
                0xf0..=0xff if v & 1 == 0 => return KbcEffect::Reset,
                _ => {}
            }
            return KbcEffect::None;
        }
        self.last_was_command = false;
        match self.pending.take() {
            Some(0x60) => self.command_byte = v,
            Some(0xd1) if v & 1 == 0 => return KbcEffect::Reset,
            // Writes to the keyboard with nothing attached: no answer.
            _ => {}
        }
        KbcEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_paths_and_self_test() {
        let mut k = Kbc::default();
        assert_eq!(k.write(0x64, 0xaa), KbcEffect::None);
        assert_eq!(k.read(0x64) & STATUS_OBF, STATUS_OBF);
        assert_eq!(k.read(0x60), 0x55);
        assert_eq!(k.write(0x64, 0xfe), KbcEffect::Reset);
        k.write(0x64, 0xd1);
        assert_eq!(k.write(0x60, 0xfe), KbcEffect::Reset);
        k.write(0x64, 0x60);
        k.write(0x60, 0x01);
        k.write(0x64, 0x20);
        assert_eq!(k.read(0x60), 0x01);
    }
}
