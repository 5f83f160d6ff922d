//! The VMX state of a logical processor (SDM Vol. 3C 24.11, "VMX Instructions" in
//! the introduction, and 25.11.1, "Software Use of Virtual-Machine Control
//! Structures"): whether it is in VMX operation, the VMXON pointer, the
//! current-VMCS pointer and the current VMCS's data, cached as hardware caches it.
//!
//! This model caches exactly one VMCS, the current one. Making another VMCS
//! current (VMPTRLD) writes the previous one back to its region, which the SDM
//! permits ("the processor may write back the data of an active VMCS at any
//! time"); VMCLEAR writes back and marks the region clear. Everything here is
//! serde, so a snapshot captures VMX operation completely.

use super::region::{LaunchState, Region};
use super::Vmcs;
use crate::mem::{Access, PhysMem};
use serde::{Deserialize, Serialize};

/// The value of an invalid VMCS pointer.
pub const INVALID_POINTER: u64 = u64::MAX;

/// The current VMCS: its pointer, cached data and launch state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentVmcs {
    /// The current-VMCS pointer (4-KByte aligned physical address).
    pub ptr: u64,
    /// The revision identifier read by VMPTRLD.
    pub revision_id: u32,
    /// The shadow-VMCS indicator read by VMPTRLD.
    pub shadow: bool,
    /// The launch state.
    pub launch: LaunchState,
    /// The cached field values.
    pub vmcs: Vmcs,
}

impl CurrentVmcs {
    /// Writes the cached data back to the VMCS region.
    pub fn flush(&self, mem: &mut dyn PhysMem) {
        self.flush_as(mem, self.launch);
    }

    fn flush_as(&self, mem: &mut dyn PhysMem, launch: LaunchState) {
        Region {
            revision_id: self.revision_id,
            shadow: self.shadow,
            launch,
            vmcs: self.vmcs.clone(),
        }
        .store(mem, self.ptr, Access::Vmcs);
    }
}

/// The VMX state of one logical processor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmxState {
    /// `Some(VMXON pointer)` while in VMX operation.
    pub vmxon_ptr: Option<u64>,
    /// True in VMX non-root operation (between a VM entry and the next VM exit).
    pub non_root: bool,
    /// The current VMCS, if the current-VMCS pointer is valid.
    pub current: Option<CurrentVmcs>,
    /// The inputs of the last guest segment-register checks that passed, so
    /// an entry with the same inputs skips re-running them (not state: a
    /// snapshot leaves it out and comparisons ignore it).
    #[serde(skip)]
    pub seg_checks: crate::entry::SegCheckMemo,
}

impl VmxState {
    /// True in VMX operation (root or non-root).
    pub fn in_vmx_operation(&self) -> bool {
        self.vmxon_ptr.is_some()
    }

    /// True in VMX root operation.
    pub fn in_root(&self) -> bool {
        self.vmxon_ptr.is_some() && !self.non_root
    }

    /// The current-VMCS pointer (FFFFFFFF_FFFFFFFFH if invalid), as VMPTRST stores it.
    pub fn current_ptr(&self) -> u64 {
        self.current.as_ref().map_or(INVALID_POINTER, |c| c.ptr)
    }

    /// The current VMCS's data.
    pub fn vmcs(&self) -> Option<&Vmcs> {
        self.current.as_ref().map(|c| &c.vmcs)
    }

    /// The current VMCS's data, mutably.
    pub fn vmcs_mut(&mut self) -> Option<&mut Vmcs> {
        self.current.as_mut().map(|c| &mut c.vmcs)
    }

    /// INIT signals are blocked in VMX root operation (SDM Vol. 3C 24.8,
    /// "Restrictions on VMX Operation"); in non-root operation they cause VM exits.
    pub fn init_blocked(&self) -> bool {
        self.in_root()
    }

    /// Makes the VMCS at `ptr` current, writing back the previous current VMCS.
    pub(crate) fn make_current(&mut self, mem: &mut dyn PhysMem, ptr: u64) {
        if self.current_ptr() == ptr {
            return;
        }
        if let Some(old) = self.current.take() {
            old.flush(mem);
        }
        let r = Region::load(mem, ptr, Access::Vmcs);
        self.current = Some(CurrentVmcs {
            ptr,
            revision_id: r.revision_id,
            shadow: r.shadow,
            launch: r.launch,
            vmcs: r.vmcs,
        });
    }

    /// VMCLEAR's effect on memory and on the cache (SDM Vol. 3C 31.3, "VMCLEAR"):
    /// the data is in memory, the launch state is clear, and if `ptr` was current
    /// the current-VMCS pointer becomes invalid.
    pub(crate) fn clear(&mut self, mem: &mut dyn PhysMem, ptr: u64) {
        match self.current.take() {
            Some(cur) if cur.ptr == ptr => cur.flush_as(mem, LaunchState::Clear),
            other => {
                self.current = other;
                Region::store_launch_state(mem, ptr, LaunchState::Clear);
            }
        }
    }

    /// VMXOFF: the current VMCS is written back; a launched one is marked so that a
    /// later VMRESUME of it fails with error 6.
    pub(crate) fn leave(&mut self, mem: &mut dyn PhysMem) {
        if let Some(cur) = self.current.take() {
            let launch = match cur.launch {
                LaunchState::Clear => LaunchState::Clear,
                _ => LaunchState::LaunchedBeforeVmxoff,
            };
            cur.flush_as(mem, launch);
        }
        self.vmxon_ptr = None;
        self.non_root = false;
    }
}
