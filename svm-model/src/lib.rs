//! `svm-model`: AMD-V (AMD APM Vol. 2 chapter 15, "Secure Virtual Machine") as
//! pure semantics over data. Given a VMCB and the state handed in, it decides
//! what the hardware does and returns it as a value. `emu` binds it to the
//! interpreter.
//!
//! The order the interpreter uses it in:
//!
//! 1. Discovery: [`SvmFeatures`] / [`SvmConfig`] give CPUID Fn8000_0001_ECX and
//!    Fn8000_000A; [`SvmMsrs`] is VM_CR, VM_HSAVE_PA, SVM_KEY and the TSC ratio,
//!    and rules EFER.SVME writes.
//! 2. An SVM instruction: [`insn::execute`] applies #UD/#GP/intercept rules and
//!    says what to do: VMRUN's world switch, VMLOAD/VMSAVE ([`insn::vmload`],
//!    [`insn::vmsave`]), GIF, INVLPGA, SKINIT.
//! 3. VMRUN: [`vmrun::vmrun`] reads the VMCB through [`PhysMem`], merges the
//!    clean-bit cache ([`VmcbCache`]), runs every consistency check
//!    ([`checks`], each a [`CheckId`]), and only then saves host state, loads
//!    guest state and returns a [`GuestEntry`] (registers, [`GuestControls`],
//!    TLB flush, event to inject) or VMEXIT_INVALID with the failed check.
//! 4. While the guest runs: [`intercept`] decides every instruction and event
//!    intercept, [`interrupts`] routes INTR/NMI/SMI/INIT and virtual interrupts
//!    under GIF and V_INTR.
//! 5. #VMEXIT: [`vmexit::vmexit`] writes guest state and [`ExitInfo`] to the
//!    VMCB and returns the reloaded host state ([`HostLoad`]).
//!
//! VMRUN and #VMEXIT also come in place ([`vmrun_in_place`],
//! [`vmexit_in_place`]): they transform one [`CpuState`] from the host's to
//! the guest's and back, as the hardware does, and return only the rest
//! ([`GuestSetup`], [`HostReload`]). The interpreter uses these, so a world
//! switch copies the registers once each way; the by-value forms are
//! wrappers over them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bitmaps;
pub mod checks;
pub mod clean;
pub mod exit_code;
pub mod features;
pub mod guest;
pub mod insn;
pub mod intercept;
pub mod interrupts;
pub mod mem;
pub mod msr;
pub mod state;
pub mod vmcb;
pub mod vmexit;
pub mod vmrun;

pub use checks::CheckId;
pub use clean::VmcbCache;
pub use exit_code::ExitCode;
pub use features::{SvmConfig, SvmFeatures};
pub use guest::{GuestControls, NestedPaging, PauseFilter, VirtVmload};
pub use mem::{PageMem, PhysMem, SvmAccess};
pub use msr::{SvmMsrs, VmCr};
pub use state::{AddressSize, CpuState};
pub use vmcb::{VmcbField, VmcbImage};
pub use vmexit::{vmexit, vmexit_in_place, ExitInfo, HostLoad, HostReload, InsnBytes};
pub use vmrun::{
    vmrun, vmrun_in_place, GuestEntry, GuestSetup, InjectedEvent, VmrunInPlace, VmrunOutcome,
};
