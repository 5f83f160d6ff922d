//! The feature sets of the `intel` preset: every control, EPT/VPID capability and
//! CR4 bit whose semantics the model (and the machine binding it) implements.

use crate::controls::{
    EntryControls as En, EptVpidCap as Ept, ExitControls as Ex, PinControls as Pin,
    Proc2Controls as P2, ProcControls as P1,
};
use mmu::Cr4;

pub(super) const INTEL_PIN: Pin = Pin::EXTERNAL_INTERRUPT_EXITING
    .union(Pin::NMI_EXITING)
    .union(Pin::VIRTUAL_NMIS)
    .union(Pin::ACTIVATE_PREEMPTION_TIMER);

pub(super) const INTEL_PROC: P1 = P1::all().difference(P1::ACTIVATE_TERTIARY_CONTROLS);

pub(super) const INTEL_PROC2: P2 = P2::ENABLE_EPT
    .union(P2::DESCRIPTOR_TABLE_EXITING)
    .union(P2::ENABLE_RDTSCP)
    .union(P2::ENABLE_VPID)
    .union(P2::WBINVD_EXITING)
    .union(P2::UNRESTRICTED_GUEST)
    .union(P2::PAUSE_LOOP_EXITING)
    .union(P2::RDRAND_EXITING)
    .union(P2::ENABLE_INVPCID)
    .union(P2::RDSEED_EXITING)
    .union(P2::ENABLE_XSAVES)
    .union(P2::USE_TSC_SCALING);

pub(super) const INTEL_EXIT: Ex = Ex::SAVE_DEBUG_CONTROLS
    .union(Ex::HOST_ADDRESS_SPACE_SIZE)
    .union(Ex::ACKNOWLEDGE_INTERRUPT_ON_EXIT)
    .union(Ex::SAVE_PAT)
    .union(Ex::LOAD_PAT)
    .union(Ex::SAVE_EFER)
    .union(Ex::LOAD_EFER)
    .union(Ex::SAVE_PREEMPTION_TIMER);

pub(super) const INTEL_ENTRY: En = En::LOAD_DEBUG_CONTROLS
    .union(En::IA32E_MODE_GUEST)
    .union(En::LOAD_PAT)
    .union(En::LOAD_EFER);

pub(super) const INTEL_EPT_VPID: Ept = Ept::EXECUTE_ONLY
    .union(Ept::PAGE_WALK_4)
    .union(Ept::MEMORY_TYPE_UC)
    .union(Ept::MEMORY_TYPE_WB)
    .union(Ept::PDE_2MB_PAGES)
    .union(Ept::PDPTE_1GB_PAGES)
    .union(Ept::INVEPT)
    .union(Ept::INVEPT_SINGLE_CONTEXT)
    .union(Ept::INVEPT_ALL_CONTEXT)
    .union(Ept::INVVPID)
    .union(Ept::INVVPID_INDIVIDUAL_ADDRESS)
    .union(Ept::INVVPID_SINGLE_CONTEXT)
    .union(Ept::INVVPID_ALL_CONTEXT)
    .union(Ept::INVVPID_SINGLE_CONTEXT_RETAINING_GLOBALS);

pub(super) const INTEL_CR4: Cr4 = Cr4::VME
    .union(Cr4::PVI)
    .union(Cr4::TSD)
    .union(Cr4::DE)
    .union(Cr4::PSE)
    .union(Cr4::PAE)
    .union(Cr4::MCE)
    .union(Cr4::PGE)
    .union(Cr4::PCE)
    .union(Cr4::OSFXSR)
    .union(Cr4::OSXMMEXCPT)
    .union(Cr4::VMXE)
    .union(Cr4::FSGSBASE)
    .union(Cr4::PCIDE)
    .union(Cr4::OSXSAVE)
    .union(Cr4::SMEP)
    .union(Cr4::SMAP);
