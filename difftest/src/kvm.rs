//! The hardware oracle: running an image in a KVM virtual machine.
//!
//! On these hosts `/dev/kvm` is a paging-based KVM (PVM): ring-0 guest code is
//! run by KVM's instruction emulator, ring-3 guest code natively on the host
//! CPU. The image keeps ring 0 to a few simple instructions (see
//! [`crate::image`]); the sequences run in ring 3.

use crate::emu::RunOutput;
use crate::image::{self, Image};
use crate::layout::{self, sel};
use kvm_bindings::{kvm_segment, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use nestemu::cpu::cpuid::Vendor;
use std::alloc::{alloc_zeroed, dealloc, Layout};

/// Guest RAM: one page-aligned host allocation.
pub(crate) struct GuestRam {
    ptr: *mut u8,
    layout: Layout,
}

impl GuestRam {
    pub(crate) fn new(bytes: usize) -> Result<Self, String> {
        let layout = Layout::from_size_align(bytes, 4096).map_err(|e| e.to_string())?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err("cannot allocate guest RAM".into());
        }
        Ok(Self { ptr, layout })
    }

    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `layout.size()` initialized bytes owned by
        // self; the guest only runs inside `Oracle::run`, which holds
        // `&mut self`, so no guest access overlaps this borrow.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// A one-vCPU VM ready to run images.
pub struct Oracle {
    // Field order is drop order: the vCPU and VM go before their RAM.
    vcpu: VcpuFd,
    _vm: VmFd,
    _kvm: Kvm,
    ram: GuestRam,
    /// How long an image may run: this, plus [`Oracle::per_sequence`] for
    /// each of its sequences. A batch of 2000 runs in well under a second;
    /// the margin is for a loaded host. A sequence that never ends (a
    /// corrupted return address leading back to its own start) then costs
    /// seconds, not minutes.
    pub timeout: std::time::Duration,
    /// The time added per sequence of an image.
    pub per_sequence: std::time::Duration,
    /// The host CPU's vendor.
    pub vendor: Vendor,
}

impl core::fmt::Debug for Oracle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Oracle")
    }
}

impl Oracle {
    /// Opens `/dev/kvm` and creates the VM.
    pub fn open() -> Result<Self, String> {
        let kvm = Kvm::new().map_err(|e| format!("opening /dev/kvm: {e}"))?;
        let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
        let mut ram = GuestRam::new(layout::RAM as usize)?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: layout::RAM,
            userspace_addr: ram.bytes().as_mut_ptr() as u64,
        };
        // SAFETY: the region is valid host memory that outlives the VM (field
        // order in `Oracle`).
        unsafe { vm.set_user_memory_region(region) }
            .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
        let vcpu = vm
            .create_vcpu(0)
            .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
        vcpu.set_cpuid2(&cpuid)
            .map_err(|e| format!("KVM_SET_CPUID2: {e}"))?;
        // CPUID.0: EBX, EDX, ECX spell the vendor; "Auth" of AuthenticAMD.
        let amd = cpuid
            .as_slice()
            .iter()
            .any(|e| e.function == 0 && e.ebx == u32::from_le_bytes(*b"Auth"));
        Ok(Self {
            vendor: if amd { Vendor::Amd } else { Vendor::Intel },
            vcpu,
            _vm: vm,
            _kvm: kvm,
            ram,
            timeout: std::time::Duration::from_secs(5),
            per_sequence: std::time::Duration::from_millis(20),
        })
    }

    /// Loads the image and runs it.
    pub fn run(&mut self, img: &Image) -> Result<RunOutput, String> {
        let mem = self.ram.bytes();
        mem.fill(0);
        for (a, b) in &img.regions {
            mem[*a as usize..*a as usize + b.len()].copy_from_slice(b);
        }
        self.set_entry_state()?;
        let timeout = self.timeout + self.per_sequence * img.count as u32;
        let watchdog = Watchdog::arm(timeout);
        let deadline = std::time::Instant::now() + timeout;
        let exit = loop {
            match self.vcpu.run() {
                Ok(VcpuExit::IoOut(port, data)) if port == layout::EXIT_PORT => {
                    let mut v = [0u8; 4];
                    let n = data.len().min(4);
                    v[..n].copy_from_slice(&data[..n]);
                    break Ok(u32::from_le_bytes(v));
                }
                Ok(VcpuExit::Intr) => {}
                Ok(other) => break Err(format!("unexpected KVM exit {other:?}")),
                Err(e) if e.errno() == libc::EINTR => {
                    self.vcpu.set_kvm_immediate_exit(0);
                    if std::time::Instant::now() >= deadline {
                        break Err(format!("timed out after {timeout:?}"));
                    }
                }
                Err(e) => break Err(format!("KVM_RUN: {e}")),
            }
        };
        drop(watchdog);
        let rip = self.vcpu.get_regs().map(|r| r.rip).unwrap_or_default();
        let mem = self.ram.bytes();
        let cur = u64::from_le_bytes(
            mem[(layout::VARS + layout::var::CUR) as usize..][..8]
                .try_into()
                .expect("8 bytes"),
        );
        let out = mem[layout::OUT_BASE as usize..][..image::output_len(img.count)].to_vec();
        let failed = match exit {
            Ok(layout::EXIT_DONE) => None,
            Ok(v) if v >= layout::EXIT_RING0_FAULT => Some(format!(
                "exception {} in ring 0, frame {:x?}",
                v - layout::EXIT_RING0_FAULT,
                image::ring0_frame(mem)
            )),
            Ok(v) => Some(format!("unexpected exit value {v:#x}")),
            Err(e) => Some(format!("{e} at rip {rip:#x}")),
        };
        Ok(RunOutput {
            out,
            failed: failed.map(|f| (cur, format!("kvm: {f}"))),
        })
    }

    /// Guest RAM after the last run.
    pub fn memory(&mut self) -> &[u8] {
        self.ram.bytes()
    }

    fn set_entry_state(&mut self) -> Result<(), String> {
        let e = image::entry_state();
        let mut s = self
            .vcpu
            .get_sregs()
            .map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
        let seg = |selector: u16, type_: u8, l: u8, db: u8| kvm_segment {
            base: 0,
            limit: 0xffff_ffff,
            selector,
            type_,
            present: 1,
            dpl: 0,
            db,
            s: 1,
            l,
            g: 1,
            avl: 0,
            unusable: 0,
            padding: 0,
        };
        s.cs = seg(sel::KCODE, 0xb, 1, 0);
        let data = seg(sel::KDATA, 0x3, 0, 1);
        s.ds = data;
        s.es = data;
        s.fs = data;
        s.gs = data;
        s.ss = data;
        s.tr = kvm_segment {
            base: layout::TSS,
            limit: 0x67,
            selector: sel::TSS,
            type_: 0xb,
            present: 1,
            dpl: 0,
            db: 0,
            s: 0,
            l: 0,
            g: 0,
            avl: 0,
            unusable: 0,
            padding: 0,
        };
        s.gdt.base = layout::GDT;
        s.gdt.limit = image::GDT_LIMIT;
        s.idt.base = layout::IDT;
        s.idt.limit = 0xfff;
        s.cr0 = e.cr0;
        s.cr3 = e.cr3;
        s.cr4 = e.cr4;
        s.efer = e.efer;
        self.vcpu
            .set_sregs(&s)
            .map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
        let mut r = self
            .vcpu
            .get_regs()
            .map_err(|e| format!("KVM_GET_REGS: {e}"))?;
        r = kvm_bindings::kvm_regs { ..r };
        r.rip = e.rip;
        r.rsp = e.rsp;
        r.rflags = 2;
        self.vcpu
            .set_regs(&r)
            .map_err(|e| format!("KVM_SET_REGS: {e}"))
    }
}

/// Interrupts a KVM_RUN that takes too long: a thread sends SIGUSR1 to the
/// vCPU thread after the timeout (and then periodically), which makes KVM_RUN
/// return EINTR.
pub(crate) struct Watchdog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

extern "C" fn on_sigusr1(_: libc::c_int) {}

impl Watchdog {
    pub(crate) fn arm(timeout: std::time::Duration) -> Self {
        static HANDLER: std::sync::Once = std::sync::Once::new();
        HANDLER.call_once(|| {
            // SAFETY: installs an async-signal-safe empty handler for SIGUSR1,
            // without SA_RESTART so KVM_RUN returns EINTR.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_sigusr1 as *const () as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
            }
        });
        // SAFETY: pthread_self has no preconditions.
        let target = unsafe { libc::pthread_self() };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(20));
                if start.elapsed() >= timeout && !s2.load(std::sync::atomic::Ordering::Relaxed) {
                    // SAFETY: `target` is the vCPU thread, alive until `stop`
                    // is set and this thread joined (in Drop).
                    unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
