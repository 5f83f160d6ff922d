//! The first end-to-end checks: the kit's start-up path runs, cases in real and
//! protected mode record their state.

use guestkit::Program;
use iced_x86::code_asm::*;
use testsuites::{config, run};

#[test]
fn real_and_protected_cases_run() {
    let mut p = Program::new();
    p.no_long_mode = true;
    p.real_case("real add", |a| {
        a.mov(ax, 0x7fffi32)?;
        a.add(ax, 1i32)?;
        Ok(())
    });
    p.real_case("real div0", |a| {
        a.mov(ax, 1i32)?;
        a.xor(cx, cx)?;
        a.div(cx)?;
        Ok(())
    });
    p.prot_case("prot add", |a| {
        a.mov(eax, 0xffff_ffffu32 as i32)?;
        a.add(eax, 1i32)?;
        Ok(())
    });
    p.prot_case("prot ud", |a| {
        a.ud2()?;
        Ok(())
    });
    let o = run(&p, config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    let r = o.record("real add");
    assert!(r.done);
    assert_eq!(r.gprs[0] & 0xffff, 0x8000);
    assert_eq!(r.rflags & 0x8d5, 0x800 | 0x80 | 0x10 | 0x4, "OF SF AF PF");
    let r = o.record("real div0");
    assert_eq!(r.exception.map(|e| e.0), Some(0));
    let r = o.record("prot add");
    assert_eq!(r.gprs[0], 0);
    assert_eq!(r.rflags & 0x8d5, 0x1 | 0x40 | 0x10 | 0x4, "CF ZF AF PF");
    let r = o.record("prot ud");
    assert_eq!(r.exception.map(|e| e.0), Some(6));
}
