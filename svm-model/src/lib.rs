//! `svm-model`: AMD-V (AMD APM Vol. 2 chapter 15, "Secure Virtual Machine") as
//! pure semantics over data. Given a VMCB and the state handed in, it decides
//! what the hardware does and returns it as a value. `emu` binds it to the
//! interpreter.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bitmaps;
pub mod checks;
pub mod clean;
pub mod exit_code;
pub mod features;
pub mod guest;
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
pub use vmexit::{vmexit, ExitInfo, HostLoad, InsnBytes};
pub use vmrun::{vmrun, GuestEntry, InjectedEvent, VmrunOutcome};
