//! Running a whole Multiboot guest on the host CPU through `/dev/kvm`.
//!
//! nestemu's own loader prepares the guest (`nestemu::loader::multiboot`):
//! the RAM it filled and the Multiboot entry state it set (flat 32-bit
//! protected mode, paging off, EAX = 2BADB002H, EBX = the information
//! structure; Multiboot 0.6.96 section 3.2) are handed to a one-vCPU KVM
//! virtual machine, which runs until the guest writes isa-debug-exit (port
//! F4H), halts or shuts down. COM1's transmit register is the only device
//! modelled; the RAM the guest left behind is copied back into the nestemu
//! machine so the suite's records can be read the same way as after a
//! nestemu run.
//!
//! On this project's hosts `/dev/kvm` runs ring-0 guest code in KVM's own
//! instruction emulator with shadow paging (see [`crate::kvm`]); where such a
//! run disagrees with nestemu, the disagreement is evidence to weigh, not a
//! verdict.

use crate::kvm::{GuestRam, Watchdog};
use kvm_bindings::{kvm_segment, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit};
use nestemu::{Machine, Stop};

/// COM1's transmit/receive register and line-status register.
const COM1: u16 = 0x3f8;
const COM1_LSR: u16 = 0x3fd;
/// QEMU's isa-debug-exit.
const DEBUG_EXIT: u16 = 0xf4;

/// What a KVM run of a prepared machine did.
#[derive(Debug)]
pub struct BootRun {
    /// How it ended, in nestemu's terms.
    pub stop: Stop,
    /// Bytes written to COM1.
    pub serial: Vec<u8>,
    /// I/O ports written that are not modelled here (ignored), in first-use
    /// order.
    pub ignored_ports: Vec<u16>,
}

/// Whether `/dev/kvm` can be opened here.
pub fn available() -> bool {
    Kvm::new().is_ok()
}

/// CPUID leaf `function`, subleaf `index` (EAX, EBX, ECX, EDX) of the host
/// CPU as KVM offers it to guests; zeros for a leaf it does not list.
pub fn supported_cpuid(function: u32, index: u32) -> Result<[u32; 4], String> {
    let kvm = Kvm::new().map_err(|e| format!("opening /dev/kvm: {e}"))?;
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
    Ok(cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == function && e.index == index)
        .map_or([0; 4], |e| [e.eax, e.ebx, e.ecx, e.edx]))
}

/// Runs the machine `m` (prepared by nestemu's Multiboot loader, not yet
/// run) on the host CPU for at most `timeout`, then copies the guest's RAM
/// back into `m`. Errors are setup failures and unexpected exits.
pub fn run_prepared(m: &mut Machine, timeout: std::time::Duration) -> Result<BootRun, String> {
    let size = m.ram.size();
    if size > m.ram.map.low {
        return Err(format!(
            "{} MiB of RAM reach above the PCI hole; the KVM runner maps low RAM only",
            size >> 20
        ));
    }
    // Declared first, so dropped last: the VM never outlives its memory.
    let mut ram = GuestRam::new(size as usize)?;
    m.peek_phys(0, ram.bytes());
    let kvm = Kvm::new().map_err(|e| format!("opening /dev/kvm: {e}"))?;
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: size,
        userspace_addr: ram.bytes().as_mut_ptr() as u64,
    };
    // SAFETY: the region is host memory owned by `ram`, which is declared
    // before the VM and its vCPU and so outlives both on every path.
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
    let mut vcpu = vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| format!("KVM_SET_CPUID2: {e}"))?;
    set_entry_state(&vcpu, m)?;

    let mut serial = Vec::new();
    let mut ignored_ports = Vec::new();
    let watchdog = Watchdog::arm(timeout);
    let deadline = std::time::Instant::now() + timeout;
    let result = loop {
        match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => match port {
                DEBUG_EXIT => {
                    let mut v = [0u8; 4];
                    let n = data.len().min(4);
                    v[..n].copy_from_slice(&data[..n]);
                    break Ok(Stop::DebugExit(u32::from_le_bytes(v)));
                }
                COM1 => serial.extend_from_slice(data),
                p => {
                    if !ignored_ports.contains(&p) {
                        ignored_ports.push(p);
                    }
                }
            },
            Ok(VcpuExit::IoIn(port, data)) => {
                // The transmitter is always empty; nothing else answers.
                let v = if port == COM1_LSR { 0x60 } else { 0xff };
                data.fill(v);
            }
            Ok(VcpuExit::Hlt) => break Ok(Stop::HaltForever),
            Ok(VcpuExit::Shutdown) => break Ok(Stop::Shutdown("KVM reported a shutdown".into())),
            Ok(VcpuExit::Intr) => {}
            Ok(VcpuExit::InternalError) => {
                let kr = vcpu.get_kvm_run();
                // SAFETY: the exit reason says the `internal` member is the active one.
                let sub = unsafe { kr.__bindgen_anon_1.internal.suberror };
                break Err(format!("KVM internal error, suberror {sub}"));
            }
            Ok(other) => break Err(format!("unexpected KVM exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR => {
                vcpu.set_kvm_immediate_exit(0);
                if std::time::Instant::now() >= deadline {
                    break Err(format!("timed out after {timeout:?}"));
                }
            }
            Err(e) => break Err(format!("KVM_RUN: {e}")),
        }
    };
    drop(watchdog);
    let rip = vcpu.get_regs().map(|r| r.rip).unwrap_or_default();
    m.load_phys(0, ram.bytes());
    let stop = result.map_err(|e| {
        let mut code = [0u8; 15];
        m.peek_phys(rip, &mut code);
        format!(
            "{e} at rip {rip:#x} (bytes there if identity-mapped: {code:02x?}); serial so far: {}",
            String::from_utf8_lossy(&serial)
        )
    })?;
    Ok(BootRun {
        stop,
        serial,
        ignored_ports,
    })
}

/// Gives the vCPU the entry state nestemu's loader set: flat 4-GiB code and
/// data segments with the loader's selectors and GDT, CR0 = PE, the entry
/// RIP and the Multiboot registers.
fn set_entry_state(vcpu: &kvm_ioctls::VcpuFd, m: &Machine) -> Result<(), String> {
    let mut s = vcpu
        .get_sregs()
        .map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
    let seg = |selector: u16, type_: u8| kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    let data = seg(nestemu::loader::BOOT_DS, 0x3);
    s.cs = seg(nestemu::loader::BOOT_CS, 0xb);
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.gdt.base = m.cpu.sys.gdtr.base;
    s.gdt.limit = m.cpu.sys.gdtr.limit;
    s.idt.base = 0;
    s.idt.limit = 0x3ff;
    s.cr0 = 0x11; // PE, ET
    s.cr3 = 0;
    s.cr4 = 0;
    s.efer = 0;
    vcpu.set_sregs(&s)
        .map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
    let mut r = vcpu.get_regs().map_err(|e| format!("KVM_GET_REGS: {e}"))?;
    r.rip = m.cpu.rip;
    r.rax = m.cpu.gpr[0];
    r.rbx = m.cpu.gpr[3];
    r.rflags = 2;
    vcpu.set_regs(&r).map_err(|e| format!("KVM_SET_REGS: {e}"))
}
