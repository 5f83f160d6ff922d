//! Control-register accesses (SDM Vol. 3C 26.1.3; 25.6.6, "Guest/Host Masks and
//! Read Shadows for CR0 and CR4"; 25.6.7, "CR3-Target Controls"; 26.3, changes to
//! MOV from CR0/CR4, CLTS, LMSW, MOV to/from CR8 with the TPR shadow).

use super::Controls;
use crate::controls::{Proc2Controls, ProcControls};
use serde::{Deserialize, Serialize};

/// CR0 or CR4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CrKind {
    /// CR0.
    Cr0,
    /// CR4.
    Cr4,
}

fn mask_shadow(c: &Controls, cr: CrKind) -> (u64, u64) {
    match cr {
        CrKind::Cr0 => (c.cr0_mask, c.cr0_shadow),
        CrKind::Cr4 => (c.cr4_mask, c.cr4_shadow),
    }
}

/// MOV to CR0 exits if, for any bit set in the CR0 guest/host mask, the value
/// written differs from the CR0 read shadow.
pub fn cr0_write_exits(c: &Controls, value: u64) -> bool {
    (value ^ c.cr0_shadow) & c.cr0_mask != 0
}

/// MOV to CR4: as for CR0 with the CR4 mask and shadow.
pub fn cr4_write_exits(c: &Controls, value: u64) -> bool {
    (value ^ c.cr4_shadow) & c.cr4_mask != 0
}

/// The value MOV from CR0/CR4 returns in non-root operation: host-owned bits (set
/// in the mask) come from the read shadow, the others from the register.
pub fn guest_cr_read(c: &Controls, cr: CrKind, real: u64) -> u64 {
    let (mask, shadow) = mask_shadow(c, cr);
    real & !mask | shadow & mask
}

/// The register value after a MOV to CR0/CR4 that does not exit: host-owned bits
/// keep their value.
pub fn guest_cr_write(c: &Controls, cr: CrKind, old: u64, value: u64) -> u64 {
    let (mask, _) = mask_shadow(c, cr);
    value & !mask | old & mask
}

/// CLTS exits if CR0.TS is set in both the CR0 guest/host mask and the read shadow.
/// (If it is set in the mask but not the shadow, CLTS does nothing.)
pub fn clts_exits(c: &Controls) -> bool {
    const TS: u64 = 1 << 3;
    c.cr0_mask & c.cr0_shadow & TS != 0
}

/// LMSW exits if it would set CR0.PE where the mask has PE and the shadow has PE
/// clear, or change any of MP, EM, TS where the mask has the bit and the source
/// differs from the shadow.
pub fn lmsw_exits(c: &Controls, source: u16) -> bool {
    let src = source as u64;
    let pe = c.cr0_mask & 1 != 0 && src & 1 != 0 && c.cr0_shadow & 1 == 0;
    pe || (src ^ c.cr0_shadow) & c.cr0_mask & 0xe != 0
}

/// The CR0 value after an LMSW that does not exit: only bits 3:0 not owned by the
/// host change, and LMSW can set but never clear PE.
pub fn lmsw_value(c: &Controls, old: u64, source: u16) -> u64 {
    let owned = c.cr0_mask & 0xf;
    let src = source as u64 & 0xf & !owned;
    let keep = old & !(0xe & !owned);
    keep | src
}

/// MOV to CR3 exits if "CR3-load exiting" is 1 and the value is none of the first
/// CR3-target-count CR3-target values.
pub fn cr3_load_exits(c: &Controls, value: u64) -> bool {
    if !c.proc.contains(ProcControls::CR3_LOAD_EXITING) {
        return false;
    }
    let n = (c.cr3_target_count as usize).min(4);
    !c.cr3_targets[..n].contains(&value)
}

/// With the TPR shadow (and CR8 not exiting), MOV to CR8 writes `value[3:0]` to
/// VTPR bits 7:4 and clears VTPR bits 3:0; MOV from CR8 reads VTPR bits 7:4.
pub const fn vtpr_from_cr8(value: u64) -> u8 {
    ((value & 0xf) as u8) << 4
}

/// After a write to VTPR (MOV to CR8 or a TPR write through the virtual-APIC page)
/// with "use TPR shadow" 1 and "virtual-interrupt delivery" 0, a "TPR below
/// threshold" trap-like VM exit occurs if TPR threshold bits 3:0 exceed VTPR bits
/// 7:4 (SDM Vol. 3C 30.1.2, "TPR Virtualization").
pub fn tpr_below_threshold(c: &Controls, vtpr: u8) -> bool {
    c.proc.contains(ProcControls::USE_TPR_SHADOW)
        && !c.proc2.contains(Proc2Controls::VIRTUAL_INTERRUPT_DELIVERY)
        && c.tpr_threshold & 0xf > (vtpr >> 4) as u32
}
