//! The AMD-V binding: SVM instructions, VMRUN, #VMEXIT and guest mode,
//! through `svm-model` (AMD APM Vol. 2 chapter 15).
//!
//! The model decides; this binding gathers what it needs from the machine and
//! applies what it returns, one file per concept:
//!
//! | file | concept |
//! | --- | --- |
//! | [`discovery`] | the SVM configuration of the CPU model, CPUID, VM_CR, VM_HSAVE_PA, EFER.SVME |
//! | [`insn`] | VMRUN, VMLOAD, VMSAVE, VMMCALL, STGI, CLGI, INVLPGA, SKINIT (and RSM's intercept) |
//! | [`vmrun`] | the world switch into the guest: checks, TLB control, event injection, diagnostics |
//! | [`vmexit`] | #VMEXIT: guest state and exit information to the VMCB, host reload |
//! | [`intercepts`] | the instruction intercepts the interpreter's handlers ask about |
//! | [`events`] | exception intercepts, EXITINTINFO, #NPF, GIF, V_INTR, virtual NMI, trap intercepts |
//! | [`state`] | the VMCB's physical memory, processor state in and out of the model |
//!
//! The guest levels are named as the design brief does: the hypervisor running
//! on nestemu is L1 (host mode), the guest it runs with VMRUN is L2.
//!
//! Task switches (far JMP/CALL to a TSS or task gate, IRET with NT = 1, an
//! event through an IDT task gate) ask for the TASK_SWITCH intercept after
//! the new TSS descriptor's checks and before anything is saved
//! (`interp::task`; `testsuites/tests/svm_tasks.rs` with a 32-bit L2).
//!
//! A physical SMI (an IPI or I/O APIC message of delivery mode SMI) is held
//! by GIF = 0 and exits with the SMI intercept (`interrupt::external`);
//! otherwise it is taken, and since SMM is not modelled a taken SMI is
//! counted and dropped, the processor going on as if the SMI handler had
//! returned at once.
//!
//! A waiting x87 instruction that would freeze on a pending error with
//! CR0.NE = 0 (legacy FERR# reporting, `interp::x87::state::pending_error`)
//! asks for the FERR_FREEZE intercept.
//!
//! Intercepts the machine cannot produce yet, and why: XSETBV and INVPCID
//! (the instructions are not advertised, so they are #UD before their
//! intercept), SKINIT (not advertised).

pub mod discovery;
pub mod events;
pub mod insn;
pub mod intercepts;
pub mod state;
pub mod vmexit;
pub mod vmrun;

use crate::event::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use svm_model::vmcb::EventInj;
use svm_model::{CheckId, ExitInfo, GuestControls, SvmConfig, SvmMsrs, VmcbCache};

pub use discovery::{cpuid, read_msr, write_msr};
pub use events::{event_intercept, nested_fault};
pub use insn::handler_for;
pub use intercepts::intercept;
pub use vmexit::perform_exit;
pub use vmrun::translation_context;

/// AMD-V state of the processor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SvmCpu {
    /// What the CPU model advertises and the rules consult (from
    /// [`discovery::config`]).
    pub cfg: SvmConfig,
    /// VM_CR, VM_HSAVE_PA, SVM_KEY, the TSC ratio.
    pub msrs: SvmMsrs,
    /// The global interrupt flag (APM Vol. 2 15.17). Set at reset and by
    /// VMRUN, cleared by #VMEXIT.
    pub gif: bool,
    /// Cached VMCB state for the clean bits (APM Vol. 2 15.15).
    pub cache: VmcbCache,
    /// The running guest, in guest mode. Held inline, not boxed: VMRUN sets
    /// it and #VMEXIT clears it, and a box cost an allocation and a free per
    /// round trip (the serialized form is the same either way).
    pub guest: Option<Guest>,
    /// Failed VMRUNs, for the diagnostic and `--stats`.
    pub failures: Failures,
    /// Tagged accesses to SVM structures in physical memory.
    pub accesses: state::AccessCounts,
    /// The event being delivered through the guest IDT, for EXITINTINFO.
    pub(crate) delivering: Option<Delivering>,
    /// The next delivery is the event VMRUN injects: no intercept check.
    pub(crate) injecting: bool,
    /// Fetching instruction bytes for decode assists (no recursion on a
    /// nested fault of the fetch itself).
    pub(crate) fetching_bytes: bool,
    /// The processor state VMRUN and #VMEXIT transform in place: filled from
    /// the processor before a world switch and loaded into it after, so the
    /// registers are copied once each way and into storage that already
    /// exists. Holds nothing between world switches (a snapshot leaves it
    /// out).
    #[serde(skip)]
    pub(crate) world: svm_model::CpuState,
}

impl Default for SvmCpu {
    /// No SVM (the configuration of a model without it).
    fn default() -> Self {
        Self::with_config(SvmConfig {
            features: svm_model::SvmFeatures::none(),
            ..SvmConfig::amd()
        })
    }
}

impl SvmCpu {
    /// The state after RESET for configuration `cfg`.
    pub fn with_config(cfg: SvmConfig) -> Self {
        Self {
            cfg,
            msrs: SvmMsrs::reset(),
            gif: true,
            cache: VmcbCache::default(),
            guest: None,
            failures: Failures::default(),
            accesses: state::AccessCounts::default(),
            delivering: None,
            injecting: false,
            fetching_bytes: false,
            world: svm_model::CpuState::default(),
        }
    }

    /// The controls of the running guest, in guest mode.
    pub fn controls(&self) -> Option<&GuestControls> {
        self.guest.as_ref().map(|g| &g.controls)
    }

    /// The `svm` section of `--stats`, if the CPU model has SVM.
    pub fn report(&self) -> Option<SvmReport<'_>> {
        self.cfg.features.svm.then(|| SvmReport {
            vmrun_failures: &self.failures,
            accesses: self.accesses.by_name(),
        })
    }
}

/// The `svm` section of `--stats`: failed VMRUNs by consistency check (with
/// the last one in full), and the tagged accesses to SVM structures.
#[derive(Clone, Debug, Serialize)]
pub struct SvmReport<'a> {
    /// Failed VMRUNs.
    pub vmrun_failures: &'a Failures,
    /// Accesses to the VMCB, host save area, permission maps and PDPEs.
    pub accesses: BTreeMap<&'static str, u64>,
}

/// What the processor keeps while a guest runs (between VMRUN and #VMEXIT).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Guest {
    /// The VMCB controls in force.
    pub controls: GuestControls,
    /// The host's task-priority register (CR8): with V_INTR_MASKING the guest
    /// reads and writes V_TPR instead (APM Vol. 2 15.21.2).
    pub(crate) host_cr8: u64,
    /// Modelled cycle count of the last PAUSE (the PAUSE filter threshold).
    pub(crate) last_pause: Option<u64>,
    /// A trap-like intercept (CR or EFER write trap) to take once the
    /// instruction completes.
    pub(crate) trap: Option<PendingTrap>,
    /// A guest IRET is in progress: if it completes, it unmasks virtual NMIs.
    pub(crate) iret: bool,
    /// The guest ran MONITOR: the monitor hardware is armed until MWAIT
    /// (the interpreter models no store that would disarm it).
    pub(crate) monitor_armed: bool,
}

/// A CR or EFER write trap waiting for its instruction to complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingTrap {
    /// CR number, or `None` for EFER.
    pub cr: Option<u8>,
    /// Address of the next instruction (the trap is taken there).
    pub next_rip: u64,
}

/// The event the processor is delivering in the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Delivering {
    /// As EXITINTINFO records it.
    pub event: EventInj,
    /// The guest RIP to save if a #VMEXIT interrupts the delivery: the
    /// instruction that raised a software interrupt, otherwise `None` (the
    /// current RIP).
    pub rip: Option<u64>,
}

/// An SVM #VMEXIT being performed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingExit {
    /// Exit code and information.
    pub info: ExitInfo,
    /// The guest RIP to save, if not the current one (a #BP or #OF from
    /// INT3 or INTO is intercepted on its instruction, which has retired).
    pub rip: Option<u64>,
}

/// The event of a #VMEXIT.
#[cold]
pub(crate) fn exit_event(m: &mut crate::machine::Machine, info: ExitInfo) -> Event {
    exit_event_at(m, info, None)
}

/// The event of a #VMEXIT saving `rip` as the guest RIP.
#[cold]
pub(crate) fn exit_event_at(
    m: &mut crate::machine::Machine,
    info: ExitInfo,
    rip: Option<u64>,
) -> Event {
    m.guest_exit(super::GuestExit::Svm(PendingExit { info, rip }))
}

/// Failed VMRUNs (VMEXIT_INVALID): which consistency check failed, how often,
/// and where. The first failure of each check is also printed on stderr.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Failures {
    /// Failures by check.
    pub by_check: BTreeMap<CheckId, FailureRecord>,
    /// The most recent failure.
    pub last: Option<FailureRecord>,
}

/// One failed VMRUN consistency check. Serialized with its names (the
/// report); read back from the check identifiers alone (a snapshot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailureRecord {
    /// The check VMRUN reported.
    pub check: CheckId,
    /// Its stable name.
    pub name: &'static str,
    /// The VMCB field it is about.
    pub field: &'static str,
    /// The APM Vol. 2 section stating the rule.
    pub section: &'static str,
    /// The rule.
    pub rule: &'static str,
    /// Every check the VMCB violated.
    pub all: Vec<&'static str>,
    /// The VMCB's physical address.
    pub vmcb: u64,
    /// How many VMRUNs failed this check.
    pub count: u64,
}

/// What a [`FailureRecord`] is rebuilt from.
#[derive(Deserialize)]
struct FailureRecordState {
    check: CheckId,
    all: Vec<String>,
    vmcb: u64,
    count: u64,
}

impl<'de> Deserialize<'de> for FailureRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        FailureRecordState::deserialize(d).map(Into::into)
    }
}

impl From<FailureRecordState> for FailureRecord {
    fn from(s: FailureRecordState) -> Self {
        let c = s.check;
        Self {
            check: c,
            name: c.name(),
            field: c.field().name(),
            section: c.section(),
            rule: c.description(),
            all: s
                .all
                .iter()
                .filter_map(|n| CheckId::ALL.iter().find(|k| k.name() == n))
                .map(|k| k.name())
                .collect(),
            vmcb: s.vmcb,
            count: s.count,
        }
    }
}
