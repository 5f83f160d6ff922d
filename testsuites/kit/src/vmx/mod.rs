//! Writing L1 hypervisors with the kit: a VMX runtime for 64-bit kit
//! programs (VMXON, a known-good VMCS for a 64-bit L2 guest that shares the
//! kit's GDT, TSS and page tables, identity EPT tables, an exit handler that
//! records every exit) and *VMX cases*: per case, L1 code that adjusts the
//! VMCS, the L2 guest code, and optionally L1 code run at each exit.
//!
//! Each case gets a record at [`layout::RECORDS`] (see [`rec`]): how VMLAUNCH
//! ended (RFLAGS and VM-instruction error if it fell through), and for each
//! VM exit the exit-information fields and guest state (see [`log`]), plus
//! the L2 general-purpose registers at the last exit. The host side parses it
//! with [`VmxRecord::parse`].
//!
//! Register conventions: the helpers here use RAX and RBX as scratch. At an
//! exit, L1 code gets RBX = the case's record address; it ends by jumping to
//! [`VmxRt::resume`] (VMRESUME), [`VmxRt::skip`] (advance the guest RIP by
//! the exit instruction length, then VMRESUME) or [`VmxRt::finish`].

mod runtime;
mod suite;

pub use runtime::{VmxRt, GUEST_EXCEPTION};
pub use suite::{CaseFn, VmxCase, VmxSuite};

use crate::asm::{Asm, AsmResult};
use iced_x86::code_asm::*;
use vmx_model::Field;

/// Physical memory used by the VMX runtime (identity-mapped, inside the
/// 64-MiB machine the harness builds).
pub mod layout {
    /// The VMXON region.
    pub const VMXON: u64 = 0x180_0000;
    /// The VMCS every case uses.
    pub const VMCS: u64 = 0x180_1000;
    /// A second VMCS region.
    pub const VMCS2: u64 = 0x180_2000;
    /// I/O bitmap A.
    pub const IO_BITMAP_A: u64 = 0x180_3000;
    /// I/O bitmap B.
    pub const IO_BITMAP_B: u64 = 0x180_4000;
    /// MSR bitmaps.
    pub const MSR_BITMAP: u64 = 0x180_5000;
    /// Virtual-APIC page.
    pub const VIRTUAL_APIC: u64 = 0x180_6000;
    /// VM-entry MSR-load area.
    pub const ENTRY_MSR_LOAD: u64 = 0x180_7000;
    /// VM-exit MSR-store area.
    pub const EXIT_MSR_STORE: u64 = 0x180_7400;
    /// VM-exit MSR-load area.
    pub const EXIT_MSR_LOAD: u64 = 0x180_7800;
    /// Scratch memory for cases (4 KiB).
    pub const SCRATCH: u64 = 0x180_8000;
    /// The L2 guest's IDT (256 64-bit gates).
    pub const GUEST_IDT: u64 = 0x180_9000;
    /// Runtime variables (see [`super::var`]).
    pub const VARS: u64 = 0x180_a000;
    /// A spare 4-KiB page for cases (a third VMCS, descriptors, ...).
    pub const SPARE: u64 = 0x180_b000;
    /// EPT PML4.
    pub const EPT_PML4: u64 = 0x181_0000;
    /// EPT PDPT.
    pub const EPT_PDPT: u64 = 0x181_1000;
    /// Four EPT page directories mapping 0-4 GiB with 2-MiB pages.
    pub const EPT_PD: u64 = 0x181_2000;
    /// A spare EPT page table (for 4-KiB mappings in cases).
    pub const EPT_PT: u64 = 0x181_6000;
    /// The EPTP of the identity tables (write-back, 4 levels).
    pub const EPTP: u64 = EPT_PML4 | 0x1e;
    /// L2 stack top.
    pub const GUEST_STACK_TOP: u64 = 0x182_0000;
    /// L1 stack top at every VM exit.
    pub const HOST_STACK_TOP: u64 = 0x183_0000;
    /// L2 data (1 MiB).
    pub const GUEST_DATA: u64 = 0x184_0000;
    /// Page tables of 32-bit guests (PAE PDPT, page directories).
    pub const GUEST32_TABLES: u64 = 0x186_0000;
    /// Where 32-bit L2 code is copied.
    pub const CODE32: u64 = 0x170_0000;
    /// Where real-mode L2 code is copied (below 1 MiB).
    pub const CODE16: u64 = 0x9_0000;
    /// Case records.
    pub const RECORDS: u64 = 0x200_0000;
    /// Bytes per record.
    pub const RECORD_SIZE: u64 = 0x800;
}

/// Runtime variables at [`layout::VARS`].
pub mod var {
    /// Address of the current case's record.
    pub const RECORD: u64 = 0x00;
    /// Where the exit handler continues (the case's exit code).
    pub const HANDLER: u64 = 0x08;
    /// Where [`super::VmxRt::finish`] continues (the next case).
    pub const DONE: u64 = 0x10;
    /// The revision identifier from IA32_VMX_BASIC.
    pub const REVISION: u64 = 0x18;
    /// Exits after which the current case ends with status 2.
    pub const EXIT_LIMIT: u64 = 0x20;
    /// Cases may use 0x40-0xff.
    pub const USER: u64 = 0x40;
    /// L2 general-purpose registers saved at an exit (16 qwords).
    pub const EXIT_GPRS: u64 = 0x100;
}

/// Offsets in a case record.
pub mod rec {
    /// RFLAGS after VMLAUNCH fell through (VMfail).
    pub const LAUNCH_RFLAGS: u64 = 0x00;
    /// The VM-instruction error after a VMfailValid VMLAUNCH.
    pub const LAUNCH_ERROR: u64 = 0x08;
    /// 1 once a VM exit (or VM-entry failure exit) happened.
    pub const ENTERED: u64 = 0x10;
    /// Number of VM exits (the first [`MAX_EXITS`] are logged).
    pub const EXITS: u64 = 0x18;
    /// 1 finished, 2 more exits than the case's limit, 3 VMRESUME fell
    /// through.
    pub const STATUS: u64 = 0x20;
    /// RFLAGS after a VMRESUME that fell through.
    pub const RESUME_RFLAGS: u64 = 0x28;
    /// Its VM-instruction error.
    pub const RESUME_ERROR: u64 = 0x30;
    /// Free slots for the case (9 qwords).
    pub const USER: u64 = 0x38;
    /// L2 RAX..R15 at the last exit.
    pub const GPRS: u64 = 0x80;
    /// The exit log: [`MAX_EXITS`] entries of [`super::log::SIZE`] bytes.
    pub const LOG: u64 = 0x100;
    /// Most exits recorded per case.
    pub const MAX_EXITS: u64 = 12;
    /// An exception L1 took during the case, in the kit's record format
    /// (`crate::layout::rec` offsets from here).
    pub const L1_EXCEPTION: u64 = 0x700;
}

/// One entry of the exit log: the fields VMREAD after each exit, in order.
pub mod log {
    use vmx_model::Field;

    /// Bytes per entry.
    pub const SIZE: u64 = 0x80;
    /// The fields of an entry, slot by slot (slot 15 is free for the case).
    pub const FIELDS: [Field; 15] = [
        Field::ExitReason,
        Field::ExitQualification,
        Field::GuestLinearAddress,
        Field::GuestPhysicalAddress,
        Field::ExitInstructionLength,
        Field::ExitInstructionInfo,
        Field::ExitInterruptionInfo,
        Field::ExitInterruptionErrorCode,
        Field::IdtVectoringInfo,
        Field::IdtVectoringErrorCode,
        Field::GuestRip,
        Field::GuestRsp,
        Field::GuestRflags,
        Field::GuestInterruptibility,
        Field::GuestActivityState,
    ];
}

/// One recorded VM exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exit {
    /// Exit reason (bit 31 for VM-entry failures).
    pub reason: u64,
    /// Exit qualification.
    pub qualification: u64,
    /// Guest-linear address.
    pub guest_linear: u64,
    /// Guest-physical address.
    pub guest_physical: u64,
    /// VM-exit instruction length.
    pub insn_len: u64,
    /// VM-exit instruction information.
    pub insn_info: u64,
    /// VM-exit interruption information.
    pub intr_info: u64,
    /// VM-exit interruption error code.
    pub intr_error: u64,
    /// IDT-vectoring information.
    pub idt_info: u64,
    /// IDT-vectoring error code.
    pub idt_error: u64,
    /// Guest RIP.
    pub rip: u64,
    /// Guest RSP.
    pub rsp: u64,
    /// Guest RFLAGS.
    pub rflags: u64,
    /// Guest interruptibility state.
    pub interruptibility: u64,
    /// Guest activity state.
    pub activity: u64,
    /// Slot 15, written by the case's exit code.
    pub user: u64,
}

/// A decoded case record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmxRecord {
    /// RFLAGS after VMLAUNCH fell through.
    pub launch_rflags: u64,
    /// VM-instruction error after VMLAUNCH fell through.
    pub launch_error: u64,
    /// A VM exit happened.
    pub entered: bool,
    /// Every exit, logged or not.
    pub exit_count: u64,
    /// 1 finished, 2 too many exits, 3 VMRESUME fell through, 0 never ended.
    pub status: u64,
    /// RFLAGS after VMRESUME fell through.
    pub resume_rflags: u64,
    /// Its VM-instruction error.
    pub resume_error: u64,
    /// The case's free slots.
    pub user: [u64; 9],
    /// L2 RAX..R15 at the last exit.
    pub gprs: [u64; 16],
    /// The exits, in order; past [`rec::MAX_EXITS`] exits the last entry is
    /// the latest exit.
    pub exits: Vec<Exit>,
    /// An exception L1 took: (vector, error code, RIP).
    pub l1_exception: Option<(u8, u64, u64)>,
}

impl VmxRecord {
    /// Decodes a record.
    pub fn parse(b: &[u8]) -> Self {
        let q = |o: u64| u64::from_le_bytes(b[o as usize..o as usize + 8].try_into().expect("8"));
        let n = q(rec::EXITS).min(rec::MAX_EXITS);
        let exits = (0..n)
            .map(|k| {
                let e = rec::LOG + k * log::SIZE;
                let s = |i: u64| q(e + 8 * i);
                Exit {
                    reason: s(0),
                    qualification: s(1),
                    guest_linear: s(2),
                    guest_physical: s(3),
                    insn_len: s(4),
                    insn_info: s(5),
                    intr_info: s(6),
                    intr_error: s(7),
                    idt_info: s(8),
                    idt_error: s(9),
                    rip: s(10),
                    rsp: s(11),
                    rflags: s(12),
                    interruptibility: s(13),
                    activity: s(14),
                    user: s(15),
                }
            })
            .collect();
        let exc = rec::L1_EXCEPTION;
        let vec = q(exc + crate::layout::rec::EXC_VECTOR);
        Self {
            launch_rflags: q(rec::LAUNCH_RFLAGS),
            launch_error: q(rec::LAUNCH_ERROR),
            entered: q(rec::ENTERED) != 0,
            exit_count: q(rec::EXITS),
            status: q(rec::STATUS),
            resume_rflags: q(rec::RESUME_RFLAGS),
            resume_error: q(rec::RESUME_ERROR),
            user: core::array::from_fn(|i| q(rec::USER + 8 * i as u64)),
            gprs: core::array::from_fn(|i| q(rec::GPRS + 8 * i as u64)),
            exits,
            l1_exception: (vec != 0).then(|| {
                (
                    (vec - 1) as u8,
                    q(exc + crate::layout::rec::EXC_ERROR),
                    q(exc + crate::layout::rec::EXC_RIP),
                )
            }),
        }
    }

    /// The last exit.
    pub fn last(&self) -> Option<&Exit> {
        self.exits.last()
    }
}

/// An absolute 64-bit memory operand (identity-mapped, below 2 GiB).
pub fn at(a: u64) -> AsmMemoryOperand {
    qword_ptr(a as u32 as u64)
}

/// VMWRITE of an immediate to `field` (clobbers RAX, RBX).
pub fn vmw(a: &mut Asm, field: Field, value: u64) -> AsmResult {
    a.mov(rax, value)?;
    vmw_reg(a, field, rax)
}

/// VMWRITE of `reg` to `field` (clobbers RBX; `reg` must not be RBX).
pub fn vmw_reg(a: &mut Asm, field: Field, reg: AsmRegister64) -> AsmResult {
    a.mov(ebx, field.encoding())?;
    a.vmwrite(rbx, reg)
}

/// VMREAD of `field` into `reg` (clobbers RBX; `reg` must not be RBX).
pub fn vmr(a: &mut Asm, reg: AsmRegister64, field: Field) -> AsmResult {
    a.mov(ebx, field.encoding())?;
    a.vmread(reg, rbx)
}

/// ORs `bits` into `field` (clobbers RAX, RBX, RCX).
pub fn vmor(a: &mut Asm, field: Field, bits: u64) -> AsmResult {
    vmr(a, rax, field)?;
    a.mov(rcx, bits)?;
    a.or(rax, rcx)?;
    vmw_reg(a, field, rax)
}

/// Clears `bits` of `field` (clobbers RAX, RBX, RCX).
pub fn vmclr(a: &mut Asm, field: Field, bits: u64) -> AsmResult {
    vmr(a, rax, field)?;
    a.mov(rcx, !bits)?;
    a.and(rax, rcx)?;
    vmw_reg(a, field, rax)
}

/// Stores `reg` in user slot `slot` (0-8) of the current record (clobbers
/// RBX; `reg` must not be RBX).
pub fn store_user(a: &mut Asm, slot: u64, reg: AsmRegister64) -> AsmResult {
    a.mov(rbx, at(layout::VARS + var::RECORD))?;
    a.mov(qword_ptr(rbx + (rec::USER + 8 * slot) as i32), reg)
}

/// Sets L2 register `n` (RAX = 0 ... R15 = 15) for the next VMRESUME
/// (clobbers RAX).
pub fn set_guest_gpr(a: &mut Asm, n: u64, value: u64) -> AsmResult {
    a.mov(rax, value)?;
    a.mov(at(layout::VARS + var::EXIT_GPRS + 8 * n), rax)
}

/// Writes a qword of physical memory (clobbers RAX).
pub fn poke(a: &mut Asm, addr: u64, value: u64) -> AsmResult {
    a.mov(rax, value)?;
    a.mov(at(addr), rax)
}

pub use crate::asm::place;
