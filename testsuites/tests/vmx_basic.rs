//! The first VMX checks: an L1 hypervisor launches an L2 guest that calls it.

mod vmx_common;

use guestkit::vmx::{VmxCase, VmxSuite};
use iced_x86::code_asm::*;
use vmx_common::run_suite;

#[test]
fn vmcall_round_trip() {
    let mut s = VmxSuite::new();
    s.push(VmxCase::guest("vmcall", |a, _| {
        a.mov(rax, 0x1234u64)?;
        a.mov(r12, 0x5678u64)?;
        a.vmcall()
    }));
    let r = run_suite(s);
    let rec = r.record("vmcall");
    assert_eq!(rec.launch_rflags, 0, "{rec:#x?}");
    assert_eq!(rec.status, 1, "{rec:#x?}");
    let e = rec.last().expect("an exit");
    assert_eq!(e.reason, 18, "{rec:#x?}");
    assert_eq!(e.insn_len, 3);
    assert_eq!(rec.gprs[0], 0x1234);
    assert_eq!(rec.gprs[12], 0x5678);
}
