//! VMRUN's world switch into the guest (APM Vol. 2 15.5, "VMRUN
//! Instruction"): `svm_model::vmrun` reads the VMCB, runs every consistency
//! check and only then commits (host state saved, guest state returned); this
//! file loads the guest into the processor, sets up guest mode (nested paging
//! and the ASID tag for translations, V_TPR, GIF), applies TLB_CONTROL
//! (15.16.1) and delivers EVENTINJ through the normal delivery path (15.20).
//!
//! A VMRUN that fails a check exits with VMEXIT_INVALID; the failed check
//! (field, APM section, rule) is printed on stderr the first time it fails and
//! kept for `--stats`.

use super::insn::asid_tag;
use super::{state, vmexit, FailureRecord, Guest};
use crate::cost::InsnClass;
use crate::event::{Event, Flow, SoftIntKind};
use crate::interrupt::{Delivery, Source};
use crate::machine::Machine;
use crate::stats::Level;
use crate::virt::GuestMode;
use mmu::paging::{NestedPaging, NptContext};
use mmu::{Cr0, Cr4, Efer, TranslationContext};
use svm_model::vmcb::{EventType, TlbFlush};
use svm_model::vmrun::InvalidVmrun;
use svm_model::{ExitCode, GuestSetup, HostReload, InjectedEvent, VmrunInPlace};

/// VMRUN of the VMCB at `vmcb_pa`, after the instruction's own checks.
pub(crate) fn enter(m: &mut Machine, vmcb_pa: u64) -> Flow {
    // The host state, which VMRUN turns into the guest's (or, failing, the
    // reloaded host's) in place.
    state::fill_world(m, m.next_rip);
    let hsave = m.virt.svm.msrs.hsave_pa;
    let outcome = {
        let (mut mem, cfg, cache, cpu) = state::split_world(m);
        svm_model::vmrun_in_place(cfg, cpu, vmcb_pa, hsave, &mut mem, cache)
    };
    m.charge_vm_entry();
    match outcome {
        VmrunInPlace::Entered(setup) => run_guest(m, setup),
        VmrunInPlace::Invalid(inv) => {
            record_failure(m, vmcb_pa, &inv);
            m.count_vmexit(ExitCode::VMEXIT_INVALID.name().unwrap_or("VMEXIT_INVALID"));
            vmexit::load_host(m, inv.host, None).map_err(Event::stop)
        }
    }
}

/// Loads the guest VMRUN entered (in the world-switch state, with the rest
/// of the entry `setup`) and starts guest mode.
fn run_guest(m: &mut Machine, setup: GuestSetup) -> Flow {
    let GuestSetup {
        controls,
        interrupt_shadow,
        inject,
        tlb,
        pdptes,
        clean: _,
    } = setup;
    let vmrun_cost = m.config.cost.insn(InsnClass::System);
    m.switch_level(
        Level::L2 {
            control: controls.vmcb_pa,
        },
        Some(vmrun_cost),
    );
    let host_cr8 = m.dev.lapic().cr8();
    if controls.vintr.v_intr_masking {
        m.dev.write_cr8(u64::from(controls.vintr.v_tpr & 0xf));
    }
    let nested = controls.nested.is_some();
    let asid = asid_tag(controls.asid);
    m.virt.svm.guest = Some(Guest {
        controls,
        host_cr8,
        last_pause: None,
        trap: None,
        iret: false,
        monitor_armed: false,
    });
    m.virt.svm.gif = true;
    m.virt.svm.delivering = None;
    m.virt.mode = GuestMode::SvmGuest;
    if let Some(p) = pdptes {
        m.cpu.pdptes = p;
    }
    state::load_world(m);
    let ev = &mut m.cpu.events;
    ev.sti_blocking = interrupt_shadow;
    ev.movss_blocking = false;
    ev.halted = false;
    match tlb {
        TlbFlush::None => {}
        TlbFlush::All => m.mmu.flush_all(),
        TlbFlush::Asid(_) => m.mmu.flush_asid(asid),
        TlbFlush::AsidNonGlobal(_) => m.mmu.flush_asid_non_global(asid),
    }
    if nested && legacy_pae(m) {
        // With nested paging the guest's PDPEs are guest-physical: load them
        // through the nested tables (a nested fault here leaves them zero).
        let cr3 = m.cpu.sys.cr3;
        if m.load_pdptes(cr3).is_ok() {
            m.paging_changed();
        }
    }
    match inject {
        Some(ev) => inject_event(m, &ev),
        None => Ok(()),
    }
}

/// True if the current state uses legacy (not long-mode) PAE paging.
fn legacy_pae(m: &Machine) -> bool {
    let s = &m.cpu.sys;
    s.cr0.contains(Cr0::PG) && s.cr4.contains(Cr4::PAE) && !s.efer.contains(Efer::LMA)
}

/// Delivers the event EVENTINJ asks for through the guest IDT, as though it
/// occurred in the guest (APM Vol. 2 15.20): no intercept check for the event
/// itself; a fault while delivering it is intercepted as usual, with the
/// injected event in EXITINTINFO.
fn inject_event(m: &mut Machine, ev: &InjectedEvent) -> Flow {
    let source = match ev.typ {
        EventType::Intr => Source::External,
        EventType::Nmi => Source::Nmi,
        EventType::SoftwareInt => Source::Software(SoftIntKind::IntN),
        EventType::Exception if ev.dpl_checked && ev.vector == 3 => {
            Source::Software(SoftIntKind::Int3)
        }
        EventType::Exception if ev.dpl_checked && ev.vector == 4 => {
            Source::Software(SoftIntKind::Into)
        }
        EventType::Exception => Source::Exception,
    };
    if m.trace.wants(crate::trace::Kind::Inject) {
        m.trace_inject(&format!("{:?}", ev.typ), ev.vector, ev.error_code);
    }
    let d = Delivery {
        vector: ev.vector,
        error_code: ev.error_code,
        source,
        return_rip: ev.return_rip,
        payload: None,
        push_rf: false,
    };
    // A fault while delivering a software interrupt is reported on the
    // instruction, i.e. the guest RIP.
    m.trap_rip = m.cpu.rip;
    m.virt.svm.injecting = true;
    let r = m.deliver(d);
    m.virt.svm.injecting = false;
    m.next_rip = m.cpu.rip;
    r.map_err(Event::stop)
}

/// Records a failed VMRUN and prints its check the first time it fails.
fn record_failure(m: &mut Machine, vmcb_pa: u64, inv: &InvalidVmrun<HostReload>) {
    let c = inv.check;
    let f = &mut m.virt.svm.failures;
    let rec = f.by_check.entry(c).or_insert_with(|| FailureRecord {
        check: c,
        name: c.name(),
        field: c.field().name(),
        section: c.section(),
        rule: c.description(),
        all: inv.all.iter().map(|c| c.name()).collect(),
        vmcb: vmcb_pa,
        count: 0,
    });
    rec.count += 1;
    rec.vmcb = vmcb_pa;
    if rec.count == 1 {
        eprintln!(
            "nestemu: VMRUN of the VMCB at {vmcb_pa:#x} failed a consistency check, \
             #VMEXIT(VMEXIT_INVALID): {} [{}, AMD APM Vol. 2 {}]: {}",
            c.name(),
            c.field().name(),
            c.section(),
            c.description()
        );
        if inv.all.len() > 1 {
            let others: Vec<&str> = inv.all[1..].iter().map(|c| c.name()).collect();
            eprintln!("nestemu:   the VMCB also violates: {}", others.join(", "));
        }
    }
    f.last = Some(rec.clone());
    *m.stats
        .entry_failures
        .entry(format!("svm:{}", c.name()))
        .or_default() += 1;
}

/// Adds the running guest's nested paging (nCR3, in the host's paging mode at
/// VMRUN, APM Vol. 2 15.25.3) and its ASID tag to a translation context.
pub fn translation_context(m: &Machine, ctx: TranslationContext) -> TranslationContext {
    let Some(c) = m.virt.svm.controls() else {
        return ctx;
    };
    // The processor's 1-GiB page support, as the context built from the same
    // CPU model has it (no feature-set lookup per context).
    let page_1g = ctx.config().features.page_1g;
    let ctx = match &c.nested {
        Some(n) => ctx.with_nested(NestedPaging::Npt(NptContext {
            ncr3: n.ncr3,
            levels: if n.host_cr4.contains(Cr4::LA57) { 5 } else { 4 },
            nxe: n.host_efer.contains(Efer::NXE),
            page_1g,
        })),
        None => ctx,
    };
    ctx.with_vpid(asid_tag(c.asid))
}
