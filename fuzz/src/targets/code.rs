//! Random instruction streams for a code size (16, 32 or 64 bits):
//! register set-up with interesting values, then instructions that are
//! random bytes, prefixed opcodes from every opcode map with random ModRM,
//! SIB, displacement and immediate bytes, VEX/EVEX-looking bytes, system
//! instructions (control and debug registers, MSRs from the MSR table,
//! descriptor tables, far transfers, I/O to the platform's ports, MMIO to
//! the APICs, VMX and SVM instructions) and REP string operations with
//! large counts.

use crate::source::Source;

const PREFIXES: &[u8] = &[
    0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65,
];

/// Ports the platform decodes (PIC, PIT, keyboard controller, RTC, POST,
/// port 92H, COM1, PCI configuration, reset control, fw_cfg, ACPI PM).
const PORTS: &[u16] = &[
    0x20, 0x21, 0xa0, 0xa1, 0x40, 0x41, 0x42, 0x43, 0x61, 0x60, 0x64, 0x70, 0x71, 0x80, 0x92,
    0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0xcf8, 0xcfc, 0xcf9, 0x510, 0x511, 0x514, 0x600,
    0x604, 0x608, 0xe0, 0x4d0, 0x4d1, 0xb2,
];

/// System instructions that take no operand bytes worth randomizing.
const SYSTEM: &[&[u8]] = &[
    &[0x0f, 0x30],             // wrmsr
    &[0x0f, 0x32],             // rdmsr
    &[0x0f, 0xa2],             // cpuid
    &[0x0f, 0x31],             // rdtsc
    &[0x0f, 0x01, 0xf9],       // rdtscp
    &[0x0f, 0x05],             // syscall
    &[0x0f, 0x07],             // sysret
    &[0x48, 0x0f, 0x07],       // sysretq
    &[0x0f, 0x34],             // sysenter
    &[0x0f, 0x35],             // sysexit
    &[0xcf],                   // iret
    &[0x48, 0xcf],             // iretq
    &[0xf4],                   // hlt
    &[0xfb, 0xf4],             // sti; hlt
    &[0xfa],                   // cli
    &[0xfb],                   // sti
    &[0xcc],                   // int3
    &[0xf1],                   // int1
    &[0xce],                   // into
    &[0x0f, 0x0b],             // ud2
    &[0x0f, 0x06],             // clts
    &[0x0f, 0x08],             // invd
    &[0x0f, 0x09],             // wbinvd
    &[0x0f, 0x01, 0xd0],       // xgetbv
    &[0x0f, 0x01, 0xd1],       // xsetbv
    &[0x0f, 0x01, 0xc8],       // monitor
    &[0x0f, 0x01, 0xc9],       // mwait
    &[0x0f, 0x01, 0xf8],       // swapgs
    &[0x0f, 0x01, 0xc1],       // vmcall
    &[0x0f, 0x01, 0xc2],       // vmlaunch
    &[0x0f, 0x01, 0xc3],       // vmresume
    &[0x0f, 0x01, 0xc4],       // vmxoff
    &[0x0f, 0x01, 0xd4],       // vmfunc
    &[0x0f, 0x01, 0xd8],       // vmrun
    &[0x0f, 0x01, 0xd9],       // vmmcall
    &[0x0f, 0x01, 0xda],       // vmload
    &[0x0f, 0x01, 0xdb],       // vmsave
    &[0x0f, 0x01, 0xdc],       // stgi
    &[0x0f, 0x01, 0xdd],       // clgi
    &[0x0f, 0x01, 0xde],       // skinit
    &[0x0f, 0x01, 0xdf],       // invlpga
    &[0x0f, 0x01, 0xca],       // clac
    &[0x0f, 0x01, 0xcb],       // stac
    &[0x0f, 0x01, 0xee],       // rdpkru
    &[0x0f, 0x01, 0xef],       // wrpkru
    &[0x0f, 0xaa],             // rsm
    &[0x0f, 0x0d, 0x08],       // prefetchw
    &[0x0f, 0xae, 0xf0],       // mfence-like group 15
    &[0xf3, 0x0f, 0xc7, 0xf8], // rdpid
    &[0x0f, 0xc7, 0xf0],       // rdrand
    &[0x0f, 0xc7, 0xf8],       // rdseed
    &[0x9b, 0xdb, 0xe3],       // finit
    &[0xd9, 0xe8],             // fld1
    &[0xde, 0xf9],             // fdivp
    &[0x0f, 0x77],             // emms
];

/// A register load: `mov r, imm` of an interesting value, sized for the
/// mode (REX.W B8+r in 64-bit mode).
fn load(src: &mut Source, bits: u8, reg: u8, value: u64) -> Vec<u8> {
    match bits {
        64 => {
            let rex = 0x48 | (reg >> 3);
            let mut v = vec![rex, 0xb8 + (reg & 7)];
            v.extend_from_slice(&value.to_le_bytes());
            v
        }
        32 => {
            let mut v = vec![0xb8 + (reg & 7)];
            v.extend_from_slice(&(value as u32).to_le_bytes());
            v
        }
        _ => {
            let _ = src;
            let mut v = vec![0x66, 0xb8 + (reg & 7)];
            v.extend_from_slice(&(value as u32).to_le_bytes());
            v
        }
    }
}

/// An interesting register value: a scratch address in RAM, a count, an
/// MSR index, an MMIO address, a port, or edges.
fn value(src: &mut Source) -> u64 {
    match src.below(8) {
        0 => 0x0080_0000 + src.below(0x1000), // scratch in RAM
        1 => src.pick(&[0xfee0_0000u64, 0xfec0_0000, 0xfed0_0000, 0xb_8000]) + 4 * src.below(0x100),
        2 => src.pick(mmu::msr::ALL).0 as u64,
        3 => src.pick(PORTS) as u64,
        4 => src.below(0x2000),
        _ => src.interesting_u64(),
    }
}

/// One instruction (or a few bytes that may not be one).
fn insn(src: &mut Source, bits: u8) -> Vec<u8> {
    let mut v = Vec::new();
    match src.below(16) {
        0 | 1 => {
            let n = 1 + src.below(15) as usize;
            v = src.bytes(n);
        }
        2..=7 => {
            for _ in 0..src.below(3) {
                v.push(src.pick(PREFIXES));
            }
            if bits == 64 && src.bool() {
                v.push(0x40 | src.below(16) as u8);
            }
            match src.below(8) {
                0..=3 => v.push(src.u8()),
                4 | 5 => v.extend([0x0f, src.u8()]),
                6 => v.extend([0x0f, 0x38, src.u8()]),
                _ => v.extend([0x0f, 0x3a, src.u8()]),
            }
            // ModRM, SIB and displacement/immediate bytes.
            let n = src.below(7) as usize;
            v.extend(src.bytes(n));
        }
        8 => {
            v.push(src.pick(&[0xc4, 0xc5, 0x62, 0x8f]));
            let n = 2 + src.below(8) as usize;
            v.extend(src.bytes(n));
        }
        9 | 10 => v.extend_from_slice(src.pick(SYSTEM)),
        11 => {
            // MOV to/from a control or debug register, or descriptor tables.
            let op = src.pick(&[0x20u8, 0x22, 0x21, 0x23, 0x00, 0x01]);
            v.extend([0x0f, op, src.u8()]);
            if matches!(op, 0x00 | 0x01) {
                let n = src.below(5) as usize;
                v.extend(src.bytes(n));
            }
        }
        12 => {
            // I/O to a decoded port.
            let port = src.pick(PORTS);
            v.extend(load(src, bits, 2, port as u64));
            v.push(src.pick(&[0xec, 0xed, 0xee, 0xef, 0x6c, 0x6d, 0x6e, 0x6f]));
        }
        13 => {
            // MSR access with a table index.
            let msr = src.pick(mmu::msr::ALL).0;
            v.extend(load(src, bits, 1, msr as u64));
            let lo = value(src);
            v.extend(load(src, bits, 0, lo));
            v.extend([0x0f, if src.bool() { 0x30 } else { 0x32 }]);
        }
        14 => {
            // A REP string operation with a large count.
            let count = src.pick(&[0x1_0000u64, 0xffff_ffff, u64::MAX, 0x10_0000]);
            v.extend(load(src, bits, 1, count));
            let dst = value(src);
            v.extend(load(src, bits, 7, dst));
            if src.bool() {
                v.push(0xf3);
            } else {
                v.push(0xf2);
            }
            v.push(src.pick(&[
                0xa4, 0xa5, 0xaa, 0xab, 0xac, 0xad, 0xa6, 0xa7, 0xae, 0xaf, 0x6c, 0x6e,
            ]));
        }
        _ => {
            // VMX instructions with a memory operand, and INT n.
            let tmpl: &[u8] = src.pick(&[
                &[0xf3, 0x0f, 0xc7, 0x30][..],   // vmxon [rax]
                &[0x66, 0x0f, 0xc7, 0x30],       // vmclear [rax]
                &[0x0f, 0xc7, 0x30],             // vmptrld [rax]
                &[0x0f, 0xc7, 0x38],             // vmptrst [rax]
                &[0x0f, 0x78, 0xc8],             // vmread rax, rcx
                &[0x0f, 0x79, 0xc1],             // vmwrite rax, rcx
                &[0x66, 0x0f, 0x38, 0x80, 0x08], // invept rcx, [rax]
                &[0x66, 0x0f, 0x38, 0x81, 0x08], // invvpid rcx, [rax]
                &[0x66, 0x0f, 0x38, 0x82, 0x08], // invpcid rcx, [rax]
                &[0x0f, 0x01, 0x38],             // invlpg [rax]
                &[0xcd],                         // int n
            ]);
            let a = value(src);
            v.extend(load(src, bits, 0, a));
            v.extend_from_slice(tmpl);
            if tmpl == [0xcd] {
                v.push(src.u8());
            }
        }
    }
    v
}

/// Code for a `bits`-bit segment, at most `max` bytes.
pub fn stream(src: &mut Source, bits: u8, max: usize) -> Vec<u8> {
    let mut code = Vec::new();
    for reg in 0..8u8 {
        if src.chance(1, 3) {
            let v = value(src);
            code.extend(load(src, bits, reg, v));
        }
    }
    while code.len() < max && !src.is_empty() {
        code.extend(insn(src, bits));
    }
    code.truncate(max);
    code
}
