//! Instruction exits: an L1 hypervisor runs a 64-bit L2 guest per case, sets
//! the control that makes one instruction exit, and the host side checks the
//! exit reason, qualification, instruction length, instruction information
//! and saved RIP (SDM Vol. 3C 26.1, 28.2.1, 28.2.5). Also the non-root
//! behaviour that is not an exit: read shadows, CR3-target values, bitmaps
//! with the bit clear, the TSC offset.

mod vmx_common;

#[path = "vmx_exits/control_registers.rs"]
mod control_registers;
#[path = "vmx_exits/instructions.rs"]
mod instructions;
#[path = "vmx_exits/io_and_msrs.rs"]
mod io_and_msrs;
#[path = "vmx_exits/system_and_vmx.rs"]
mod system_and_vmx;

use guestkit::vmx::{layout, poke, set_guest_gpr, store_user, vmclr, vmor, vmr, vmw, VmxCase};
use guestkit::Asm;
use iced_x86::code_asm::*;
use mmu::SegReg;
use vmx_common::*;
use vmx_model::controls::{Proc2Controls as P2, ProcControls as P1};
use vmx_model::exit::insn_info::{self as ii, AddressSize, MemOperand, Operand};
use vmx_model::exit::qual::{self, CrAccess, IoAccess};
use vmx_model::Field as F;

pub(crate) fn p1(a: &mut Asm, bits: P1) -> guestkit::AsmResult {
    vmor(a, F::PrimaryProcBasedControls, bits.bits() as u64)
}

pub(crate) fn p2(a: &mut Asm, bits: P2) -> guestkit::AsmResult {
    vmor(a, F::SecondaryProcBasedControls, bits.bits() as u64)
}

/// A memory operand through `base` in 64-bit code.
pub(crate) fn mem64(base: u8, seg: SegReg) -> MemOperand {
    MemOperand {
        scale: 0,
        address_size: AddressSize::A64,
        segment: seg,
        index: None,
        base: Some(base),
    }
}

/// A case whose guest executes `body` (with R13 marking the instruction
/// under test) under the primary controls `ctl`, expecting exit `r` with
/// qualification `q` and length `l` first, then the final VMCALL.
pub(crate) fn simple(
    t: &mut Table,
    name: &str,
    ctl: P1,
    body: fn(&mut Asm) -> guestkit::AsmResult,
    r: u64,
    q: u64,
    l: u64,
) {
    t.case(
        VmxCase::guest(name, move |a, _| {
            body(a)?;
            Ok(())
        })
        .setup(move |a, _| p1(a, ctl)),
        vec![
            reason(0, r),
            qual(0, q),
            len(0, l),
            rip_marked(0),
            ends_with_vmcall(),
            exits(2),
        ],
    );
}

#[test]
fn instruction_exits() {
    let mut t = Table::default();
    instructions::unconditional(&mut t);
    instructions::secondary(&mut t);
    control_registers::control_registers(&mut t);
    io_and_msrs::io_and_msrs(&mut t);
    system_and_vmx::descriptor_tables(&mut t);
    system_and_vmx::vmx_instructions(&mut t);
    system_and_vmx::non_root_behaviour(&mut t);
    let n = t.checks.len();
    t.run();
    eprintln!("vmx instruction exits: {n} cases passed");
}
