//! Model-specific register indices: the one table of them (SDM Vol. 4, "Model-
//! specific registers", chapter 2; AMD APM Vol. 2 appendix A).
//!
//! Which MSRs a CPU model implements, and their behaviour, live with the model
//! (`emu`'s MSR file, `vmx-model`'s capability MSRs); this table gives names to
//! indices so every crate, report and trace spells them the same.

macro_rules! msrs {
    ($( $name:ident = $index:literal; )*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`, MSR ", stringify!($index), ".")]
            pub const $name: u32 = $index;
        )*

        /// The architectural name of MSR `index`, if it is in the table.
        pub const fn name(index: u32) -> Option<&'static str> {
            match index {
                $( $index => Some(stringify!($name)), )*
                _ => None,
            }
        }

        /// Every MSR of the table, in index order of declaration.
        pub const ALL: &[(u32, &str)] = &[ $( ($index, stringify!($name)), )* ];
    };
}

msrs! {
    IA32_P5_MC_ADDR = 0x0;
    IA32_P5_MC_TYPE = 0x1;
    IA32_TIME_STAMP_COUNTER = 0x10;
    IA32_PLATFORM_ID = 0x17;
    IA32_APIC_BASE = 0x1b;
    IA32_FEATURE_CONTROL = 0x3a;
    IA32_TSC_ADJUST = 0x3b;
    IA32_SPEC_CTRL = 0x48;
    IA32_PRED_CMD = 0x49;
    IA32_BIOS_SIGN_ID = 0x8b;
    IA32_MTRRCAP = 0xfe;
    IA32_SYSENTER_CS = 0x174;
    IA32_SYSENTER_ESP = 0x175;
    IA32_SYSENTER_EIP = 0x176;
    IA32_MCG_CAP = 0x179;
    IA32_MCG_STATUS = 0x17a;
    IA32_MISC_ENABLE = 0x1a0;
    IA32_DEBUGCTL = 0x1d9;
    IA32_MTRR_PHYSBASE0 = 0x200;
    IA32_MTRR_FIX64K_00000 = 0x250;
    IA32_MTRR_FIX16K_80000 = 0x258;
    IA32_MTRR_FIX16K_A0000 = 0x259;
    IA32_MTRR_FIX4K_C0000 = 0x268;
    IA32_MTRR_FIX4K_F8000 = 0x26f;
    IA32_PAT = 0x277;
    IA32_MTRR_DEF_TYPE = 0x2ff;
    IA32_PERF_GLOBAL_CTRL = 0x38f;
    IA32_VMX_BASIC = 0x480;
    IA32_VMX_PINBASED_CTLS = 0x481;
    IA32_VMX_PROCBASED_CTLS = 0x482;
    IA32_VMX_EXIT_CTLS = 0x483;
    IA32_VMX_ENTRY_CTLS = 0x484;
    IA32_VMX_MISC = 0x485;
    IA32_VMX_CR0_FIXED0 = 0x486;
    IA32_VMX_CR0_FIXED1 = 0x487;
    IA32_VMX_CR4_FIXED0 = 0x488;
    IA32_VMX_CR4_FIXED1 = 0x489;
    IA32_VMX_VMCS_ENUM = 0x48a;
    IA32_VMX_PROCBASED_CTLS2 = 0x48b;
    IA32_VMX_EPT_VPID_CAP = 0x48c;
    IA32_VMX_TRUE_PINBASED_CTLS = 0x48d;
    IA32_VMX_TRUE_PROCBASED_CTLS = 0x48e;
    IA32_VMX_TRUE_EXIT_CTLS = 0x48f;
    IA32_VMX_TRUE_ENTRY_CTLS = 0x490;
    IA32_VMX_VMFUNC = 0x491;
    IA32_VMX_PROCBASED_CTLS3 = 0x492;
    IA32_VMX_EXIT_CTLS2 = 0x493;
    IA32_TSC_DEADLINE = 0x6e0;
    IA32_PKRS = 0x6e1;
    IA32_X2APIC_FIRST = 0x800;
    IA32_X2APIC_LAST = 0x8ff;
    IA32_XSS = 0xda0;
    IA32_EFER = 0xc000_0080;
    IA32_STAR = 0xc000_0081;
    IA32_LSTAR = 0xc000_0082;
    IA32_CSTAR = 0xc000_0083;
    IA32_FMASK = 0xc000_0084;
    IA32_FS_BASE = 0xc000_0100;
    IA32_GS_BASE = 0xc000_0101;
    IA32_KERNEL_GS_BASE = 0xc000_0102;
    IA32_TSC_AUX = 0xc000_0103;
    AMD_SYSCFG = 0xc001_0010;
    AMD_HWCR = 0xc001_0015;
    AMD_VM_CR = 0xc001_0114;
    AMD_IGNNE = 0xc001_0115;
    AMD_SMM_CTL = 0xc001_0116;
    AMD_VM_HSAVE_PA = 0xc001_0117;
    AMD_SVM_KEY = 0xc001_0118;
    AMD_TSC_RATIO = 0xc000_0104;
}

#[cfg(test)]
mod tests {
    #[test]
    fn indices_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for (idx, name) in super::ALL {
            assert!(seen.insert(*idx), "{name} duplicates index {idx:#x}");
        }
        assert_eq!(super::name(0xc000_0080), Some("IA32_EFER"));
    }
}
