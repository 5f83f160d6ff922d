use crate::entry::check;
use crate::insn::LaunchOutcome;
use crate::testkit::{addr, Machine};
use crate::vmcs::{Field, LaunchState};

#[test]
fn good_vmcs_passes_every_check_and_enters() {
    let mut m = Machine::intel();
    let v = m.vmcs().clone();
    let cur = m.state.current_ptr();
    assert_eq!(check(&m.caps, &v, true, cur, &mut m.mem), Ok(()));
    match m.launch() {
        LaunchOutcome::Entered(g) => {
            assert_eq!(g.rip, 0x20_0000);
            assert_eq!(g.rsp, 0x30_0000);
            assert_eq!(g.rflags, 2);
            assert!(g.regs.long_mode_active());
            assert_eq!(g.regs.tr.base, 0x23000);
            assert_eq!(g.event, None);
        }
        other => panic!("expected entry, got {other:?}"),
    }
    assert!(m.state.non_root);
    assert_eq!(
        m.state.current.as_ref().unwrap().launch,
        LaunchState::Launched
    );
    assert_eq!(addr::VMCS, m.state.current_ptr());
    let _ = Field::GuestRip;
}
