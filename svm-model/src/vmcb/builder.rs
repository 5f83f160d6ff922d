//! Known-good VMCBs and host states: the starting point of every "violate one
//! rule alone" test, of the proptests and of the guest suites.

use super::controls::{EventInj, Intercepts, Misc2, NestedCtl, VIntr};
use super::image::{VmcbImage, VmcbSeg, VmcbSegment, VmcbTable};
use super::layout::VmcbField;
use crate::state::CpuState;
use mmu::{Cr0, Cr4, Dr7, Efer, Rflags, SegReg, SegmentCache, SystemRegs, TableRegister};

/// Builds VMCB images that pass every consistency check on
/// [`crate::SvmConfig::amd`] (and [`crate::SvmConfig::first_generation`]).
#[derive(Clone, Debug)]
pub struct VmcbBuilder {
    img: VmcbImage,
}

/// Flat 64-bit code: type 0xB, S, P, L, G.
const CODE64: u16 = 0xa9b;
/// Flat 32-bit code: type 0xB, S, P, D, G.
const CODE32: u16 = 0xc9b;
/// Flat data: type 3, S, P, B, G.
const DATA: u16 = 0xc93;

impl VmcbBuilder {
    fn common() -> Self {
        let mut img = VmcbImage::zeroed();
        Intercepts {
            misc2: Misc2::VMRUN,
            ..Intercepts::default()
        }
        .to_image(&mut img);
        img.set(VmcbField::IopmBasePa, 0x7000_0000);
        img.set(VmcbField::MsrpmBasePa, 0x7100_0000);
        img.set(VmcbField::GuestAsid, 1);
        img.set(VmcbField::Dr6, mmu::dr6::INIT);
        img.set(VmcbField::Dr7, Dr7::FIXED1.bits());
        img.set(VmcbField::Rflags, Rflags::FIXED1.bits());
        img.set(VmcbField::GPat, SystemRegs::PAT_RESET);
        img.set_table(
            VmcbTable::Gdtr,
            TableRegister {
                base: 0x1000,
                limit: 0x37,
            },
        );
        img.set_table(
            VmcbTable::Idtr,
            TableRegister {
                base: 0x2000,
                limit: 0xfff,
            },
        );
        Self { img }
    }

    fn flat(img: &mut VmcbImage, seg: VmcbSeg, selector: u16, attrib: u16) {
        img.set_seg(
            seg,
            VmcbSegment {
                selector,
                attrib,
                limit: 0xffff_ffff,
                base: 0,
            },
        );
    }

    /// A 64-bit guest: long mode with 4-level paging, flat segments, CPL 0.
    pub fn long_mode() -> Self {
        let mut b = Self::common();
        let img = &mut b.img;
        img.set(
            VmcbField::Efer,
            (Efer::SVME | Efer::LME | Efer::LMA | Efer::NXE | Efer::SCE).bits(),
        );
        img.set(
            VmcbField::Cr0,
            (Cr0::PE | Cr0::MP | Cr0::ET | Cr0::NE | Cr0::WP | Cr0::PG).bits(),
        );
        img.set(
            VmcbField::Cr4,
            (Cr4::PAE | Cr4::PGE | Cr4::OSFXSR | Cr4::OSXMMEXCPT).bits(),
        );
        img.set(VmcbField::Cr3, 0x0010_0000);
        Self::flat(img, VmcbSeg::Cs, 0x10, CODE64);
        for s in [VmcbSeg::Ss, VmcbSeg::Ds, VmcbSeg::Es] {
            Self::flat(img, s, 0x18, DATA);
        }
        img.set(VmcbField::Rip, 0x0040_0000);
        img.set(VmcbField::Rsp, 0x0080_0000);
        b
    }

    /// A 32-bit protected-mode guest with paging off.
    pub fn protected_mode() -> Self {
        let mut b = Self::common();
        let img = &mut b.img;
        img.set(VmcbField::Efer, Efer::SVME.bits());
        img.set(VmcbField::Cr0, (Cr0::PE | Cr0::ET | Cr0::NE).bits());
        Self::flat(img, VmcbSeg::Cs, 0x08, CODE32);
        for s in [VmcbSeg::Ss, VmcbSeg::Ds, VmcbSeg::Es] {
            Self::flat(img, s, 0x10, DATA);
        }
        img.set(VmcbField::Rip, 0x7c00);
        img.set(VmcbField::Rsp, 0x7000);
        b
    }

    /// A real-mode guest at F000:FFF0, as after RESET.
    pub fn real_mode() -> Self {
        let mut b = Self::common();
        let img = &mut b.img;
        img.set(VmcbField::Efer, Efer::SVME.bits());
        img.set(VmcbField::Cr0, Cr0::ET.bits());
        img.set_seg(
            VmcbSeg::Cs,
            VmcbSegment {
                selector: 0xf000,
                attrib: 0x9b,
                limit: 0xffff,
                base: 0xf_0000,
            },
        );
        for s in [VmcbSeg::Ss, VmcbSeg::Ds, VmcbSeg::Es] {
            img.set_seg(
                s,
                VmcbSegment {
                    selector: 0,
                    attrib: 0x93,
                    limit: 0xffff,
                    base: 0,
                },
            );
        }
        img.set(VmcbField::Rip, 0xfff0);
        b
    }

    /// Sets one field.
    pub fn set(mut self, f: VmcbField, v: u64) -> Self {
        self.img.set(f, v);
        self
    }

    /// Replaces the intercept vectors (keeping whatever the caller passes,
    /// including a clear VMRUN bit).
    pub fn intercepts(mut self, i: Intercepts) -> Self {
        i.to_image(&mut self.img);
        self
    }

    /// Sets EVENTINJ.
    pub fn event(mut self, e: EventInj) -> Self {
        self.img.set(VmcbField::EventInj, e.0);
        self
    }

    /// Sets the virtual-interrupt control word.
    pub fn vintr(mut self, v: VIntr) -> Self {
        v.to_image(&mut self.img);
        self
    }

    /// Enables nested paging with `ncr3`.
    pub fn nested_paging(mut self, ncr3: u64) -> Self {
        self.img
            .set(VmcbField::NestedCtl, NestedCtl::NP_ENABLE.bits());
        self.img.set(VmcbField::NCr3, ncr3);
        self
    }

    /// The image.
    pub fn build(self) -> VmcbImage {
        self.img
    }
}

impl CpuState {
    /// A 64-bit host at CPL 0 with EFER.SVME set, as a hypervisor is when it
    /// executes VMRUN; `rip` is the address after the VMRUN.
    pub fn long_mode_host(rip: u64) -> Self {
        let mut regs = SystemRegs {
            cr0: Cr0::PE | Cr0::MP | Cr0::ET | Cr0::NE | Cr0::WP | Cr0::PG,
            cr3: 0x0020_0000,
            cr4: Cr4::PAE | Cr4::PGE | Cr4::OSFXSR | Cr4::OSXMMEXCPT,
            efer: Efer::SVME | Efer::LME | Efer::LMA | Efer::NXE | Efer::SCE,
            dr6: mmu::dr6::INIT,
            dr7: Dr7::FIXED1,
            gdtr: TableRegister {
                base: 0xffff_8000_0000_1000,
                limit: 0x4f,
            },
            idtr: TableRegister {
                base: 0xffff_8000_0000_2000,
                limit: 0xfff,
            },
            pat: SystemRegs::PAT_RESET,
            ..SystemRegs::default()
        };
        *regs.seg_mut(SegReg::Cs) = SegmentCache::flat(0x08, 0xb, 0, false, true);
        for s in [SegReg::Ss, SegReg::Ds, SegReg::Es] {
            *regs.seg_mut(s) = SegmentCache::flat(0x10, 0x3, 0, true, false);
        }
        CpuState {
            regs,
            rip,
            rsp: 0xffff_8000_0010_0000,
            rax: 0,
            rflags: Rflags::FIXED1,
            cpl: 0,
        }
    }
}
