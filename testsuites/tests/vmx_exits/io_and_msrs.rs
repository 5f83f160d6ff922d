//! I/O instruction and RDMSR/WRMSR exits through the unconditional control
//! and the I/O and MSR bitmaps (SDM Vol. 3C 26.1.3, 25.6.4, 25.6.9).

use super::*;

pub(crate) fn io_and_msrs(t: &mut Table) {
    let out_imm = IoAccess {
        port: 0x80,
        size: 1,
        input: false,
        string: false,
        rep: false,
        immediate: true,
    };
    simple(
        t,
        "Unconditional I/O exiting: OUT imm8",
        P1::UNCONDITIONAL_IO_EXITING,
        |a| {
            mark(a)?;
            a.out(0x80i32, al)
        },
        30,
        qual::io(out_imm),
        2,
    );
    let in_dx = IoAccess {
        port: 0x71,
        size: 4,
        input: true,
        string: false,
        rep: false,
        immediate: false,
    };
    t.case(
        VmxCase::guest("I/O bitmap A bit set: IN EAX, DX", |a, _| {
            a.mov(edx, 0x70i32)?;
            a.in_(al, dx)?;
            a.mov(edx, 0x71i32)?;
            mark(a)?;
            a.in_(eax, dx)
        })
        .setup(|a, _| {
            p1(a, P1::USE_IO_BITMAPS | P1::UNCONDITIONAL_IO_EXITING)?;
            a.mov(
                byte_ptr((layout::IO_BITMAP_A + 0x71 / 8) as u32 as u64),
                2i32,
            )
        }),
        vec![
            reason(0, 30),
            qual(0, qual::io(in_dx)),
            len(0, 1),
            rip_marked(0),
            exits(2),
        ],
    );
    t.case(
        VmxCase::guest("I/O bitmap B and a port straddling both", |a, _| {
            a.mov(edx, 0x7fffi32)?;
            mark(a)?;
            a.out(dx, ax)
        })
        .setup(|a, _| {
            p1(a, P1::USE_IO_BITMAPS)?;
            a.mov(byte_ptr(layout::IO_BITMAP_B as u32 as u64), 1i32)
        }),
        vec![reason(0, 30), rip_marked(0), exits(2)],
    );
    let outs = IoAccess {
        port: 0x3f8,
        size: 1,
        input: false,
        string: true,
        rep: true,
        immediate: false,
    };
    t.case(
        VmxCase::guest("REP OUTSB reports the linear address", |a, _| {
            a.mov(edx, 0x3f8i32)?;
            a.mov(rsi, layout::GUEST_DATA + 0x10)?;
            a.mov(ecx, 4i32)?;
            mark(a)?;
            a.rep().outsb()
        })
        .setup(|a, _| p1(a, P1::UNCONDITIONAL_IO_EXITING)),
        vec![
            reason(0, 30),
            qual(0, qual::io(outs)),
            len(0, 2),
            field(
                0,
                "guest-linear address",
                |e| e.guest_linear,
                layout::GUEST_DATA + 0x10,
            ),
            info(0, ii::ins_outs(AddressSize::A64, SegReg::Ds) as u64),
        ],
    );
    t.case(
        VmxCase::guest("INSW reports ES:RDI", |a, _| {
            a.mov(edx, 0x60i32)?;
            a.mov(rdi, layout::GUEST_DATA + 0x20)?;
            mark(a)?;
            a.insw()
        })
        .setup(|a, _| p1(a, P1::UNCONDITIONAL_IO_EXITING)),
        vec![
            reason(0, 30),
            qual(
                0,
                qual::io(IoAccess {
                    port: 0x60,
                    size: 2,
                    input: true,
                    string: true,
                    rep: false,
                    immediate: false,
                }),
            ),
            field(
                0,
                "guest-linear address",
                |e| e.guest_linear,
                layout::GUEST_DATA + 0x20,
            ),
            info(0, ii::ins_outs(AddressSize::A64, SegReg::Es) as u64),
        ],
    );
    t.case(
        VmxCase::guest("RDMSR exits without MSR bitmaps", |a, _| {
            a.mov(ecx, 0x10i32)?;
            mark(a)?;
            a.rdmsr()
        })
        .setup(|a, _| {
            vmclr(
                a,
                F::PrimaryProcBasedControls,
                P1::USE_MSR_BITMAPS.bits() as u64,
            )
        }),
        vec![reason(0, 31), len(0, 2), rip_marked(0), exits(2)],
    );
    t.case(
        VmxCase::guest(
            "MSR bitmaps: read-high bit of EFER, write-low clear",
            |a, _| {
                a.mov(ecx, 0x1d9i32)?;
                a.xor(eax, eax)?;
                a.xor(edx, edx)?;
                a.wrmsr()?;
                a.mov(ecx, 0xc000_0080u32 as i32)?;
                mark(a)?;
                a.rdmsr()
            },
        )
        .setup(|a, _| {
            p1(a, P1::USE_MSR_BITMAPS)?;
            a.mov(
                byte_ptr((layout::MSR_BITMAP + 0x400 + 0x80 / 8) as u32 as u64),
                1i32,
            )
        }),
        vec![reason(0, 31), rip_marked(0), exits(2)],
    );
    t.case(
        VmxCase::guest("MSR bitmaps: WRMSR of a bit set in write-low", |a, _| {
            a.mov(ecx, 0x1d9i32)?;
            a.xor(eax, eax)?;
            a.xor(edx, edx)?;
            mark(a)?;
            a.wrmsr()
        })
        .setup(|a, _| {
            p1(a, P1::USE_MSR_BITMAPS)?;
            a.mov(
                byte_ptr((layout::MSR_BITMAP + 0x800 + 0x1d9 / 8) as u32 as u64),
                2i32,
            )
        }),
        vec![reason(0, 32), rip_marked(0), exits(2)],
    );
    t.case(
        VmxCase::guest("MSR bitmaps: an index outside both ranges exits", |a, _| {
            a.mov(ecx, 0x4000_0000i32)?;
            mark(a)?;
            a.rdmsr()
        })
        .setup(|a, _| p1(a, P1::USE_MSR_BITMAPS)),
        vec![reason(0, 31), rip_marked(0)],
    );
}
