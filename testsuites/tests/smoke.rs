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

#[test]
fn long_mode_cases_run() {
    let mut p = Program::new();
    p.long_case("long add", |a| {
        a.mov(rax, 0x7fff_ffff_ffff_ffffu64)?;
        a.add(rax, 1i32)?;
        Ok(())
    });
    p.long_case("long pf", |a| {
        // Beyond the 4-GiB identity map: not present.
        a.mov(rax, 0x1_0000_0000u64)?;
        a.mov(rbx, qword_ptr(rax))?;
        Ok(())
    });
    p.long_case("long gp noncanonical", |a| {
        a.mov(rax, 0x8000_0000_0000u64)?;
        a.mov(rbx, qword_ptr(rax))?;
        Ok(())
    });
    let o = run(&p, config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    assert!(o.serial.contains("kit: done"));
    let r = o.record("long add");
    assert_eq!(r.gprs[0], 0x8000_0000_0000_0000);
    assert_eq!(r.rflags & 0x8d5, 0x800 | 0x80 | 0x10 | 0x4);
    let r = o.record("long pf");
    let (v, err, _) = r.exception.expect("a page fault");
    assert_eq!(v, 14);
    assert_eq!(err, 0, "not-present read from CPL 0");
    assert_eq!(r.cr2, 0x1_0000_0000);
    let r = o.record("long gp noncanonical");
    assert_eq!(r.exception.map(|e| (e.0, e.1)), Some((13, 0)));
}
