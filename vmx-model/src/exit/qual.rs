//! Exit-qualification formats (SDM Vol. 3C 28.2.1, "Basic VM-Exit Information",
//! tables "Exit Qualification for Debug Exceptions", "... for Task Switches",
//! "... for Control-Register Accesses", "... for MOV DR", "... for I/O
//! Instructions", "... for APIC-Access VM Exits", "... for EPT Violations").
//!
//! For INVLPG the qualification is the linear-address operand; for #PF the
//! faulting linear address; for the VMX instructions, LGDT/LIDT/SGDT/SIDT,
//! LLDT/LTR/SLDT/STR, INVEPT/INVVPID/INVPCID and XSAVES/XRSTORS with a memory
//! operand, the operand's displacement (sign-extended); for SIPI the vector.

use bitflags::bitflags;
use serde::{Deserialize, Serialize};

/// Access type of a control-register access (bits 5:4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CrAccess {
    /// MOV to CR from general-purpose register `gpr`.
    MovTo {
        /// Register number (0 = RAX ... 15 = R15).
        gpr: u8,
    },
    /// MOV from CR to `gpr`.
    MovFrom {
        /// Register number.
        gpr: u8,
    },
    /// CLTS (CR0).
    Clts,
    /// LMSW (CR0) with its 16-bit source; `memory` if the operand is in memory.
    Lmsw {
        /// True for a memory operand.
        memory: bool,
        /// The source data.
        source: u16,
    },
}

/// Control-register access: CR number in bits 3:0, type in 5:4, LMSW operand type
/// in bit 6, register in 11:8, LMSW source data in 31:16.
pub const fn cr_access(cr: u8, access: CrAccess) -> u64 {
    let cr = (cr & 0xf) as u64;
    match access {
        CrAccess::MovTo { gpr } => cr | ((gpr & 0xf) as u64) << 8,
        CrAccess::MovFrom { gpr } => cr | 1 << 4 | ((gpr & 0xf) as u64) << 8,
        CrAccess::Clts => 2 << 4,
        CrAccess::Lmsw { memory, source } => 3 << 4 | (memory as u64) << 6 | (source as u64) << 16,
    }
}

/// MOV DR: DR number in bits 2:0, direction in bit 4 (1 = MOV from DR), register
/// in bits 11:8.
pub const fn mov_dr(dr: u8, from_dr: bool, gpr: u8) -> u64 {
    (dr & 7) as u64 | (from_dr as u64) << 4 | ((gpr & 0xf) as u64) << 8
}

/// An I/O instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IoAccess {
    /// Port number.
    pub port: u16,
    /// Access size in bytes: 1, 2 or 4.
    pub size: u8,
    /// IN/INS (true) or OUT/OUTS.
    pub input: bool,
    /// INS/OUTS.
    pub string: bool,
    /// REP prefix.
    pub rep: bool,
    /// Port given as an immediate (false: in DX).
    pub immediate: bool,
}

/// I/O instruction: size - 1 in bits 2:0, direction in bit 3 (1 = IN), string in
/// bit 4, REP in bit 5, operand encoding in bit 6 (1 = immediate), port in 31:16.
pub const fn io(a: IoAccess) -> u64 {
    (a.size.saturating_sub(1) & 7) as u64
        | (a.input as u64) << 3
        | (a.string as u64) << 4
        | (a.rep as u64) << 5
        | (a.immediate as u64) << 6
        | (a.port as u64) << 16
}

/// Source of a task switch (bits 31:30).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskSwitchSource {
    /// CALL instruction.
    Call = 0,
    /// IRET instruction.
    Iret = 1,
    /// JMP instruction.
    Jmp = 2,
    /// Task gate in the IDT.
    TaskGate = 3,
}

/// Task switch: the new TSS selector in bits 15:0, the source in bits 31:30.
pub const fn task_switch(selector: u16, source: TaskSwitchSource) -> u64 {
    selector as u64 | (source as u64) << 30
}

/// APIC-access type (bits 15:12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ApicAccessType {
    /// Linear access for a data read during instruction execution.
    LinearRead = 0,
    /// Linear access for a data write during instruction execution.
    LinearWrite = 1,
    /// Linear access for an instruction fetch.
    LinearFetch = 2,
    /// Linear access (read or write) during event delivery.
    LinearEventDelivery = 3,
    /// Guest-physical access during event delivery.
    PhysicalEventDelivery = 10,
    /// Guest-physical access for an instruction fetch or during instruction execution.
    PhysicalInstruction = 15,
}

/// APIC access: page offset in bits 11:0 (for linear accesses), type in 15:12,
/// bit 16 set if the access was asynchronous to instruction execution.
pub const fn apic_access(offset: u16, kind: ApicAccessType, asynchronous: bool) -> u64 {
    (offset & 0xfff) as u64 | (kind as u64) << 12 | (asynchronous as u64) << 16
}

bitflags! {
    /// EPT-violation exit qualification. The `mmu` walker decides the bits; the
    /// VM exit carries them.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct EptViolation: u64 {
        /// The access was a data read.
        const READ = 1 << 0;
        /// The access was a data write.
        const WRITE = 1 << 1;
        /// The access was an instruction fetch.
        const FETCH = 1 << 2;
        /// The guest-physical address was readable (AND of the EPT entries' bit 0).
        const READABLE = 1 << 3;
        /// ... writable.
        const WRITABLE = 1 << 4;
        /// ... executable (supervisor-executable with mode-based execute control).
        const EXECUTABLE = 1 << 5;
        /// ... user-mode executable (mode-based execute control).
        const USER_EXECUTABLE = 1 << 6;
        /// The guest-linear-address field is valid.
        const LINEAR_ADDRESS_VALID = 1 << 7;
        /// If bit 7: the access was to the translation of a linear address (else to
        /// a paging-structure entry).
        const LINEAR_TRANSLATION = 1 << 8;
        /// Advanced information: the linear address was user-mode.
        const USER_MODE_LINEAR = 1 << 9;
        /// Advanced information: the linear address was writable.
        const READ_WRITE_LINEAR = 1 << 10;
        /// Advanced information: the linear address was execute-disable.
        const EXECUTE_DISABLE_LINEAR = 1 << 11;
        /// NMI unblocking due to IRET.
        const NMI_UNBLOCKING = 1 << 12;
        /// Shadow-stack access.
        const SHADOW_STACK = 1 << 13;
        /// Supervisor shadow stack.
        const SUPERVISOR_SHADOW_STACK = 1 << 14;
        /// Guest-paging verification.
        const GUEST_PAGING_VERIFICATION = 1 << 15;
        /// Asynchronous to instruction execution.
        const ASYNCHRONOUS = 1 << 16;
    }
}

/// Debug exception (#DB) exit: B3-B0 in bits 3:0, BD in 13, BS in 14, RTM in 16
/// (the DR6 bits the exception would have set).
pub const fn debug_exception(dr6: u64) -> u64 {
    dr6 & (0xf | 1 << 13 | 1 << 14 | 1 << 16)
}

/// VM-entry failure qualification: default (27.8).
pub const ENTRY_FAILURE_DEFAULT: u64 = 0;
/// VM-entry failure qualification: problem loading the PDPTEs.
pub const ENTRY_FAILURE_PDPTE: u64 = 2;
/// VM-entry failure qualification: NMI injection with blocking by STI.
pub const ENTRY_FAILURE_NMI_STI: u64 = 3;
/// VM-entry failure qualification: invalid VMCS link pointer.
pub const ENTRY_FAILURE_LINK_POINTER: u64 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_register_examples() {
        // MOV CR3, RAX (to CR3): 0x3. MOV RBX, CR0: 0x310. MOV CR8, R15: 0xf08.
        assert_eq!(cr_access(3, CrAccess::MovTo { gpr: 0 }), 0x3);
        assert_eq!(cr_access(0, CrAccess::MovFrom { gpr: 3 }), 0x310);
        assert_eq!(cr_access(8, CrAccess::MovTo { gpr: 15 }), 0xf08);
        assert_eq!(cr_access(0, CrAccess::Clts), 0x20);
        let lmsw = cr_access(
            0,
            CrAccess::Lmsw {
                memory: true,
                source: 0x1234,
            },
        );
        assert_eq!(lmsw, 0x1234_0070);
    }

    #[test]
    fn io_examples() {
        // OUT DX, AL to port 0x3f8: size 1, out, DX-encoded.
        let out = io(IoAccess {
            port: 0x3f8,
            size: 1,
            input: false,
            string: false,
            rep: false,
            immediate: false,
        });
        assert_eq!(out, 0x03f8_0000);
        // REP INSD from port 0x1f0: size 4 -> 3, in, string, rep.
        let ins = io(IoAccess {
            port: 0x1f0,
            size: 4,
            input: true,
            string: true,
            rep: true,
            immediate: false,
        });
        assert_eq!(ins, 0x01f0_003b);
        // IN AX, 0x60: size 2 -> 1, in, immediate.
        let inw = io(IoAccess {
            port: 0x60,
            size: 2,
            input: true,
            string: false,
            rep: false,
            immediate: true,
        });
        assert_eq!(inw, 0x0060_0049);
    }

    #[test]
    fn other_examples() {
        assert_eq!(mov_dr(7, true, 2), 0x217);
        assert_eq!(mov_dr(0, false, 8), 0x800);
        assert_eq!(task_switch(0x28, TaskSwitchSource::TaskGate), 0xc000_0028);
        assert_eq!(task_switch(0x30, TaskSwitchSource::Iret), 0x4000_0030);
        assert_eq!(
            apic_access(0x80, ApicAccessType::LinearWrite, false),
            0x1080
        );
        assert_eq!(debug_exception(0xfffe_4ff1), 0x4001);
        let ev = EptViolation::WRITE
            | EptViolation::READABLE
            | EptViolation::LINEAR_ADDRESS_VALID
            | EptViolation::LINEAR_TRANSLATION;
        assert_eq!(ev.bits(), 0x18a);
    }
}
