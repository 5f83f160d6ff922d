//! Debug registers: instruction, data and I/O breakpoints (SDM Vol. 3B 18.2,
//! "Debug registers", and 18.3, "Debug exceptions").
//!
//! DR7 is decoded once when it (or CR4.DE) changes into a few "armed" flags,
//! so the interpreter's fast paths pay one predictable branch when no
//! breakpoint is set. Instruction breakpoints are faults checked before an
//! instruction (suppressed by RFLAGS.RF); data and I/O breakpoints are traps
//! reported after the instruction that matched, through `pending`.

use crate::machine::Machine;
use mmu::{Cr4, Dr7};
use serde::{Deserialize, Serialize};

/// The decoded breakpoint state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugState {
    /// Some enabled breakpoint has R/W = 00 (instruction execution).
    pub exec_armed: bool,
    /// Some enabled breakpoint has R/W = 01 or 11 (data write, read/write).
    pub data_armed: bool,
    /// Some enabled breakpoint has R/W = 10 with CR4.DE = 1 (I/O).
    pub io_armed: bool,
    /// DR6 B0-B3 bits of data/I/O breakpoints matched by the current
    /// instruction, delivered as a trap when it completes.
    pub pending: u64,
}

impl DebugState {
    /// True if any breakpoint is armed.
    #[inline(always)]
    pub fn any(&self) -> bool {
        self.exec_armed || self.data_armed || self.io_armed
    }
}

/// The condition of breakpoint `n` (DR7 R/Wn).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cond {
    Exec,
    Write,
    Io,
    ReadWrite,
}

fn cond(dr7: Dr7, n: usize) -> Cond {
    match dr7.rw(n) {
        0 => Cond::Exec,
        1 => Cond::Write,
        2 => Cond::Io,
        _ => Cond::ReadWrite,
    }
}

impl Machine {
    /// Re-decodes DR7 after a change of DR7, DR0-DR3 or CR4.DE.
    pub fn debug_changed(&mut self) {
        let dr7 = self.cpu.sys.dr7;
        let de = self.cpu.sys.cr4.contains(Cr4::DE);
        let mut s = DebugState {
            pending: self.dbg.pending,
            ..DebugState::default()
        };
        for n in 0..4 {
            if !dr7.enabled(n) {
                continue;
            }
            match cond(dr7, n) {
                Cond::Exec => s.exec_armed = true,
                Cond::Write | Cond::ReadWrite => s.data_armed = true,
                Cond::Io if de => s.io_armed = true,
                Cond::Io => {}
            }
        }
        self.dbg = s;
    }

    /// The DR6 B bits of instruction breakpoints at linear address `la`
    /// (SDM Vol. 3B 18.3.1.1: the breakpoint address is the first byte of the
    /// instruction, including prefixes; LEN must be 00).
    pub(crate) fn exec_breakpoints(&self, la: u64) -> u64 {
        let dr7 = self.cpu.sys.dr7;
        (0..4)
            .filter(|&n| dr7.enabled(n) && cond(dr7, n) == Cond::Exec && self.cpu.sys.dr[n] == la)
            .fold(0, |b, n| b | 1 << n)
    }

    /// Records data breakpoints matched by an access of `size` bytes at `la`.
    #[cold]
    pub(crate) fn check_data_breakpoints(&mut self, la: u64, size: usize, write: bool) {
        let dr7 = self.cpu.sys.dr7;
        for n in 0..4 {
            let c = cond(dr7, n);
            let hit_kind = match c {
                Cond::Write => write,
                Cond::ReadWrite => true,
                _ => false,
            };
            if !dr7.enabled(n) || !hit_kind {
                continue;
            }
            let len = dr7.len_bytes(n);
            let base = self.cpu.sys.dr[n] & !(len - 1);
            let end = la.wrapping_add(size as u64);
            if la < base + len && end > base {
                self.dbg.pending |= 1 << n;
            }
        }
    }

    /// Records I/O breakpoints matched by an access of `size` bytes at
    /// `port` (CR4.DE = 1, R/W = 10).
    #[cold]
    pub(crate) fn check_io_breakpoints(&mut self, port: u16, size: usize) {
        let dr7 = self.cpu.sys.dr7;
        for n in 0..4 {
            if !dr7.enabled(n) || cond(dr7, n) != Cond::Io {
                continue;
            }
            let len = dr7.len_bytes(n);
            let base = self.cpu.sys.dr[n] & 0xffff & !(len - 1);
            let p = port as u64;
            if p < base + len && p + size as u64 > base {
                self.dbg.pending |= 1 << n;
            }
        }
    }
}
