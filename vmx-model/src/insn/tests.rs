//! Tests of the VMX instructions' #UD/#GP/VMfail/VMsucceed outcomes.

use super::*;
use crate::caps::{VmxCaps, VmxFeatures};
use crate::controls::Proc2Controls as P2;
use crate::error::VmInstructionError as E;
use crate::mem::{Access, FlatMem, PhysMem, PhysMemExt};
use crate::testkit::{addr, Machine};
use crate::vmcs::{Field, LaunchState, Region, INVALID_POINTER};
use mmu::{CpuMode, Cr4, Exception};

fn fresh() -> (VmxState, VmxCaps, FlatMem, InsnCtx) {
    let caps = VmxCaps::default();
    let mut mem = FlatMem::new(0x10_0000);
    for r in [addr::VMXON, addr::VMCS, addr::VMCS2] {
        mem.write_u32(r, caps.features.revision_id, Access::Vmcs);
    }
    (VmxState::default(), caps, mem, InsnCtx::long_mode_cpl0())
}

fn on(s: &mut VmxState, caps: &VmxCaps, ctx: &InsnCtx, mem: &mut FlatMem, pa: u64) -> Outcome {
    vmxon(s, caps, ctx, mem, || Ok(pa))
}

#[test]
fn vmxon_fault_order() {
    let (mut s, caps, mut mem, ctx) = fresh();
    let ud = Outcome::Fault(Exception::ud());
    let gp = Outcome::Fault(Exception::gp0());
    let no_vmxe = InsnCtx {
        cr4: Cr4::PAE,
        ..ctx
    };
    assert_eq!(on(&mut s, &caps, &no_vmxe, &mut mem, addr::VMXON), ud);
    let compat = InsnCtx {
        mode: CpuMode::Compatibility,
        ..ctx
    };
    assert_eq!(on(&mut s, &caps, &compat, &mut mem, addr::VMXON), ud);
    let user = InsnCtx { cpl: 3, ..ctx };
    assert_eq!(on(&mut s, &caps, &user, &mut mem, addr::VMXON), gp);
    let unlocked = InsnCtx {
        feature_control: crate::caps::FeatureControl(4),
        ..ctx
    };
    assert_eq!(on(&mut s, &caps, &unlocked, &mut mem, addr::VMXON), gp);
    let no_ne = InsnCtx {
        cr0: ctx.cr0 - mmu::Cr0::NE,
        ..ctx
    };
    assert_eq!(on(&mut s, &caps, &no_ne, &mut mem, addr::VMXON), gp);
    let a20 = InsnCtx { a20m: true, ..ctx };
    assert_eq!(on(&mut s, &caps, &a20, &mut mem, addr::VMXON), gp);
    let pf = Exception::with_code(mmu::Vector::PF, 2);
    assert_eq!(
        vmxon(&mut s, &caps, &ctx, &mut mem, || Err(pf)),
        Outcome::Fault(pf)
    );
    assert!(!s.in_vmx_operation());
}

#[test]
fn vmxon_pointer_checks_then_success_then_root_errors() {
    let (mut s, caps, mut mem, ctx) = fresh();
    for bad in [addr::VMXON | 8, 1 << 50] {
        assert_eq!(on(&mut s, &caps, &ctx, &mut mem, bad), Outcome::FailInvalid);
    }
    mem.write_u32(0x9000, caps.features.revision_id | 1 << 31, Access::Vmcs);
    assert_eq!(
        on(&mut s, &caps, &ctx, &mut mem, 0x9000),
        Outcome::FailInvalid
    );
    mem.write_u32(0x9000, caps.features.revision_id + 1, Access::Vmcs);
    assert_eq!(
        on(&mut s, &caps, &ctx, &mut mem, 0x9000),
        Outcome::FailInvalid
    );
    assert_eq!(
        on(&mut s, &caps, &ctx, &mut mem, addr::VMXON),
        Outcome::Succeed(())
    );
    assert_eq!(s.current_ptr(), INVALID_POINTER);
    // VMXON in root: VMfailInvalid without a current VMCS, VMfailValid(15) with one.
    assert_eq!(
        on(&mut s, &caps, &ctx, &mut mem, addr::VMXON),
        Outcome::FailInvalid
    );
    assert!(vmptrld(&mut s, &caps, &ctx, &mut mem, || Ok(addr::VMCS)).succeeded());
    assert_eq!(
        on(&mut s, &caps, &ctx, &mut mem, addr::VMXON),
        Outcome::FailValid(E::VmxonInRoot)
    );
    assert_eq!(s.vmcs().unwrap().get(Field::VmInstructionError), 15);
    s.non_root = true;
    assert_eq!(
        on(&mut s, &caps, &ctx, &mut mem, addr::VMXON),
        Outcome::Exit(ExitReason::Vmxon)
    );
}

#[test]
fn vmclear_and_vmptrld_errors() {
    let mut m = Machine::intel();
    let (caps, ctx) = (m.caps.clone(), m.ctx);
    let clear =
        |m: &mut Machine, pa: u64| vmclear(&mut m.state, &caps, &ctx, &mut m.mem, || Ok(pa));
    assert_eq!(
        clear(&mut m, addr::VMCS2 + 1),
        Outcome::FailValid(E::VmclearInvalidAddress)
    );
    assert_eq!(
        clear(&mut m, 1 << 50),
        Outcome::FailValid(E::VmclearInvalidAddress)
    );
    assert_eq!(
        clear(&mut m, addr::VMXON),
        Outcome::FailValid(E::VmclearVmxonPointer)
    );
    let load = |m: &mut Machine, pa: u64| vmptrld(&mut m.state, &caps, &ctx, &mut m.mem, || Ok(pa));
    assert_eq!(
        load(&mut m, addr::VMCS2 | 0x10),
        Outcome::FailValid(E::VmptrldInvalidAddress)
    );
    assert_eq!(
        load(&mut m, addr::VMXON),
        Outcome::FailValid(E::VmptrldVmxonPointer)
    );
    m.mem.write_u32(0x9000, 0x55, Access::Vmcs);
    assert_eq!(
        load(&mut m, 0x9000),
        Outcome::FailValid(E::VmptrldIncorrectRevision)
    );
    // A shadow VMCS needs VMCS shadowing (not in the intel preset).
    m.mem
        .write_u32(0x9000, caps.features.revision_id | 1 << 31, Access::Vmcs);
    assert_eq!(
        load(&mut m, 0x9000),
        Outcome::FailValid(E::VmptrldIncorrectRevision)
    );
    assert_eq!(m.get(Field::VmInstructionError), 11);
    assert_eq!(
        m.state.current_ptr(),
        addr::VMCS,
        "failed VMPTRLD keeps the current VMCS"
    );
}

#[test]
fn vmptrld_switch_flushes_and_vmclear_invalidates() {
    let mut m = Machine::intel();
    let (caps, ctx) = (m.caps.clone(), m.ctx);
    m.set(Field::GuestRip, 0x1234);
    assert!(vmptrld(&mut m.state, &caps, &ctx, &mut m.mem, || Ok(addr::VMCS2)).succeeded());
    let flushed = Region::load(&mut m.mem, addr::VMCS, Access::Vmcs);
    assert_eq!(flushed.vmcs.get(Field::GuestRip), 0x1234);
    assert_eq!(vmptrst(&m.state, &ctx), Outcome::Succeed(addr::VMCS2));
    assert!(vmptrld(&mut m.state, &caps, &ctx, &mut m.mem, || Ok(addr::VMCS)).succeeded());
    assert_eq!(m.get(Field::GuestRip), 0x1234);
    assert!(vmclear(&mut m.state, &caps, &ctx, &mut m.mem, || Ok(addr::VMCS)).succeeded());
    assert_eq!(vmptrst(&m.state, &ctx), Outcome::Succeed(INVALID_POINTER));
    let r = Region::load(&mut m.mem, addr::VMCS, Access::Vmcs);
    assert_eq!(
        (r.launch, r.vmcs.get(Field::GuestRip)),
        (LaunchState::Clear, 0x1234)
    );
}

#[test]
fn vmread_vmwrite_outcomes() {
    let mut m = Machine::intel();
    let (caps, ctx) = (m.caps.clone(), m.ctx);
    let enc = Field::GuestRip.encoding() as u64;
    let w = vmwrite(&mut m.state, &caps, &ctx, &mut m.mem, enc, || Ok(0xabcd));
    assert_eq!(w, Outcome::Succeed(()));
    assert_eq!(
        vmread(&mut m.state, &caps, &ctx, &mut m.mem, enc),
        Outcome::Succeed(0xabcd)
    );
    let unsupported = Field::PmlAddress.encoding() as u64;
    let r = vmread(&mut m.state, &caps, &ctx, &mut m.mem, unsupported);
    assert_eq!(r, Outcome::FailValid(E::UnsupportedComponent));
    let user = InsnCtx { cpl: 3, ..ctx };
    let gp = vmread(&mut m.state, &caps, &user, &mut m.mem, enc);
    assert_eq!(gp, Outcome::Fault(Exception::gp0()));
    let compat = InsnCtx {
        mode: CpuMode::Compatibility,
        ..ctx
    };
    let ud = vmread(&mut m.state, &caps, &compat, &mut m.mem, enc);
    assert_eq!(ud, Outcome::Fault(Exception::ud()));
    // A faulting memory source is reported after the field checks.
    let pf = Exception::with_code(mmu::Vector::PF, 0);
    let w = vmwrite(&mut m.state, &caps, &ctx, &mut m.mem, enc, || Err(pf));
    assert_eq!(w, Outcome::Fault(pf));
    let w = vmwrite(&mut m.state, &caps, &ctx, &mut m.mem, unsupported, || {
        Err(pf)
    });
    assert_eq!(w, Outcome::FailValid(E::UnsupportedComponent));
    m.state.current = None;
    let r = vmread(&mut m.state, &caps, &ctx, &mut m.mem, enc);
    assert_eq!(r, Outcome::FailInvalid);
}

#[test]
fn non_root_vmread_with_vmcs_shadowing() {
    let mut m = Machine::new(VmxCaps::new(VmxFeatures::everything()));
    let (caps, ctx) = (m.caps.clone(), m.ctx);
    let rip = Field::GuestRip.encoding() as u64;
    m.state.non_root = true;
    // Without shadowing every VMREAD exits.
    let r = vmread(&mut m.state, &caps, &ctx, &mut m.mem, rip);
    assert_eq!(r, Outcome::Exit(ExitReason::Vmread));
    m.enable2(P2::VMCS_SHADOWING);
    m.set(Field::VmreadBitmapAddress, addr::VMREAD_BITMAP);
    m.set(Field::VmwriteBitmapAddress, addr::VMWRITE_BITMAP);
    // Link pointer invalid: VMfailInvalid.
    assert_eq!(
        vmread(&mut m.state, &caps, &ctx, &mut m.mem, rip),
        Outcome::FailInvalid
    );
    m.set(Field::VmcsLinkPointer, addr::VMCS2);
    let shadow_rip = addr::VMCS2 + Region::field_offset(Field::GuestRip);
    m.mem.write_u64(shadow_rip, 0x7777, Access::ShadowVmcs);
    assert_eq!(
        vmread(&mut m.state, &caps, &ctx, &mut m.mem, rip),
        Outcome::Succeed(0x7777)
    );
    let w = vmwrite(&mut m.state, &caps, &ctx, &mut m.mem, rip, || Ok(0x8888));
    assert_eq!(w, Outcome::Succeed(()));
    assert_eq!(m.mem.read_u64(shadow_rip, Access::ShadowVmcs), 0x8888);
    assert_eq!(
        m.get(Field::GuestRip),
        0x20_0000,
        "the ordinary VMCS is untouched"
    );
    // A set bitmap bit or an encoding above 7FFFH exits.
    m.mem.write(
        addr::VMREAD_BITMAP + rip / 8,
        &[1 << (rip % 8)],
        Access::VmcsShadowingBitmap,
    );
    assert_eq!(
        vmread(&mut m.state, &caps, &ctx, &mut m.mem, rip),
        Outcome::Exit(ExitReason::Vmread)
    );
    let high = vmwrite(&mut m.state, &caps, &ctx, &mut m.mem, 0x8000, || Ok(0));
    assert_eq!(high, Outcome::Exit(ExitReason::Vmwrite));
}

#[test]
fn vmcall_and_vmxoff() {
    let mut m = Machine::intel();
    let ctx = m.ctx;
    assert_eq!(
        vmcall(&mut m.state, &ctx),
        Outcome::FailValid(E::VmcallInRoot)
    );
    m.state.non_root = true;
    assert_eq!(
        vmcall(&mut m.state, &ctx),
        Outcome::Exit(ExitReason::Vmcall)
    );
    assert_eq!(
        vmxoff(&mut m.state, &ctx, &mut m.mem),
        Outcome::Exit(ExitReason::Vmxoff)
    );
    m.state.non_root = false;
    assert_eq!(vmxoff(&mut m.state, &ctx, &mut m.mem), Outcome::Succeed(()));
    assert_eq!(vmcall(&mut m.state, &ctx), Outcome::Fault(Exception::ud()));
    assert_eq!(
        vmxoff(&mut m.state, &ctx, &mut m.mem),
        Outcome::Fault(Exception::ud())
    );
}

#[test]
fn invept_and_invvpid() {
    let mut m = Machine::intel();
    let (caps, ctx) = (m.caps.clone(), m.ctx);
    let bad = Outcome::FailValid(E::InvalidInveptInvvpidOperand);
    let ept =
        |m: &mut Machine, t: u64, d: (u64, u64)| invept(&mut m.state, &caps, &ctx, t, || Ok(d));
    assert_eq!(ept(&mut m, 0, (0, 0)), bad);
    assert_eq!(ept(&mut m, 3, (0, 0)), bad);
    assert_eq!(ept(&mut m, 1, (0x5000 | 0x1c, 0)), bad);
    let single = Invalidation::EptSingleContext { eptp: 0x501e };
    assert_eq!(ept(&mut m, 1, (0x501e, 0)), Outcome::Succeed(single));
    assert_eq!(
        ept(&mut m, 2, (0x1c, 0)),
        Outcome::Succeed(Invalidation::EptAllContext)
    );
    let vpid =
        |m: &mut Machine, t: u64, d: (u64, u64)| invvpid(&mut m.state, &caps, &ctx, t, || Ok(d));
    assert_eq!(vpid(&mut m, 4, (1, 0)), bad);
    assert_eq!(vpid(&mut m, 1, (1 << 16 | 1, 0)), bad);
    assert_eq!(vpid(&mut m, 1, (0, 0)), bad);
    assert_eq!(vpid(&mut m, 0, (5, 0x8000_0000_0000)), bad);
    let addr = Invalidation::VpidIndividualAddress {
        vpid: 5,
        address: 0xffff_8000_0000_0000,
    };
    assert_eq!(
        vpid(&mut m, 0, (5, 0xffff_8000_0000_0000)),
        Outcome::Succeed(addr)
    );
    assert_eq!(
        vpid(&mut m, 2, (0, 0)),
        Outcome::Succeed(Invalidation::VpidAllContext)
    );
    let keep = Invalidation::VpidSingleContextRetainingGlobals { vpid: 9 };
    assert_eq!(vpid(&mut m, 3, (9, 0)), Outcome::Succeed(keep));
    // Without EPT/VPID support the instructions do not exist.
    let old = VmxCaps::new(VmxFeatures::first_generation());
    let r = invept(&mut m.state, &old, &ctx, 2, || Ok((0, 0)));
    assert_eq!(r, Outcome::Fault(Exception::ud()));
}

#[test]
fn vmlaunch_vmresume_basic_checks() {
    let mut m = Machine::intel();
    assert!(matches!(
        m.resume(),
        LaunchOutcome::FailValid(E::VmresumeNonLaunched, None)
    ));
    m.ctx.blocked_by_mov_ss = true;
    assert!(matches!(
        m.launch(),
        LaunchOutcome::FailValid(E::EntryBlockedByMovSs, None)
    ));
    m.ctx.blocked_by_mov_ss = false;
    assert!(matches!(m.launch(), LaunchOutcome::Entered(_)));
    m.state.non_root = false; // as after a VM exit
    assert!(matches!(
        m.launch(),
        LaunchOutcome::FailValid(E::VmlaunchNonClear, None)
    ));
    assert!(matches!(m.resume(), LaunchOutcome::Entered(_)));
    m.state.non_root = false;
    // VMXOFF with the launched VMCS active, VMXON, VMPTRLD: VMRESUME fails with 6.
    let (caps, ctx) = (m.caps.clone(), m.ctx);
    assert!(vmxoff(&mut m.state, &ctx, &mut m.mem).succeeded());
    assert!(vmxon(&mut m.state, &caps, &ctx, &mut m.mem, || Ok(addr::VMXON)).succeeded());
    assert!(matches!(m.launch(), LaunchOutcome::FailInvalid));
    assert!(vmptrld(&mut m.state, &caps, &ctx, &mut m.mem, || Ok(addr::VMCS)).succeeded());
    assert!(matches!(
        m.resume(),
        LaunchOutcome::FailValid(E::VmresumeAfterVmxoff, None)
    ));
    assert!(matches!(
        m.launch(),
        LaunchOutcome::FailValid(E::VmlaunchNonClear, None)
    ));
    // VMCLEAR makes it launchable again.
    assert!(vmclear(&mut m.state, &caps, &ctx, &mut m.mem, || Ok(addr::VMCS)).succeeded());
    assert!(vmptrld(&mut m.state, &caps, &ctx, &mut m.mem, || Ok(addr::VMCS)).succeeded());
    assert!(matches!(m.launch(), LaunchOutcome::Entered(_)));
}

#[test]
fn vmlaunch_of_a_shadow_vmcs_fails_invalid() {
    let mut m = Machine::new(VmxCaps::new(VmxFeatures::everything()));
    let (caps, ctx) = (m.caps.clone(), m.ctx);
    m.mem.write_u32(
        addr::VMCS2,
        caps.features.revision_id | 1 << 31,
        Access::Vmcs,
    );
    assert!(vmptrld(&mut m.state, &caps, &ctx, &mut m.mem, || Ok(addr::VMCS2)).succeeded());
    assert!(matches!(m.launch(), LaunchOutcome::FailInvalid));
}

#[test]
fn rflags_conventions() {
    let all = 0x8d5 | 0x202; // CF PF AF ZF SF OF + IF + bit 1
    assert_eq!(Outcome::Succeed(()).rflags(all), 0x202);
    assert_eq!(Outcome::<()>::FailInvalid.rflags(all), 0x203);
    assert_eq!(Outcome::<()>::FailValid(E::VmcallInRoot).rflags(all), 0x242);
    assert_eq!(Outcome::<()>::Fault(Exception::ud()).rflags(all), all);
}
