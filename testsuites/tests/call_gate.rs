//! Far CALL through a 32-bit call gate to a more privileged level (SDM Vol.
//! 2A CALL, "CALL-GATE" and "MORE-PRIVILEGE"; Vol. 3A 5.8.5): the inner
//! stack is SS0:ESP0 of the 32-bit TSS; the caller's SS and ESP, the
//! gate's parameter dwords and the return CS:EIP are pushed on it; and
//! RETF n goes back to the outer level, releasing the parameters on both
//! stacks (Vol. 2A RET).

use guestkit::layout::{sel, var, GDT, TSS32, VARS};
use guestkit::rt32::store_user32;
use guestkit::Program;
use iced_x86::code_asm::*;
use testsuites::check::*;
use testsuites::{config, run};

/// A free GDT slot for the gate (the kit's GDT ends at 67H).
const GATE: u16 = 0x60;
/// The inner (CPL 0) stack top, the TSS's ESP0.
const STACK0: u64 = 0x80_1000;
/// The outer (CPL 3) stack top.
const STACK3: u64 = 0x80_2000;
/// What the code saw: the inner ESP and SS, the inner frame (five dwords),
/// the outer ESP after the return, and the flag of the final call.
const SEEN: u64 = 0x80_2000;
/// The kit's ESP while the case runs at CPL 3.
const SAVED: u64 = VARS + var::TEST_DATA;

#[test]
fn call_gate_to_an_inner_level_switches_stacks() {
    let mut p = Program::new();
    p.no_long_mode = true;
    p.prot_case("call gate from CPL 3 to CPL 0 with a parameter", |a| {
        let mut inner = a.label();
        let mut outer = a.label();
        let mut finish = a.label();
        // The kit's TSS32 with SS0:ESP0, loaded (not busy before LTR).
        a.mov(dword_ptr(TSS32 + 4), STACK0 as i32)?;
        a.mov(dword_ptr(TSS32 + 8), sel::DATA as i32)?;
        a.and(dword_ptr(GDT + sel::TSS32 as u64 + 4), !0x200i32)?;
        a.mov(ax, sel::TSS32 as i32)?;
        a.ltr(ax)?;
        // A 32-bit call gate (type 0CH; SDM Vol. 3A 5.8.3, Figure 5-8),
        // DPL 3, present, one parameter dword, to CODE32:inner.
        let entry = a.addr(&inner);
        let lo = (entry & 0xffff) | (sel::CODE32 as u64) << 16;
        let hi = (entry & 0xffff_0000) | 0xec00 | 1;
        a.mov(dword_ptr(GDT + GATE as u64), lo as u32 as i32)?;
        a.mov(dword_ptr(GDT + GATE as u64 + 4), hi as u32 as i32)?;
        a.mov(dword_ptr(SEEN + 0x30), 0i32)?;
        a.mov(dword_ptr(SAVED), esp)?;
        // To CPL 3.
        let out = a.addr(&outer);
        a.push(sel::USER_DATA as i32)?;
        a.push(STACK3 as i32)?;
        a.push(sel::USER_CODE32 as i32)?;
        a.push(out as u32 as i32)?;
        a.retf()?;
        a.set(&mut outer)?;
        a.mov(ax, sel::USER_DATA as i32)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.push(0x1234_5678i32)?;
        a.call_far(GATE | 3, 0)?;
        // Back at CPL 3, with the parameter released.
        a.mov(dword_ptr(SEEN + 0x2c), esp)?;
        // The final call: back to CPL 0 for good.
        a.mov(dword_ptr(SEEN + 0x30), 1i32)?;
        a.push(0i32)?;
        a.call_far(GATE | 3, 0)?;
        a.ud2()?;
        a.set(&mut inner)?;
        a.cmp(dword_ptr(SEEN + 0x30), 1i32)?;
        a.je(finish.l)?;
        a.mov(dword_ptr(SEEN), esp)?;
        a.mov(eax, ss)?;
        a.mov(dword_ptr(SEEN + 4), eax)?;
        for i in 0..5 {
            a.mov(eax, dword_ptr(esp + 4 * i))?;
            a.mov(dword_ptr(SEEN + 8 + 4 * i as u64), eax)?;
        }
        a.retf_1(4i32)?;
        a.set(&mut finish)?;
        a.mov(ax, sel::DATA as i32)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(fs, ax)?;
        a.mov(gs, ax)?;
        a.mov(ss, ax)?;
        a.mov(esp, dword_ptr(SAVED))?;
        a.mov(eax, dword_ptr(SEEN))?; // inner ESP
        a.mov(edx, dword_ptr(SEEN + 4))?; // inner SS
        a.mov(esi, dword_ptr(SEEN + 0xc))?; // pushed CS
        a.mov(edi, dword_ptr(SEEN + 0x10))?; // the parameter
        a.mov(ebp, dword_ptr(SEEN + 0x14))?; // pushed ESP
        store_user32(a, 0, dword_ptr(SEEN + 0x18))?; // pushed SS
        store_user32(a, 1, dword_ptr(SEEN + 0x2c))?; // ESP after RETF 4
        store_user32(a, 2, dword_ptr(SEEN + 8))?; // pushed EIP
        a.mov(ecx, dword_ptr(STACK0 - 4))?; // SS, at the inner stack's top
        Ok(())
    });

    let o = run(&p, config());
    assert!(o.passed(), "stop {:?}, serial:\n{}", o.stop, o.serial);
    let table: Vec<(String, Vec<Check>)> = vec![(
        "call gate from CPL 3 to CPL 0 with a parameter".into(),
        vec![
            no_exception(),
            gpr(0, STACK0 - 20),
            gpr(2, sel::DATA as u64),
            gpr(6, sel::USER_CODE32 as u64),
            gpr(7, 0x1234_5678),
            gpr(5, STACK3 - 4),
            gpr(1, sel::USER_DATA as u64),
            that("the outer SS pushed first", |r| {
                r.user[0] & 0xffff == sel::USER_DATA as u64
            }),
            that("RETF 4 released the parameter on the outer stack", |r| {
                r.user[1] & 0xffff_ffff == STACK3
            }),
            that("the return EIP is in the case's code", |r| {
                (0x10_0000..0x10_8000).contains(&(r.user[2] & 0xffff_ffff))
            }),
        ],
    )];
    verify(&o, &table);
}
