//! QEMU's `-cpu MODEL[,+feature,-feature,...]` mapped onto nestemu's CPU
//! models (`cpu::cpuid`). A QEMU model name picks a vendor, signature and
//! feature list; the feature list is filtered by what nestemu implements, so
//! CPUID never advertises an unimplemented feature. Asking for one with
//! `+name` is an error (advertising it would turn a kernel's skip into a
//! failure); removing one with `-name` is accepted, since nestemu does not
//! advertise it anyway.

use crate::cpu::cpuid::{CpuModel, Feature, FeatureSet, Vendor};

use Feature as F;

/// Features of QEMU's `qemu64` (target/i386/cpu.c: PPRO features, MTRR,
/// CLFLUSH, MCA, PSE36; SSE3, CX16; LM, SYSCALL, NX; LAHF_LM, SVM).
const QEMU64: &[Feature] = &[
    F::Fpu,
    F::De,
    F::Pse,
    F::Tsc,
    F::Msr,
    F::Pae,
    F::Mce,
    F::Cx8,
    F::Apic,
    F::Sep,
    F::Mtrr,
    F::Pge,
    F::Mca,
    F::Cmov,
    F::Pat,
    F::Pse36,
    F::Clflush,
    F::Mmx,
    F::Fxsr,
    F::Sse,
    F::Sse2,
    F::Sse3,
    F::Cx16,
    F::Lm,
    F::Syscall,
    F::Nx,
    F::LahfLm,
    F::Svm,
];

/// Nehalem's additions over qemu64 (without SVM).
const NEHALEM: &[Feature] = &[F::Ssse3, F::Sse41, F::Sse42, F::Popcnt];
/// Westmere, Sandy Bridge.
const SANDYBRIDGE: &[Feature] = &[F::Pclmulqdq, F::X2apic, F::TscDeadline, F::Xsave, F::Rdtscp];
/// Ivy Bridge.
const IVYBRIDGE: &[Feature] = &[F::Fsgsbase, F::Smep, F::Erms, F::Rdrand];
/// Haswell.
const HASWELL: &[Feature] = &[F::Movbe, F::Bmi1, F::Bmi2, F::Invpcid, F::Abm, F::Pcid];
/// Broadwell.
const BROADWELL: &[Feature] = &[F::Adx, F::Rdseed, F::Smap, F::Prefetchw];
/// Skylake.
const SKYLAKE: &[Feature] = &[F::Clflushopt];
/// Skylake-Server, Cascade Lake.
const SKYLAKE_SERVER: &[Feature] = &[F::Pku, F::Pdpe1gb];
/// Ice Lake server.
const ICELAKE: &[Feature] = &[F::Umip, F::Rdpid, F::La57];

/// The feature groups in the order the models build on them: a model has
/// every group up to its newest (see [`Model`]).
#[derive(Clone, Copy)]
enum Group {
    Qemu64,
    Nehalem,
    SandyBridge,
    IvyBridge,
    Haswell,
    Broadwell,
    Skylake,
    SkylakeServer,
    Icelake,
}

/// The groups' features, indexed by [`Group`].
const GROUPS: [&[Feature]; 9] = [
    QEMU64,
    NEHALEM,
    SANDYBRIDGE,
    IVYBRIDGE,
    HASWELL,
    BROADWELL,
    SKYLAKE,
    SKYLAKE_SERVER,
    ICELAKE,
];
const _: () = assert!(GROUPS.len() == Group::Icelake as usize + 1);

/// One QEMU model: name, vendor, CPUID.1:EAX signature, and its features:
/// every group up to `through`, plus `plus` (the AMD models take Ice Lake's
/// group without Skylake-Server's).
struct Model {
    name: &'static str,
    vendor: Vendor,
    signature: u32,
    through: Group,
    plus: &'static [Feature],
}

impl Model {
    /// A model whose features are every group up to `through`.
    const fn new(name: &'static str, vendor: Vendor, signature: u32, through: Group) -> Self {
        Self {
            name,
            vendor,
            signature,
            through,
            plus: &[],
        }
    }

    /// The model with `features` beyond its groups.
    const fn plus(self, features: &'static [Feature]) -> Self {
        Self {
            plus: features,
            ..self
        }
    }

    /// Its features as listed, before the vendor's own adjustments.
    fn features(&self) -> FeatureSet {
        GROUPS[..=self.through as usize]
            .iter()
            .chain([&self.plus])
            .flat_map(|g| g.iter().copied())
            .collect()
    }
}

/// The QEMU models nestemu maps, in `-cpu help` order.
const MODELS: &[Model] = {
    use Group as G;
    use Vendor::{Amd, Intel};
    &[
        Model::new("qemu64", Amd, 0x0006_0fb1, G::Qemu64),
        Model::new("kvm64", Intel, 0x0000_0f61, G::Qemu64),
        Model::new("Nehalem", Intel, 0x0001_06a2, G::Nehalem),
        Model::new("Westmere", Intel, 0x0002_06c1, G::Nehalem),
        Model::new("SandyBridge", Intel, 0x0002_06a1, G::SandyBridge),
        Model::new("IvyBridge", Intel, 0x0003_06a9, G::IvyBridge),
        Model::new("Haswell", Intel, 0x0003_06c1, G::Haswell),
        Model::new("Broadwell", Intel, 0x0003_06d2, G::Broadwell),
        Model::new("Skylake-Client", Intel, 0x0005_06e3, G::Skylake),
        Model::new("Skylake-Server", Intel, 0x0005_0654, G::SkylakeServer),
        Model::new("Cascadelake-Server", Intel, 0x0005_0656, G::SkylakeServer),
        Model::new("Icelake-Server", Intel, 0x0006_06a6, G::Icelake),
        Model::new("EPYC", Amd, 0x0080_0f12, G::Skylake),
        Model::new("EPYC-Rome", Amd, 0x0083_0f10, G::Skylake).plus(ICELAKE),
    ]
};

/// QEMU feature names nestemu knows but does not model (so `-name` is a
/// no-op and `+name` an error), beyond the CPUID table's own names.
const KNOWN_UNMODELLED: &[&str] = &[
    "aes",
    "avx",
    "avx2",
    "f16c",
    "fma",
    "fma4",
    "xop",
    "tbm",
    "xsaveopt",
    "xsavec",
    "xsaves",
    "xgetbv1",
    "avx512f",
    "avx512dq",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "avx512ifma",
    "avx512vbmi",
    "avx512-vpopcntdq",
    "sha-ni",
    "sse4a",
    "misalignsse",
    "3dnow",
    "3dnowext",
    "perfctr-core",
    "perfctr-nb",
    "topoext",
    "npt",
    "nrip-save",
    "lbrv",
    "svm-lock",
    "tsc-scale",
    "vmcb-clean",
    "flushbyasid",
    "decodeassists",
    "pause-filter",
    "pfthreshold",
    "avic",
    "v-vmsave-vmload",
    "vgif",
    "vnmi",
    "x2avic",
    "skinit",
    "wdt",
    "ibs",
    "osvw",
    "cr8legacy",
    "extapic",
    "cmp-legacy",
    "hypervisor",
    "pdcm",
    "ds",
    "ds-cpl",
    "est",
    "tm",
    "tm2",
    "xtpr",
    "acpi",
    "ss",
    "ht",
    "pbe",
    "dtes64",
    "dca",
    "arat",
    "md-clear",
    "spec-ctrl",
    "ssbd",
    "stibp",
    "ibrs",
    "ibpb",
    "amd-ssbd",
    "amd-stibp",
    "virt-ssbd",
    "arch-capabilities",
    "mpx",
    "rtm",
    "hle",
    "pmu",
    "lmce",
    "kvmclock",
    "x2apic-api",
    "clwb",
    "pcommit",
    "sgx",
    "waitpkg",
    "movdiri",
    "movdir64b",
    "fsrm",
    "serialize",
    "tsx-ctrl",
    "taa-no",
    "mds-no",
    "pschange-mc-no",
    "rdctl-no",
    "ibrs-all",
    "skip-l1dfl-vmentry",
];

/// True for QEMU's VMX capability names (`vmx-ept`, `vmx-mbec`, ...) and
/// KVM paravirtual feature names: known to QEMU, not modelled here.
fn known_prefix(name: &str) -> bool {
    name.starts_with("vmx-") || name.starts_with("kvm")
}

/// The QEMU model names nestemu maps, for `-cpu help`.
pub fn model_names() -> Vec<&'static str> {
    let mut v = vec!["max", "host"];
    v.extend(MODELS.iter().map(|m| m.name));
    v
}

/// The model named `name` (QEMU spelling).
fn base_model(name: &str) -> Option<CpuModel> {
    match name {
        "max" | "host" => {
            let mut m = CpuModel::intel();
            m.name = name.into();
            return Some(m);
        }
        _ => {}
    }
    let q = MODELS.iter().find(|m| m.name == name)?;
    let mut m = match q.vendor {
        Vendor::Intel => CpuModel::intel(),
        Vendor::Amd => CpuModel::amd(),
    };
    m.name = q.name.into();
    m.signature = q.signature;
    m.features = q.features();
    match q.vendor {
        Vendor::Intel => {
            m.features.remove(&F::Svm);
        }
        Vendor::Amd => {
            m.features.remove(&F::TscDeadline);
        }
    }
    if name == "qemu64" || name == "kvm64" {
        m.brand = "QEMU Virtual CPU version 2.5+".into();
        m.widths.phys_bits = 40;
    }
    Some(m)
}

/// Parses QEMU's `-cpu` argument into a model; the error is one line.
pub fn parse(spec: &str) -> Result<CpuModel, String> {
    let mut parts = spec.split(',');
    let name = parts.next().unwrap_or_default();
    let mut m = base_model(name).ok_or_else(|| {
        format!(
            "-cpu {name}: unknown CPU model (nestemu maps: {})",
            model_names().join(", ")
        )
    })?;
    for p in parts {
        apply(&mut m, p)?;
    }
    Ok(m)
}

/// Applies one `-cpu` property.
fn apply(m: &mut CpuModel, p: &str) -> Result<(), String> {
    let (name, on) = if let Some(n) = p.strip_prefix('+') {
        (n, true)
    } else if let Some(n) = p.strip_prefix('-') {
        (n, false)
    } else if let Some((k, v)) = p.split_once('=') {
        match k {
            "phys-bits" => return set_phys_bits(m, v),
            "host-phys-bits-limit" => {
                let n = phys_bits_value(v)?;
                m.widths.phys_bits = m.widths.phys_bits.min(n);
                return Ok(());
            }
            "host-phys-bits" | "check" | "enforce" | "migratable" => return Ok(()),
            _ => {}
        }
        let on = match v {
            "on" | "true" | "yes" => true,
            "off" | "false" | "no" => false,
            _ => return Err(format!("-cpu property '{p}' is not supported by nestemu")),
        };
        (k, on)
    } else {
        match p {
            // QEMU's "host-phys-bits" reads the host; a deterministic machine
            // keeps the model's own MAXPHYADDR.
            "host-phys-bits" | "check" | "enforce" => return Ok(()),
            n => (n, true),
        }
    };
    set_feature(m, name, on)
}

fn phys_bits_value(v: &str) -> Result<u8, String> {
    v.parse::<u8>()
        .ok()
        .filter(|n| (32..=52).contains(n))
        .ok_or_else(|| format!("-cpu phys-bits={v}: needs a number from 32 to 52"))
}

fn set_phys_bits(m: &mut CpuModel, v: &str) -> Result<(), String> {
    m.widths.phys_bits = phys_bits_value(v)?;
    Ok(())
}

fn set_feature(m: &mut CpuModel, name: &str, on: bool) -> Result<(), String> {
    let feature = Feature::by_name(name);
    let known = feature.is_some() || KNOWN_UNMODELLED.contains(&name) || known_prefix(name);
    match feature {
        _ if !known => Err(format!("-cpu: unknown CPU feature '{name}'")),
        _ if on && !feature.is_some_and(|f| f.implemented()) => Err(format!(
            "-cpu +{name}: CPU feature '{name}' is not implemented by nestemu (advertising it would make kernels use it)"
        )),
        Some(f) => {
            if on {
                m.features.insert(f);
            } else {
                m.features.remove(&f);
            }
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_and_features() {
        let m = parse("qemu64,+x2apic,+tsc-deadline").unwrap();
        assert_eq!(m.vendor, Vendor::Amd);
        assert!(m.has(F::X2apic) && m.has(F::TscDeadline));
        assert!(!parse("qemu64").unwrap().has(F::X2apic));
        let m = parse("IvyBridge,phys-bits=36").unwrap();
        assert_eq!(m.widths.phys_bits, 36);
        assert!(m.has(F::Rdrand) && !m.has(F::Bmi1));
        assert!(parse("max,-x2apic").map(|m| !m.has(F::X2apic)).unwrap());
        assert_eq!(parse("max,+svm,-npt").is_err(), !F::Svm.implemented());
        assert!(parse("max,-vmx-mbec,-npt,-skinit").is_ok());
        assert!(parse("max,+frobnicate")
            .unwrap_err()
            .contains("unknown CPU feature"));
        assert!(parse("max,+avx512f")
            .unwrap_err()
            .contains("not implemented"));
        assert!(parse("Skylake-Server,host-phys-bits").is_ok());
        assert!(parse("pentium9").unwrap_err().contains("unknown CPU model"));
        assert!(parse("max,phys-bits=99").is_err());
    }
}
