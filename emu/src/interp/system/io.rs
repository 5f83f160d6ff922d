//! IN and OUT and the I/O permission check shared with INS/OUTS (SDM Vol. 1
//! 19.5 "Protected-mode I/O": IOPL, then the TSS I/O permission bitmap).

use crate::devices::IoEffect;
use crate::event::{Event, Flow, Stop};
use crate::machine::Machine;
use crate::memory::access::Privilege;
use crate::virt::Intercept;
use iced_x86::{Instruction, OpKind};
use mmu::CpuMode;

impl Machine {
    /// #GP(0) unless the current privilege may access `size` ports at `port`:
    /// in real mode always; in protected mode if CPL <= IOPL; otherwise (and
    /// always in virtual-8086 mode) if every bit of the range is clear in the
    /// TSS I/O permission bitmap (SDM Vol. 1 19.5.2).
    pub fn check_io(&mut self, port: u16, size: usize) -> Flow {
        let mode = self.cpu.mode.mode;
        if mode == CpuMode::Real {
            return Ok(());
        }
        let iopl = self.cpu.flags.rflags().iopl();
        if mode != CpuMode::Virtual8086 && self.cpu.cpl() <= iopl {
            return Ok(());
        }
        let tr = self.cpu.sys.tr;
        // Only a 32-bit or 64-bit TSS has a bitmap.
        if !matches!(tr.attr.typ(), 9 | 11) || tr.limit < 0x67 {
            return Err(Event::gp0());
        }
        let base_off = self.read_linear(self.wrap_linear(tr.base + 0x66), 2, Privilege::System)?;
        let byte = base_off + (port as u64 >> 3);
        if byte + 1 > tr.limit as u64 {
            return Err(Event::gp0());
        }
        let bits = self.read_linear(self.wrap_linear(tr.base + byte), 2, Privilege::System)?;
        let mask = ((1u64 << size) - 1) << (port & 7);
        if bits & mask != 0 {
            return Err(Event::gp0());
        }
        Ok(())
    }

    /// Reads `size` bytes from an I/O port.
    pub fn port_in(&mut self, port: u16, size: usize) -> Result<u64, Event> {
        if self.dbg.io_armed {
            self.check_io_breakpoints(port, size);
        }
        Ok(self.dev.port_read(port, size as u8) as u64)
    }

    /// Writes `size` bytes to an I/O port; device effects become events.
    pub fn port_out(&mut self, port: u16, size: usize, v: u64) -> Flow {
        if self.dbg.io_armed {
            self.check_io_breakpoints(port, size);
        }
        match self.dev.port_write(port, size as u8, v as u32) {
            IoEffect::None => Ok(()),
            IoEffect::DebugExit(x) => Err(Event::stop(Stop::DebugExit(x))),
        }
    }
}

/// The intercept of an I/O instruction.
pub(crate) fn io(port: u16, size: usize, input: bool, string: bool, rep: bool) -> Intercept {
    Intercept::Io {
        port,
        size: size as u8,
        input,
        string,
        rep,
    }
}

/// The port operand: DX or an immediate.
fn port_of(m: &Machine, i: &Instruction, n: u32) -> u16 {
    if i.op_kind(n) == OpKind::Register {
        m.cpu.gpr[2] as u16
    } else {
        i.immediate8() as u16
    }
}

/// IN AL/AX/EAX, imm8/DX.
pub fn in_(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 0);
    let port = port_of(m, i, 1);
    m.check_io(port, size)?;
    m.intercept(i, io(port, size, true, false, false))?;
    let v = m.port_in(port, size)?;
    m.write_op(i, 0, v)
}

/// OUT imm8/DX, AL/AX/EAX.
pub fn out(m: &mut Machine, i: &Instruction) -> Flow {
    let size = m.op_size(i, 1);
    let port = port_of(m, i, 0);
    m.check_io(port, size)?;
    m.intercept(i, io(port, size, false, false, false))?;
    let v = m.read_op(i, 1)?;
    m.port_out(port, size, v)
}
