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
        let now = self.now();
        let v = self.dev.port_read(port, size as u8, now) as u64;
        self.after_device_access();
        Ok(v)
    }

    /// Writes `size` bytes to an I/O port; device effects become events.
    pub fn port_out(&mut self, port: u16, size: usize, v: u64) -> Flow {
        if self.dbg.io_armed {
            self.check_io_breakpoints(port, size);
        }
        let now = self.now();
        let fx = self.dev.port_write(port, size as u8, v as u32, now);
        self.after_device_access();
        self.device_effect(fx)
    }

    /// Ends the block after a device access that may have changed pending
    /// interrupts, so the boundary check sees it before the next instruction.
    #[inline]
    pub(crate) fn after_device_access(&mut self) {
        if self.dev.check_at <= self.stats.cycles {
            self.stop_block = true;
        }
    }

    /// Turns what a device write asks for into the machine's event.
    pub(crate) fn device_effect(&mut self, fx: IoEffect) -> Flow {
        match fx {
            IoEffect::None => Ok(()),
            IoEffect::DebugExit(x) => Err(Event::stop(Stop::DebugExit(x))),
            IoEffect::PowerOff => Err(Event::stop(Stop::PowerOff)),
            IoEffect::Reset(why) => Err(Event::stop(Stop::Reset(why.into()))),
            IoEffect::Sleep(typ) => {
                let cs = self.cpu.seg(mmu::SegReg::Cs).base;
                Err(Event::unimplemented(
                    format!("ACPI sleep state SLP_TYP={typ} (only S5 power-off is modelled)"),
                    cs.wrapping_add(self.cpu.rip),
                ))
            }
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
