//! Comparing two runs: encoding, the differences, the masks and the documented host departures.

use super::*;

/// The instruction encoded for the test: memory operand `[rsi]`, or ST(i).
pub(super) fn encode(code: Code, st: u32) -> Vec<u8> {
    let sti = Register::ST0 as u32 + st;
    let sti = iced_x86::Register::values()
        .find(|r| *r as u32 == sti)
        .expect("ST register");
    let mem = MemoryOperand::with_base(Register::RSI);
    let name = format!("{code:?}");
    let ins = if name.contains("_m") {
        Instruction::with1(code, mem)
    } else if name.contains("_st0_sti") {
        Instruction::with2(code, Register::ST0, sti)
    } else if name.contains("_sti_st0") {
        Instruction::with2(code, sti, Register::ST0)
    } else if name.ends_with("_sti") || name.contains("_sti_") {
        Instruction::with1(code, sti)
    } else if name.ends_with("_AX") {
        Instruction::with1(code, Register::AX)
    } else {
        Ok(Instruction::with(code))
    }
    .expect("operands");
    let mut e = Encoder::new(64);
    e.encode(&ins, 0).expect("encodable");
    e.take_buffer()
}

pub(super) fn w16(x: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([x[o], x[o + 1]])
}

pub(super) fn w32(x: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(x[o..o + 4].try_into().expect("4"))
}

/// The differences between two runs of `code` from `input`.
pub(super) fn diff(code: Code, input: &[u8; 108], a: &Run, b: &Run) -> Vec<String> {
    let (x, y) = (&a.image, &b.image);
    let mut out = Vec::new();
    for (o, name) in [
        (0, "FCW"),
        (2, "FCW.hi"),
        (4, "FSW"),
        (6, "FSW.hi"),
        (8, "FTW"),
        (10, "FTW.hi"),
        (26, "FDS.hi"),
    ] {
        if w16(x, o) != w16(y, o) {
            out.push(format!("{name} {:04x} vs {:04x}", w16(x, o), w16(y, o)));
        }
    }
    let es = |i: &[u8; 108]| w16(i, 4) & 0x80 != 0;
    if es(x) && es(y) && w16(x, 18) & 0x7ff != w16(y, 18) & 0x7ff {
        out.push(format!(
            "FOP {:03x} vs {:03x}",
            w16(x, 18) & 0x7ff,
            w16(y, 18) & 0x7ff
        ));
    }
    // FIP: "records this instruction" must agree; otherwise the value.
    let fip = |r: &Run| (w32(&r.image, 12) == r.insn_at, w32(&r.image, 12));
    let (fa, fb) = (fip(a), fip(b));
    if fa.0 != fb.0 || (!fa.0 && fa.1 != fb.1) {
        out.push(format!(
            "FIP {:x} vs {:x} (insn at {:x} / {:x})",
            fa.1, fb.1, a.insn_at, b.insn_at
        ));
    }
    let fdp = |r: &Run| (w32(&r.image, 20) == r.mem_at, w32(&r.image, 20));
    let (da, db) = (fdp(a), fdp(b));
    if da.0 != db.0 || (!da.0 && da.1 != db.1) {
        out.push(format!(
            "FDP {:x} vs {:x} (operand at {:x} / {:x})",
            da.1, db.1, a.mem_at, b.mem_at
        ));
    }
    let _ = (code, input);
    for k in 0..8 {
        let o = 28 + 10 * k;
        if x[o..o + 10] != y[o..o + 10] {
            let v = |i: &[u8; 108]| {
                format!(
                    "{:04x}:{:016x}",
                    w16(i, o + 8),
                    u64::from_le_bytes(i[o..o + 8].try_into().expect("8"))
                )
            };
            out.push(format!("ST{k} {} vs {}", v(x), v(y)));
        }
    }
    out
}

/// Memory bytes that legitimately differ after `code`: pointers and the
/// parts of the FXSAVE image that come from host state.
pub(super) fn memory_mask(code: Code) -> Vec<core::ops::Range<usize>> {
    let name = format!("{code:?}");
    if name.contains("m28byte") || name.contains("m108byte") {
        vec![12..18, 20..26]
    } else if name.contains("m14byte") || name.contains("m94byte") {
        vec![6..10, 10..14]
    } else if name.starts_with("Fxsave") {
        vec![8..16, 16..24, 28..32, 160..1024]
    } else {
        vec![]
    }
}

pub(super) fn show(img: &[u8; 108]) -> String {
    let mut s = format!(
        "cw={:04x} sw={:04x} tw={:04x} |",
        w16(img, 0),
        w16(img, 4),
        w16(img, 8)
    );
    for k in 0..8 {
        let o = 28 + 10 * k;
        s += &format!(
            " {:04x}:{:016x}",
            w16(img, o + 8),
            u64::from_le_bytes(img[o..o + 8].try_into().expect("8"))
        );
    }
    s
}

/// A documented way the host (an AMD processor) differs from what the SDM
/// specifies for Intel processors; cases it explains are counted apart.
/// Returns the reason, or `None` if the difference is unexplained.
pub(super) fn known_difference(
    code: Code,
    input: &[u8; 108],
    mem: &Mem,
    host: &[u8; 108],
    emu: &[u8; 108],
) -> Option<&'static str> {
    use Code as C;
    let fcw = w16(input, 0);
    let same_but = |mask: u16| {
        let mut h = *host;
        let mut e = *emu;
        for x in [&mut h, &mut e] {
            let sw = w16(x, 4) & !mask;
            x[4..6].copy_from_slice(&sw.to_le_bytes());
            x[12..26].fill(0);
        }
        h == e
    };
    match code {
        // SDM Vol. 2A FCOMI/FCOMIP/FUCOMI/FUCOMIP: "C1 Set to 0"; AMD
        // processors leave C1 as it was.
        C::Fcomi_st0_sti | C::Fcomip_st0_sti | C::Fucomi_st0_sti | C::Fucomip_st0_sti
            if same_but(0x0200) && w16(emu, 4) & 0x200 == 0 =>
        {
            Some("FCOMI family: C1 left unchanged by AMD, set to 0 by the SDM")
        }
        // SDM Vol. 1 8.5.2: an unmasked #D leaves TOP unchanged; AMD loads a
        // denormal single or double anyway.
        C::Fld_m32fp | C::Fld_m64fp if fcw & 2 == 0 => {
            let denormal = if code == C::Fld_m32fp {
                let v = w32(&mem.0, 0);
                v & 0x7f80_0000 == 0 && v & 0x007f_ffff != 0
            } else {
                let v = u64::from_le_bytes(mem.0[..8].try_into().expect("8"));
                v & 0x7ff0_0000_0000_0000 == 0 && v & 0x000f_ffff_ffff_ffff != 0
            };
            denormal.then_some(
                "FLD m32/m64 of a denormal with #D unmasked: AMD pushes, the SDM keeps TOP",
            )
        }
        _ => None,
    }
}

/// The ordering key of an 80-bit magnitude: adjacent representable values
/// differ by 1 (across binades too).
pub(super) fn ulp_key(img: &[u8; 108], k: usize) -> (bool, u128) {
    let o = 28 + 10 * k;
    let sig = u64::from_le_bytes(img[o..o + 8].try_into().expect("8")) as u128;
    let se = w16(img, o + 8);
    let e = (se & 0x7fff) as u128;
    let key = if e == 0 {
        sig
    } else {
        (e << 63) | (sig & !(1 << 63))
    };
    (se & 0x8000 != 0, key)
}

/// For the transcendental instructions, the SDM promises results within
/// one ulp (Vol. 1 8.3.10); the host's and the interpreter's algorithms
/// differ. True if the runs differ only in results one ulp apart and in C1
/// (which reports the rounding direction of each one's own approximation).
pub(super) fn within_ulp(code: Code, a: &[u8; 108], b: &[u8; 108]) -> bool {
    if !transcendental_forms().contains(&code) {
        return false;
    }
    let (mut x, mut y) = (*a, *b);
    for img in [&mut x, &mut y] {
        let sw = w16(img, 4) & !0x0200;
        img[4..6].copy_from_slice(&sw.to_le_bytes());
        img[12..26].fill(0);
    }
    for k in 0..8 {
        let (sa, ka) = ulp_key(&x, k);
        let (sb, kb) = ulp_key(&y, k);
        if sa == sb && ka.abs_diff(kb) == 1 {
            let o = 28 + 10 * k;
            let src: [u8; 10] = x[o..o + 10].try_into().expect("10");
            y[o..o + 10].copy_from_slice(&src);
        }
    }
    x == y
}
