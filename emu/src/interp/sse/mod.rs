//! MMX, SSE, SSE2, SSE3, SSSE3, SSE4.1 and SSE4.2 instructions, PCLMULQDQ and
//! CRC32 (SDM Vol. 1 chapters 9-12; Vol. 2 entries).
//!
//! Only legacy encodings are claimed here; the VEX and EVEX forms belong to
//! AVX, which the model does not advertise (the dispatcher raises #UD for
//! them). [`handler_for`] maps each iced-x86 code to its handler once, when
//! a block is decoded.
//!
//! Floating point goes through [`fp`], an integer-only IEEE core with the
//! x86 MXCSR rules, so results are the same on every host; a fast path uses
//! host arithmetic only where it provably agrees (see `farith`).

pub mod fp;

mod convert;
mod crc;
mod farith;
mod fcmp;
mod int;
mod lanes;
mod logic;
mod moves;
mod operands;
mod shuffle;
mod state;
mod string;

pub use operands::{mmx_check, sse_check};

use super::Handler;
use crate::cost::InsnClass;
use crate::machine::Machine;
use farith::{Add, Div, Max, Min, Mul, Sqrt, Sub, PD, PS, SD, SS};
use iced_x86::{Code, Instruction};

/// The handler for an MMX/SSE instruction, or `None` if `i` is not one.
pub fn handler_for(_m: &Machine, i: &Instruction) -> Option<(Handler, InsnClass)> {
    let h = handler(i.code())?;
    let class = if matches!(
        i.code(),
        Code::Movd_mm_rm32
            | Code::Movq_mm_rm64
            | Code::Movd_xmm_rm32
            | Code::Movq_xmm_rm64
            | Code::Movd_rm32_mm
            | Code::Movq_rm64_mm
            | Code::Movd_rm32_xmm
            | Code::Movq_rm64_xmm
            | Code::Movnti_m32_r32
            | Code::Movnti_m64_r64
    ) {
        InsnClass::Simple
    } else {
        InsnClass::Sse
    };
    Some((h, class))
}

/// The dispatch table proper.
fn handler(code: Code) -> Option<Handler> {
    use Code as C;
    Some(match code {
        // Moves.
        C::Movaps_xmm_xmmm128
        | C::Movapd_xmm_xmmm128
        | C::Movaps_xmmm128_xmm
        | C::Movapd_xmmm128_xmm
        | C::Movdqa_xmm_xmmm128
        | C::Movdqa_xmmm128_xmm
        | C::Movntps_m128_xmm
        | C::Movntpd_m128_xmm
        | C::Movntdq_m128_xmm
        | C::Movntdqa_xmm_m128 => moves::mov_aligned,
        C::Movups_xmm_xmmm128
        | C::Movupd_xmm_xmmm128
        | C::Movups_xmmm128_xmm
        | C::Movupd_xmmm128_xmm
        | C::Movdqu_xmm_xmmm128
        | C::Movdqu_xmmm128_xmm
        | C::Lddqu_xmm_m128 => moves::mov_unaligned,
        C::Movss_xmm_xmmm32 | C::Movss_xmmm32_xmm => moves::movss,
        C::Movsd_xmm_xmmm64 | C::Movsd_xmmm64_xmm => moves::movsd,
        C::Movhlps_xmm_xmm
        | C::Movlps_xmm_m64
        | C::Movlpd_xmm_m64
        | C::Movlps_m64_xmm
        | C::Movlpd_m64_xmm => moves::movlps,
        C::Movlhps_xmm_xmm
        | C::Movhps_xmm_m64
        | C::Movhpd_xmm_m64
        | C::Movhps_m64_xmm
        | C::Movhpd_m64_xmm => moves::movhps,
        C::Movd_mm_rm32
        | C::Movq_mm_rm64
        | C::Movd_xmm_rm32
        | C::Movq_xmm_rm64
        | C::Movd_rm32_mm
        | C::Movq_rm64_mm
        | C::Movd_rm32_xmm
        | C::Movq_rm64_xmm
        | C::Movq_mm_mmm64
        | C::Movq_mmm64_mm
        | C::Movq_xmm_xmmm64
        | C::Movq_xmmm64_xmm => moves::movd_movq,
        C::Movq2dq_xmm_mm => moves::movq2dq,
        C::Movdq2q_mm_xmm => moves::movdq2q,
        C::Movntq_m64_mm => moves::movntq,
        C::Movnti_m32_r32 | C::Movnti_m64_r64 => moves::movnti,
        C::Movddup_xmm_xmmm64 => moves::movddup,
        C::Movshdup_xmm_xmmm128 => moves::movshdup,
        C::Movsldup_xmm_xmmm128 => moves::movsldup,
        C::Movmskps_r32_xmm | C::Movmskps_r64_xmm => moves::movmskps,
        C::Movmskpd_r32_xmm | C::Movmskpd_r64_xmm => moves::movmskpd,
        C::Pmovmskb_r32_mm | C::Pmovmskb_r64_mm | C::Pmovmskb_r32_xmm | C::Pmovmskb_r64_xmm => {
            moves::pmovmskb
        }
        C::Maskmovq_rDI_mm_mm | C::Maskmovdqu_rDI_xmm_xmm => moves::maskmov,
        // State.
        C::Ldmxcsr_m32 => state::ldmxcsr,
        C::Stmxcsr_m32 => state::stmxcsr,
        C::Emms => state::emms,
        // Floating-point arithmetic.
        C::Addps_xmm_xmmm128 => farith::arith::<Add, PS>,
        C::Addpd_xmm_xmmm128 => farith::arith::<Add, PD>,
        C::Addss_xmm_xmmm32 => farith::arith::<Add, SS>,
        C::Addsd_xmm_xmmm64 => farith::arith::<Add, SD>,
        C::Subps_xmm_xmmm128 => farith::arith::<Sub, PS>,
        C::Subpd_xmm_xmmm128 => farith::arith::<Sub, PD>,
        C::Subss_xmm_xmmm32 => farith::arith::<Sub, SS>,
        C::Subsd_xmm_xmmm64 => farith::arith::<Sub, SD>,
        C::Mulps_xmm_xmmm128 => farith::arith::<Mul, PS>,
        C::Mulpd_xmm_xmmm128 => farith::arith::<Mul, PD>,
        C::Mulss_xmm_xmmm32 => farith::arith::<Mul, SS>,
        C::Mulsd_xmm_xmmm64 => farith::arith::<Mul, SD>,
        C::Divps_xmm_xmmm128 => farith::arith::<Div, PS>,
        C::Divpd_xmm_xmmm128 => farith::arith::<Div, PD>,
        C::Divss_xmm_xmmm32 => farith::arith::<Div, SS>,
        C::Divsd_xmm_xmmm64 => farith::arith::<Div, SD>,
        C::Minps_xmm_xmmm128 => farith::arith::<Min, PS>,
        C::Minpd_xmm_xmmm128 => farith::arith::<Min, PD>,
        C::Minss_xmm_xmmm32 => farith::arith::<Min, SS>,
        C::Minsd_xmm_xmmm64 => farith::arith::<Min, SD>,
        C::Maxps_xmm_xmmm128 => farith::arith::<Max, PS>,
        C::Maxpd_xmm_xmmm128 => farith::arith::<Max, PD>,
        C::Maxss_xmm_xmmm32 => farith::arith::<Max, SS>,
        C::Maxsd_xmm_xmmm64 => farith::arith::<Max, SD>,
        C::Sqrtps_xmm_xmmm128 => farith::arith::<Sqrt, PS>,
        C::Sqrtpd_xmm_xmmm128 => farith::arith::<Sqrt, PD>,
        C::Sqrtss_xmm_xmmm32 => farith::arith::<Sqrt, SS>,
        C::Sqrtsd_xmm_xmmm64 => farith::arith::<Sqrt, SD>,
        C::Rcpps_xmm_xmmm128 => farith::rcp_rsqrt::<PS, false>,
        C::Rcpss_xmm_xmmm32 => farith::rcp_rsqrt::<SS, false>,
        C::Rsqrtps_xmm_xmmm128 => farith::rcp_rsqrt::<PS, true>,
        C::Rsqrtss_xmm_xmmm32 => farith::rcp_rsqrt::<SS, true>,
        C::Addsubps_xmm_xmmm128 => farith::addsubps,
        C::Addsubpd_xmm_xmmm128 => farith::addsubpd,
        C::Haddps_xmm_xmmm128 => farith::hps::<Add>,
        C::Hsubps_xmm_xmmm128 => farith::hps::<Sub>,
        C::Haddpd_xmm_xmmm128 => farith::hpd::<Add>,
        C::Hsubpd_xmm_xmmm128 => farith::hpd::<Sub>,
        C::Roundps_xmm_xmmm128_imm8 => farith::round::<PS>,
        C::Roundpd_xmm_xmmm128_imm8 => farith::round::<PD>,
        C::Roundss_xmm_xmmm32_imm8 => farith::round::<SS>,
        C::Roundsd_xmm_xmmm64_imm8 => farith::round::<SD>,
        C::Dpps_xmm_xmmm128_imm8 => farith::dpps,
        C::Dppd_xmm_xmmm128_imm8 => farith::dppd,
        // Floating-point comparisons.
        C::Cmpps_xmm_xmmm128_imm8 => fcmp::cmp::<PS>,
        C::Cmppd_xmm_xmmm128_imm8 => fcmp::cmp::<PD>,
        C::Cmpss_xmm_xmmm32_imm8 => fcmp::cmp::<SS>,
        C::Cmpsd_xmm_xmmm64_imm8 => fcmp::cmp::<SD>,
        C::Comiss_xmm_xmmm32 => fcmp::comis::<false, false>,
        C::Comisd_xmm_xmmm64 => fcmp::comis::<true, false>,
        C::Ucomiss_xmm_xmmm32 => fcmp::comis::<false, true>,
        C::Ucomisd_xmm_xmmm64 => fcmp::comis::<true, true>,
        // Conversions.
        C::Cvtss2sd_xmm_xmmm32 => convert::cvtss2sd,
        C::Cvtsd2ss_xmm_xmmm64 => convert::cvtsd2ss,
        C::Cvtps2pd_xmm_xmmm64 => convert::cvtps2pd,
        C::Cvtpd2ps_xmm_xmmm128 => convert::cvtpd2ps,
        C::Cvtdq2ps_xmm_xmmm128 => convert::cvtdq2ps,
        C::Cvtdq2pd_xmm_xmmm64 => convert::cvtdq2pd,
        C::Cvtps2dq_xmm_xmmm128 => convert::cvtps2dq::<false>,
        C::Cvttps2dq_xmm_xmmm128 => convert::cvtps2dq::<true>,
        C::Cvtpd2dq_xmm_xmmm128 => convert::cvtpd2dq::<false>,
        C::Cvttpd2dq_xmm_xmmm128 => convert::cvtpd2dq::<true>,
        C::Cvtsi2ss_xmm_rm32 | C::Cvtsi2ss_xmm_rm64 => convert::cvtsi2s::<false>,
        C::Cvtsi2sd_xmm_rm32 | C::Cvtsi2sd_xmm_rm64 => convert::cvtsi2s::<true>,
        C::Cvtss2si_r32_xmmm32 | C::Cvtss2si_r64_xmmm32 => convert::cvts2si::<false, false>,
        C::Cvttss2si_r32_xmmm32 | C::Cvttss2si_r64_xmmm32 => convert::cvts2si::<false, true>,
        C::Cvtsd2si_r32_xmmm64 | C::Cvtsd2si_r64_xmmm64 => convert::cvts2si::<true, false>,
        C::Cvttsd2si_r32_xmmm64 | C::Cvttsd2si_r64_xmmm64 => convert::cvts2si::<true, true>,
        C::Cvtpi2ps_xmm_mmm64 => convert::cvtpi2p::<false>,
        C::Cvtpi2pd_xmm_mmm64 => convert::cvtpi2p::<true>,
        C::Cvtps2pi_mm_xmmm64 => convert::cvtps2pi::<false>,
        C::Cvttps2pi_mm_xmmm64 => convert::cvtps2pi::<true>,
        C::Cvtpd2pi_mm_xmmm128 => convert::cvtpd2pi::<false>,
        C::Cvttpd2pi_mm_xmmm128 => convert::cvtpd2pi::<true>,
        // Logic and integer comparisons.
        C::Pand_mm_mmm64 | C::Pand_xmm_xmmm128 | C::Andps_xmm_xmmm128 | C::Andpd_xmm_xmmm128 => {
            logic::and
        }
        C::Pandn_mm_mmm64
        | C::Pandn_xmm_xmmm128
        | C::Andnps_xmm_xmmm128
        | C::Andnpd_xmm_xmmm128 => logic::andn,
        C::Por_mm_mmm64 | C::Por_xmm_xmmm128 | C::Orps_xmm_xmmm128 | C::Orpd_xmm_xmmm128 => {
            logic::or
        }
        C::Pxor_mm_mmm64 | C::Pxor_xmm_xmmm128 | C::Xorps_xmm_xmmm128 | C::Xorpd_xmm_xmmm128 => {
            logic::xor
        }
        C::Pcmpeqb_mm_mmm64 | C::Pcmpeqb_xmm_xmmm128 => logic::pcmpeqb,
        C::Pcmpeqw_mm_mmm64 | C::Pcmpeqw_xmm_xmmm128 => logic::pcmpeqw,
        C::Pcmpeqd_mm_mmm64 | C::Pcmpeqd_xmm_xmmm128 => logic::pcmpeqd,
        C::Pcmpeqq_xmm_xmmm128 => logic::pcmpeqq,
        C::Pcmpgtb_mm_mmm64 | C::Pcmpgtb_xmm_xmmm128 => logic::pcmpgtb,
        C::Pcmpgtw_mm_mmm64 | C::Pcmpgtw_xmm_xmmm128 => logic::pcmpgtw,
        C::Pcmpgtd_mm_mmm64 | C::Pcmpgtd_xmm_xmmm128 => logic::pcmpgtd,
        C::Pcmpgtq_xmm_xmmm128 => logic::pcmpgtq,
        C::Ptest_xmm_xmmm128 => logic::ptest,
        // Shifts.
        C::Psllw_mm_imm8 | C::Psllw_xmm_imm8 | C::Psllw_mm_mmm64 | C::Psllw_xmm_xmmm128 => {
            logic::psllw
        }
        C::Pslld_mm_imm8 | C::Pslld_xmm_imm8 | C::Pslld_mm_mmm64 | C::Pslld_xmm_xmmm128 => {
            logic::pslld
        }
        C::Psllq_mm_imm8 | C::Psllq_xmm_imm8 | C::Psllq_mm_mmm64 | C::Psllq_xmm_xmmm128 => {
            logic::psllq
        }
        C::Psrlw_mm_imm8 | C::Psrlw_xmm_imm8 | C::Psrlw_mm_mmm64 | C::Psrlw_xmm_xmmm128 => {
            logic::psrlw
        }
        C::Psrld_mm_imm8 | C::Psrld_xmm_imm8 | C::Psrld_mm_mmm64 | C::Psrld_xmm_xmmm128 => {
            logic::psrld
        }
        C::Psrlq_mm_imm8 | C::Psrlq_xmm_imm8 | C::Psrlq_mm_mmm64 | C::Psrlq_xmm_xmmm128 => {
            logic::psrlq
        }
        C::Psraw_mm_imm8 | C::Psraw_xmm_imm8 | C::Psraw_mm_mmm64 | C::Psraw_xmm_xmmm128 => {
            logic::psraw
        }
        C::Psrad_mm_imm8 | C::Psrad_xmm_imm8 | C::Psrad_mm_mmm64 | C::Psrad_xmm_xmmm128 => {
            logic::psrad
        }
        C::Pslldq_xmm_imm8 => logic::pslldq,
        C::Psrldq_xmm_imm8 => logic::psrldq,
        // Integer arithmetic.
        C::Paddb_mm_mmm64 | C::Paddb_xmm_xmmm128 => int::paddb,
        C::Paddw_mm_mmm64 | C::Paddw_xmm_xmmm128 => int::paddw,
        C::Paddd_mm_mmm64 | C::Paddd_xmm_xmmm128 => int::paddd,
        C::Paddq_mm_mmm64 | C::Paddq_xmm_xmmm128 => int::paddq,
        C::Psubb_mm_mmm64 | C::Psubb_xmm_xmmm128 => int::psubb,
        C::Psubw_mm_mmm64 | C::Psubw_xmm_xmmm128 => int::psubw,
        C::Psubd_mm_mmm64 | C::Psubd_xmm_xmmm128 => int::psubd,
        C::Psubq_mm_mmm64 | C::Psubq_xmm_xmmm128 => int::psubq,
        C::Paddsb_mm_mmm64 | C::Paddsb_xmm_xmmm128 => int::paddsb,
        C::Paddsw_mm_mmm64 | C::Paddsw_xmm_xmmm128 => int::paddsw,
        C::Paddusb_mm_mmm64 | C::Paddusb_xmm_xmmm128 => int::paddusb,
        C::Paddusw_mm_mmm64 | C::Paddusw_xmm_xmmm128 => int::paddusw,
        C::Psubsb_mm_mmm64 | C::Psubsb_xmm_xmmm128 => int::psubsb,
        C::Psubsw_mm_mmm64 | C::Psubsw_xmm_xmmm128 => int::psubsw,
        C::Psubusb_mm_mmm64 | C::Psubusb_xmm_xmmm128 => int::psubusb,
        C::Psubusw_mm_mmm64 | C::Psubusw_xmm_xmmm128 => int::psubusw,
        C::Pmullw_mm_mmm64 | C::Pmullw_xmm_xmmm128 => int::pmullw,
        C::Pmulhw_mm_mmm64 | C::Pmulhw_xmm_xmmm128 => int::pmulhw,
        C::Pmulhuw_mm_mmm64 | C::Pmulhuw_xmm_xmmm128 => int::pmulhuw,
        C::Pmulld_xmm_xmmm128 => int::pmulld,
        C::Pmuludq_mm_mmm64 | C::Pmuludq_xmm_xmmm128 => int::pmuludq,
        C::Pmuldq_xmm_xmmm128 => int::pmuldq,
        C::Pmulhrsw_mm_mmm64 | C::Pmulhrsw_xmm_xmmm128 => int::pmulhrsw,
        C::Pmaddwd_mm_mmm64 | C::Pmaddwd_xmm_xmmm128 => int::pmaddwd,
        C::Pmaddubsw_mm_mmm64 | C::Pmaddubsw_xmm_xmmm128 => int::pmaddubsw,
        C::Pavgb_mm_mmm64 | C::Pavgb_xmm_xmmm128 => int::pavgb,
        C::Pavgw_mm_mmm64 | C::Pavgw_xmm_xmmm128 => int::pavgw,
        C::Psadbw_mm_mmm64 | C::Psadbw_xmm_xmmm128 => int::psadbw,
        C::Pminub_mm_mmm64 | C::Pminub_xmm_xmmm128 => int::pminub,
        C::Pmaxub_mm_mmm64 | C::Pmaxub_xmm_xmmm128 => int::pmaxub,
        C::Pminsw_mm_mmm64 | C::Pminsw_xmm_xmmm128 => int::pminsw,
        C::Pmaxsw_mm_mmm64 | C::Pmaxsw_xmm_xmmm128 => int::pmaxsw,
        C::Pminsb_xmm_xmmm128 => int::pminsb,
        C::Pmaxsb_xmm_xmmm128 => int::pmaxsb,
        C::Pminuw_xmm_xmmm128 => int::pminuw,
        C::Pmaxuw_xmm_xmmm128 => int::pmaxuw,
        C::Pminsd_xmm_xmmm128 => int::pminsd,
        C::Pmaxsd_xmm_xmmm128 => int::pmaxsd,
        C::Pminud_xmm_xmmm128 => int::pminud,
        C::Pmaxud_xmm_xmmm128 => int::pmaxud,
        C::Pabsb_mm_mmm64 | C::Pabsb_xmm_xmmm128 => int::pabsb,
        C::Pabsw_mm_mmm64 | C::Pabsw_xmm_xmmm128 => int::pabsw,
        C::Pabsd_mm_mmm64 | C::Pabsd_xmm_xmmm128 => int::pabsd,
        C::Psignb_mm_mmm64 | C::Psignb_xmm_xmmm128 => int::psignb,
        C::Psignw_mm_mmm64 | C::Psignw_xmm_xmmm128 => int::psignw,
        C::Psignd_mm_mmm64 | C::Psignd_xmm_xmmm128 => int::psignd,
        C::Phaddw_mm_mmm64 | C::Phaddw_xmm_xmmm128 => int::phaddw,
        C::Phaddd_mm_mmm64 | C::Phaddd_xmm_xmmm128 => int::phaddd,
        C::Phaddsw_mm_mmm64 | C::Phaddsw_xmm_xmmm128 => int::phaddsw,
        C::Phsubw_mm_mmm64 | C::Phsubw_xmm_xmmm128 => int::phsubw,
        C::Phsubd_mm_mmm64 | C::Phsubd_xmm_xmmm128 => int::phsubd,
        C::Phsubsw_mm_mmm64 | C::Phsubsw_xmm_xmmm128 => int::phsubsw,
        C::Phminposuw_xmm_xmmm128 => int::phminposuw,
        C::Mpsadbw_xmm_xmmm128_imm8 => int::mpsadbw,
        // Shuffles, packs, inserts, extracts, blends.
        C::Punpcklbw_mm_mmm32 | C::Punpcklbw_xmm_xmmm128 => shuffle::punpcklbw,
        C::Punpcklwd_mm_mmm32 | C::Punpcklwd_xmm_xmmm128 => shuffle::punpcklwd,
        C::Punpckldq_mm_mmm32 | C::Punpckldq_xmm_xmmm128 => shuffle::punpckldq,
        C::Unpcklps_xmm_xmmm128 => shuffle::unpcklps,
        C::Punpcklqdq_xmm_xmmm128 | C::Unpcklpd_xmm_xmmm128 => shuffle::punpcklqdq,
        C::Punpckhbw_mm_mmm64 | C::Punpckhbw_xmm_xmmm128 => shuffle::punpckhbw,
        C::Punpckhwd_mm_mmm64 | C::Punpckhwd_xmm_xmmm128 => shuffle::punpckhwd,
        C::Punpckhdq_mm_mmm64 | C::Punpckhdq_xmm_xmmm128 | C::Unpckhps_xmm_xmmm128 => {
            shuffle::punpckhdq
        }
        C::Punpckhqdq_xmm_xmmm128 | C::Unpckhpd_xmm_xmmm128 => shuffle::punpckhqdq,
        C::Packsswb_mm_mmm64 | C::Packsswb_xmm_xmmm128 => shuffle::packsswb,
        C::Packuswb_mm_mmm64 | C::Packuswb_xmm_xmmm128 => shuffle::packuswb,
        C::Packssdw_mm_mmm64 | C::Packssdw_xmm_xmmm128 => shuffle::packssdw,
        C::Packusdw_xmm_xmmm128 => shuffle::packusdw,
        C::Pshufb_mm_mmm64 | C::Pshufb_xmm_xmmm128 => shuffle::pshufb,
        C::Palignr_mm_mmm64_imm8 | C::Palignr_xmm_xmmm128_imm8 => shuffle::palignr,
        C::Shufps_xmm_xmmm128_imm8 => shuffle::shufps,
        C::Shufpd_xmm_xmmm128_imm8 => shuffle::shufpd,
        C::Pshufd_xmm_xmmm128_imm8 => shuffle::pshufd,
        C::Pshuflw_xmm_xmmm128_imm8 => shuffle::pshuflw,
        C::Pshufhw_xmm_xmmm128_imm8 => shuffle::pshufhw,
        C::Pshufw_mm_mmm64_imm8 => shuffle::pshufw,
        C::Insertps_xmm_xmmm32_imm8 => shuffle::insertps,
        C::Extractps_rm32_xmm_imm8 | C::Extractps_r64m32_xmm_imm8 | C::Pextrd_rm32_xmm_imm8 => {
            shuffle::pextrd
        }
        C::Pextrb_r32m8_xmm_imm8 | C::Pextrb_r64m8_xmm_imm8 => shuffle::pextrb,
        C::Pextrw_r32_mm_imm8
        | C::Pextrw_r64_mm_imm8
        | C::Pextrw_r32_xmm_imm8
        | C::Pextrw_r64_xmm_imm8
        | C::Pextrw_r32m16_xmm_imm8
        | C::Pextrw_r64m16_xmm_imm8 => shuffle::pextrw,
        C::Pextrq_rm64_xmm_imm8 => shuffle::pextrq,
        C::Pinsrb_xmm_r32m8_imm8 | C::Pinsrb_xmm_r64m8_imm8 => shuffle::pinsrb,
        C::Pinsrw_mm_r32m16_imm8
        | C::Pinsrw_mm_r64m16_imm8
        | C::Pinsrw_xmm_r32m16_imm8
        | C::Pinsrw_xmm_r64m16_imm8 => shuffle::pinsrw,
        C::Pinsrd_xmm_rm32_imm8 => shuffle::pinsrd,
        C::Pinsrq_xmm_rm64_imm8 => shuffle::pinsrq,
        C::Blendps_xmm_xmmm128_imm8 => shuffle::blendps,
        C::Blendpd_xmm_xmmm128_imm8 => shuffle::blendpd,
        C::Pblendw_xmm_xmmm128_imm8 => shuffle::pblendw,
        C::Blendvps_xmm_xmmm128 => shuffle::blendvps,
        C::Blendvpd_xmm_xmmm128 => shuffle::blendvpd,
        C::Pblendvb_xmm_xmmm128 => shuffle::pblendvb,
        C::Pmovsxbw_xmm_xmmm64 => shuffle::pmovsxbw,
        C::Pmovsxbd_xmm_xmmm32 => shuffle::pmovsxbd,
        C::Pmovsxbq_xmm_xmmm16 => shuffle::pmovsxbq,
        C::Pmovsxwd_xmm_xmmm64 => shuffle::pmovsxwd,
        C::Pmovsxwq_xmm_xmmm32 => shuffle::pmovsxwq,
        C::Pmovsxdq_xmm_xmmm64 => shuffle::pmovsxdq,
        C::Pmovzxbw_xmm_xmmm64 => shuffle::pmovzxbw,
        C::Pmovzxbd_xmm_xmmm32 => shuffle::pmovzxbd,
        C::Pmovzxbq_xmm_xmmm16 => shuffle::pmovzxbq,
        C::Pmovzxwd_xmm_xmmm64 => shuffle::pmovzxwd,
        C::Pmovzxwq_xmm_xmmm32 => shuffle::pmovzxwq,
        C::Pmovzxdq_xmm_xmmm64 => shuffle::pmovzxdq,
        // SSE4.2 strings, CRC32, PCLMULQDQ.
        C::Pcmpestri_xmm_xmmm128_imm8 | C::Pcmpestri64_xmm_xmmm128_imm8 => string::pcmpestri,
        C::Pcmpestrm_xmm_xmmm128_imm8 | C::Pcmpestrm64_xmm_xmmm128_imm8 => string::pcmpestrm,
        C::Pcmpistri_xmm_xmmm128_imm8 => string::pcmpistri,
        C::Pcmpistrm_xmm_xmmm128_imm8 => string::pcmpistrm,
        C::Crc32_r32_rm8
        | C::Crc32_r64_rm8
        | C::Crc32_r32_rm16
        | C::Crc32_r32_rm32
        | C::Crc32_r64_rm64 => crc::crc32,
        C::Pclmulqdq_xmm_xmmm128_imm8 => crc::pclmulqdq,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
