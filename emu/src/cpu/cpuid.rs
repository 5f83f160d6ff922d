//! CPU models and the CPUID instruction (SDM Vol. 2A "CPUID"; AMD APM Vol. 3
//! appendix E).
//!
//! [`FEATURES`] is the one table of feature bits: QEMU's name for the feature
//! (so `-cpu max,+feature` spellings work), the leaf and register, the bit, and
//! whether nestemu implements it. A model lists the features of the CPU it stands
//! for; CPUID reports a feature only if the model has it *and* it is
//! implemented, so the machine never advertises what does not work.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a feature bit lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureReg {
    /// CPUID.01H:EDX.
    L1Edx,
    /// CPUID.01H:ECX.
    L1Ecx,
    /// CPUID.(EAX=07H,ECX=0):EBX.
    L7Ebx,
    /// CPUID.(EAX=07H,ECX=0):ECX.
    L7Ecx,
    /// CPUID.(EAX=07H,ECX=0):EDX.
    L7Edx,
    /// CPUID.80000001H:ECX.
    E1Ecx,
    /// CPUID.80000001H:EDX.
    E1Edx,
    /// CPUID.80000007H:EDX.
    E7Edx,
    /// CPUID.(EAX=0DH,ECX=1):EAX.
    LdEax,
}

macro_rules! features {
    ($( $id:ident = $name:literal, $reg:ident, $bit:literal, $implemented:literal; )*) => {
        /// A CPUID feature flag.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[allow(non_camel_case_types)]
        pub enum Feature { $( #[doc = $name] $id, )* }

        /// The feature table: (feature, QEMU name, register, bit, implemented).
        pub const FEATURES: &[(Feature, &str, FeatureReg, u8, bool)] = &[
            $( (Feature::$id, $name, FeatureReg::$reg, $bit, $implemented), )*
        ];
    };
}

features! {
    Fpu = "fpu", L1Edx, 0, true;
    Vme = "vme", L1Edx, 1, false;
    De = "de", L1Edx, 2, true;
    Pse = "pse", L1Edx, 3, true;
    Tsc = "tsc", L1Edx, 4, true;
    Msr = "msr", L1Edx, 5, true;
    Pae = "pae", L1Edx, 6, true;
    Mce = "mce", L1Edx, 7, false;
    Cx8 = "cx8", L1Edx, 8, true;
    Apic = "apic", L1Edx, 9, true;
    Sep = "sep", L1Edx, 11, true;
    Mtrr = "mtrr", L1Edx, 12, false;
    Pge = "pge", L1Edx, 13, true;
    Mca = "mca", L1Edx, 14, false;
    Cmov = "cmov", L1Edx, 15, true;
    Pat = "pat", L1Edx, 16, true;
    Pse36 = "pse36", L1Edx, 17, true;
    Clflush = "clflush", L1Edx, 19, true;
    Mmx = "mmx", L1Edx, 23, true;
    Fxsr = "fxsr", L1Edx, 24, true;
    Sse = "sse", L1Edx, 25, true;
    Sse2 = "sse2", L1Edx, 26, true;
    Sse3 = "pni", L1Ecx, 0, true;
    Pclmulqdq = "pclmulqdq", L1Ecx, 1, true;
    Monitor = "monitor", L1Ecx, 3, true;
    Vmx = "vmx", L1Ecx, 5, true;
    Ssse3 = "ssse3", L1Ecx, 9, true;
    Cx16 = "cx16", L1Ecx, 13, true;
    Pcid = "pcid", L1Ecx, 17, true;
    Sse41 = "sse4.1", L1Ecx, 19, true;
    Sse42 = "sse4.2", L1Ecx, 20, true;
    X2apic = "x2apic", L1Ecx, 21, true;
    Movbe = "movbe", L1Ecx, 22, true;
    Popcnt = "popcnt", L1Ecx, 23, true;
    TscDeadline = "tsc-deadline", L1Ecx, 24, true;
    Xsave = "xsave", L1Ecx, 26, true;
    Rdrand = "rdrand", L1Ecx, 30, true;
    Fsgsbase = "fsgsbase", L7Ebx, 0, true;
    TscAdjust = "tsc-adjust", L7Ebx, 1, true;
    Bmi1 = "bmi1", L7Ebx, 3, true;
    Smep = "smep", L7Ebx, 7, true;
    Bmi2 = "bmi2", L7Ebx, 8, true;
    Erms = "erms", L7Ebx, 9, true;
    Invpcid = "invpcid", L7Ebx, 10, true;
    Rdseed = "rdseed", L7Ebx, 18, true;
    Adx = "adx", L7Ebx, 19, true;
    Smap = "smap", L7Ebx, 20, true;
    Clflushopt = "clflushopt", L7Ebx, 23, true;
    Umip = "umip", L7Ecx, 2, true;
    Pku = "pku", L7Ecx, 3, true;
    La57 = "la57", L7Ecx, 16, true;
    Rdpid = "rdpid", L7Ecx, 22, true;
    LahfLm = "lahf_lm", E1Ecx, 0, true;
    Svm = "svm", E1Ecx, 2, true;
    Abm = "abm", E1Ecx, 5, true;
    Prefetchw = "3dnowprefetch", E1Ecx, 8, true;
    Syscall = "syscall", E1Edx, 11, true;
    Nx = "nx", E1Edx, 20, true;
    Pdpe1gb = "pdpe1gb", E1Edx, 26, true;
    Rdtscp = "rdtscp", E1Edx, 27, true;
    Lm = "lm", E1Edx, 29, true;
    InvTsc = "invtsc", E7Edx, 8, true;
    Xsaveopt = "xsaveopt", LdEax, 0, true;
    Xsavec = "xsavec", LdEax, 1, true;
    Xgetbv1 = "xgetbv1", LdEax, 2, true;
    Xsaves = "xsaves", LdEax, 3, true;
}

impl Feature {
    /// Looks a feature up by its QEMU name.
    pub fn by_name(name: &str) -> Option<Feature> {
        FEATURES
            .iter()
            .find(|f| f.1 == name || (name == "sse3" && f.1 == "pni"))
            .map(|f| f.0)
    }
    /// The table row: [`FEATURES`] lists the features in the order the
    /// enum declares them, so a feature's discriminant is its row.
    #[inline]
    pub fn row(self) -> &'static (Feature, &'static str, FeatureReg, u8, bool) {
        &FEATURES[self as usize]
    }
    /// True if nestemu implements the feature.
    pub fn implemented(self) -> bool {
        self.row().4
    }
}

/// A set of [`Feature`]s: one bit per feature, by discriminant. It
/// serializes as the list of its features in table order, as the ordered set
/// it replaced did, so model files and snapshots read the same.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FeatureSet(u128);

// Every feature has a bit.
const _: () = assert!(FEATURES.len() <= 128);

impl FeatureSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self(0)
    }

    /// True if `f` is in the set.
    #[inline]
    pub fn contains(&self, f: &Feature) -> bool {
        self.0 & (1u128 << *f as u32) != 0
    }

    /// Adds `f`; true if it was not in the set.
    pub fn insert(&mut self, f: Feature) -> bool {
        let had = self.contains(&f);
        self.0 |= 1u128 << f as u32;
        !had
    }

    /// Removes `f`; true if it was in the set.
    pub fn remove(&mut self, f: &Feature) -> bool {
        let had = self.contains(f);
        self.0 &= !(1u128 << *f as u32);
        had
    }

    /// The features in the set, in table order.
    pub fn iter(&self) -> impl Iterator<Item = Feature> + '_ {
        FEATURES
            .iter()
            .map(|row| row.0)
            .filter(|f| self.contains(f))
    }

    /// The number of features in the set.
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// True if the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Feature> for FeatureSet {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> Self {
        let mut s = Self::new();
        s.extend(iter);
        s
    }
}

impl Extend<Feature> for FeatureSet {
    fn extend<I: IntoIterator<Item = Feature>>(&mut self, iter: I) {
        for f in iter {
            self.insert(f);
        }
    }
}

impl std::fmt::Debug for FeatureSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for FeatureSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for FeatureSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Feature>::deserialize(d)?.into_iter().collect())
    }
}

/// CPU vendor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vendor {
    /// GenuineIntel.
    Intel,
    /// AuthenticAMD.
    Amd,
}

/// A CPU model: identity, address widths and the feature set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuModel {
    /// The preset name.
    pub name: String,
    /// Vendor.
    pub vendor: Vendor,
    /// Family, model, stepping as CPUID.01H:EAX encodes them.
    pub signature: u32,
    /// Brand string, at most 47 bytes.
    pub brand: String,
    /// Address widths.
    pub widths: mmu::AddressWidths,
    /// Features the model has (implemented or not).
    pub features: FeatureSet,
    /// The VMX capabilities, if the model has VT-x and overrides the
    /// binding's own preset (`virt::vmx::caps`). Used as given: a preset that
    /// advertises a control whose non-root behaviour nestemu lacks is for
    /// exercising VM-entry checks, not for running hypervisors.
    #[serde(default)]
    pub vmx: Option<vmx_model::VmxFeatures>,
}

const BASE_FEATURES: &[Feature] = &[
    Feature::Fpu,
    Feature::De,
    Feature::Pse,
    Feature::Tsc,
    Feature::Msr,
    Feature::Pae,
    Feature::Cx8,
    Feature::Apic,
    Feature::Sep,
    Feature::Pge,
    Feature::Cmov,
    Feature::Pat,
    Feature::Pse36,
    Feature::Clflush,
    Feature::Mmx,
    Feature::Fxsr,
    Feature::Sse,
    Feature::Sse2,
    Feature::Sse3,
    Feature::Pclmulqdq,
    Feature::Ssse3,
    Feature::Cx16,
    Feature::Sse41,
    Feature::Sse42,
    Feature::Movbe,
    Feature::Popcnt,
    Feature::Rdrand,
    Feature::Fsgsbase,
    Feature::TscAdjust,
    Feature::Bmi1,
    Feature::Bmi2,
    Feature::Erms,
    Feature::Rdseed,
    Feature::Adx,
    Feature::Clflushopt,
    Feature::Rdpid,
    Feature::LahfLm,
    Feature::Abm,
    Feature::Prefetchw,
    Feature::Syscall,
    Feature::Nx,
    Feature::Pdpe1gb,
    Feature::Rdtscp,
    Feature::Lm,
    Feature::InvTsc,
    Feature::Smep,
    Feature::Smap,
    Feature::Pcid,
    Feature::Invpcid,
    Feature::Pku,
    Feature::Umip,
    // Skylake-SP and Zen 2 both have the XSAVE feature set with all four
    // extensions.
    Feature::Xsave,
    Feature::Xsaveopt,
    Feature::Xsavec,
    Feature::Xgetbv1,
    Feature::Xsaves,
];

impl CpuModel {
    /// The Intel-like preset: VT-x.
    pub fn intel() -> Self {
        let mut features: FeatureSet = BASE_FEATURES.iter().copied().collect();
        features.insert(Feature::Vmx);
        features.insert(Feature::Monitor);
        features.insert(Feature::X2apic);
        features.insert(Feature::TscDeadline);
        features.insert(Feature::La57);
        Self {
            name: "intel".into(),
            vendor: Vendor::Intel,
            // Family 6, model 0x55 (Skylake server), stepping 4.
            signature: 0x0005_0654,
            brand: "nestemu Intel-compatible CPU".into(),
            widths: mmu::AddressWidths {
                phys_bits: 46,
                linear_bits: 57,
            },
            features,
            vmx: None,
        }
    }

    /// The AMD-like preset: AMD-V.
    pub fn amd() -> Self {
        let mut features: FeatureSet = BASE_FEATURES.iter().copied().collect();
        features.insert(Feature::Svm);
        features.insert(Feature::X2apic);
        // Zen 2 has MONITOR/MWAIT (CPUID Fn0000_0001_ECX[3]).
        features.insert(Feature::Monitor);
        Self {
            name: "amd".into(),
            vendor: Vendor::Amd,
            // Family 17h (0xF + 8), model 0x31 (Zen 2), stepping 0.
            signature: 0x0083_0f10,
            brand: "nestemu AMD-compatible CPU".into(),
            widths: mmu::AddressWidths {
                phys_bits: 48,
                linear_bits: 48,
            },
            features,
            vmx: None,
        }
    }

    /// A preset by name.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "intel" | "max" | "host" | "qemu64" => Some(Self::intel()),
            "amd" => Some(Self::amd()),
            _ => None,
        }
    }

    /// True if CPUID reports `f`: the model has it and it is implemented.
    /// Asked on every paging-context rebuild (world switches included), so
    /// it is a bit test and a table read.
    #[inline]
    pub fn has(&self, f: Feature) -> bool {
        self.features.contains(&f) && f.implemented()
    }

    fn reg_bits(&self, reg: FeatureReg) -> u32 {
        FEATURES
            .iter()
            .filter(|row| row.2 == reg && self.has(row.0))
            .fold(0, |acc, row| acc | 1 << row.3)
    }
}

/// Dynamic inputs to CPUID: bits that reflect current control-register state.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuidDynamic {
    /// CR4.OSXSAVE (reported in CPUID.01H:ECX.OSXSAVE[27]).
    pub osxsave: bool,
    /// CR4.PKE (reported in CPUID.07H:ECX.OSPKE[4]).
    pub ospke: bool,
    /// IA32_APIC_BASE.EN (clears CPUID.01H:EDX.APIC[9] when 0).
    pub apic_enabled: bool,
    /// The initial APIC ID.
    pub apic_id: u32,
    /// The processor topology (leaves 01H, 0BH, 80000008H).
    pub topology: crate::smp::topology::Topology,
}

fn vendor_regs(v: Vendor) -> (u32, u32, u32) {
    let s: &[u8; 12] = match v {
        Vendor::Intel => b"GenuineIntel",
        Vendor::Amd => b"AuthenticAMD",
    };
    let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    (w(0), w(4), w(8))
}

/// Executes CPUID for `leaf`/`subleaf`: (EAX, EBX, ECX, EDX).
pub fn cpuid(model: &CpuModel, dynamic: CpuidDynamic, leaf: u32, subleaf: u32) -> [u32; 4] {
    const MAX_BASIC: u32 = 0xd;
    const MAX_EXT: u32 = 0x8000_0008;
    let (vb, vd, vc) = vendor_regs(model.vendor);
    match leaf {
        0 => [MAX_BASIC, vb, vc, vd],
        1 => {
            let mut ecx = model.reg_bits(FeatureReg::L1Ecx);
            let mut edx = model.reg_bits(FeatureReg::L1Edx);
            if dynamic.osxsave {
                ecx |= 1 << 27;
            }
            if !dynamic.apic_enabled {
                edx &= !(1 << 9);
            }
            // EBX: CLFLUSH line size 8 (x8 = 64 bytes), the addressable
            // logical-processor IDs per package in 23:16 (with HTT set when
            // above 1, SDM Vol. 2A CPUID), the initial APIC ID in 31:24.
            let t = &dynamic.topology;
            let ids = 1u32 << (t.smt_bits() + t.core_bits());
            if ids > 1 {
                edx |= 1 << 28;
            }
            let ebx = (8 << 8) | (ids.min(255) << 16) | (dynamic.apic_id << 24);
            [model.signature, ebx, ecx, edx]
        }
        7 if subleaf == 0 => {
            let mut ecx = model.reg_bits(FeatureReg::L7Ecx);
            if dynamic.ospke {
                ecx |= 1 << 4;
            }
            [
                0,
                model.reg_bits(FeatureReg::L7Ebx),
                ecx,
                model.reg_bits(FeatureReg::L7Edx),
            ]
        }
        0xd => xsave_leaf(model, subleaf),
        // Extended topology (SDM Vol. 3A 9.9.1, Vol. 2A CPUID leaf 0BH): the
        // SMT level (threads per core), then the core level (logical
        // processors per package); EAX the APIC ID shift to the next level,
        // EDX the x2APIC ID.
        0xb if model.has(Feature::X2apic) => {
            let t = &dynamic.topology;
            let (eax, ebx, ecx) = match subleaf {
                0 => (t.smt_bits(), t.threads, 0x100),
                1 => (t.smt_bits() + t.core_bits(), t.per_socket(), 0x201),
                n => (0, 0, n & 0xff),
            };
            [eax, ebx, ecx, dynamic.apic_id]
        }
        2..=MAX_BASIC => [0, 0, if leaf == 0xb { subleaf & 0xff } else { 0 }, 0],
        0x8000_0000 => match model.vendor {
            Vendor::Intel => [MAX_EXT, 0, 0, 0],
            Vendor::Amd => [MAX_EXT, vb, vc, vd],
        },
        0x8000_0001 => {
            let sig = if model.vendor == Vendor::Amd {
                model.signature
            } else {
                0
            };
            [
                sig,
                0,
                model.reg_bits(FeatureReg::E1Ecx),
                model.reg_bits(FeatureReg::E1Edx),
            ]
        }
        0x8000_0002..=0x8000_0004 => {
            let mut b = [0u8; 48];
            let n = model.brand.len().min(47);
            b[..n].copy_from_slice(&model.brand.as_bytes()[..n]);
            let off = (leaf - 0x8000_0002) as usize * 16;
            let w = |i: usize| u32::from_le_bytes(b[off + i..off + i + 4].try_into().unwrap());
            [w(0), w(4), w(8), w(12)]
        }
        0x8000_0007 => [0, 0, 0, model.reg_bits(FeatureReg::E7Edx)],
        // ECX on AMD: logical processors per package minus one (NC, 7:0)
        // and the APIC ID bits that number them (ApicIdSize, 15:12; APM
        // Vol. 3 E.4.7, zero when legacy NC decides).
        0x8000_0008 => {
            let t = &dynamic.topology;
            let ecx = if model.vendor == Vendor::Amd && t.per_socket() > 1 {
                (t.per_socket() - 1) | (t.smt_bits() + t.core_bits()) << 12
            } else {
                0
            };
            [
                model.widths.phys_bits as u32 | (model.widths.linear_bits as u32) << 8,
                0,
                ecx,
                0,
            ]
        }
        0x8000_0005..=MAX_EXT => [0; 4],
        // Intel: leaves above the maximum return the highest basic leaf's data
        // (SDM Vol. 2A CPUID, "If a value entered for CPUID.EAX is higher than the
        // maximum input value for basic or extended function ... the data for the
        // highest basic information leaf is returned"). AMD returns zeros.
        _ => match model.vendor {
            Vendor::Intel => cpuid(model, dynamic, MAX_BASIC, subleaf),
            Vendor::Amd => [0; 4],
        },
    }
}

/// CPUID leaf 0DH, the XSAVE feature set (SDM Vol. 2A CPUID, "Processor
/// Extended State Enumeration"; Vol. 1 13.2). Sub-leaf 0: the XCR0 bits
/// supported (EDX:EAX), the area size for XCR0 as it is (EBX) and for every
/// supported component (ECX); sub-leaf 1: the extensions (EAX), the compacted
/// size for XCR0 | IA32_XSS (EBX), the IA32_XSS bits supported (EDX:ECX);
/// sub-leaves of components nestemu lacks: zeros.
fn xsave_leaf(model: &CpuModel, subleaf: u32) -> [u32; 4] {
    use crate::interp::xsave::{AREA_SIZE, SUPPORTED_XCR0, SUPPORTED_XSS};
    if !model.has(Feature::Xsave) {
        return [0; 4];
    }
    // Every subset of x87 | SSE takes the legacy region and the header, so
    // the sizes do not depend on XCR0 or IA32_XSS.
    match subleaf {
        0 => [
            SUPPORTED_XCR0 as u32,
            AREA_SIZE,
            AREA_SIZE,
            (SUPPORTED_XCR0 >> 32) as u32,
        ],
        1 => {
            let xss = if model.has(Feature::Xsaves) {
                SUPPORTED_XSS
            } else {
                0
            };
            [
                model.reg_bits(FeatureReg::LdEax),
                AREA_SIZE,
                xss as u32,
                (xss >> 32) as u32,
            ]
        }
        _ => [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_and_names() {
        let m = CpuModel::intel();
        let r = cpuid(&m, CpuidDynamic::default(), 0, 0);
        let mut s = Vec::new();
        for x in [r[1], r[3], r[2]] {
            s.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(&s, b"GenuineIntel");
        assert_eq!(Feature::by_name("sse4.2"), Some(Feature::Sse42));
        assert_eq!(Feature::by_name("sse3"), Some(Feature::Sse3));
    }

    #[test]
    fn only_implemented_features_are_advertised() {
        let m = CpuModel::intel();
        for &(f, name, _, _, implemented) in FEATURES {
            if m.features.contains(&f) && !implemented {
                assert!(!m.has(f), "{name} advertised but not implemented");
            }
        }
        let r = cpuid(&m, CpuidDynamic::default(), 1, 0);
        // CMOV is implemented.
        assert_ne!(r[3] & (1 << 15), 0);
    }

    #[test]
    fn table_has_no_duplicate_bits() {
        for (i, a) in FEATURES.iter().enumerate() {
            for b in &FEATURES[i + 1..] {
                assert!(
                    !(a.2 == b.2 && a.3 == b.3),
                    "{} and {} share a bit",
                    a.1,
                    b.1
                );
                assert_ne!(a.1, b.1);
            }
        }
    }

    #[test]
    fn each_feature_is_its_own_row() {
        for (i, row) in FEATURES.iter().enumerate() {
            assert_eq!(row.0 as usize, i);
            assert_eq!(row.0.row().1, row.1);
        }
    }

    /// The set serializes as the ordered set it replaced did (model files and
    /// snapshots keep their form), and behaves as one.
    #[test]
    fn feature_set_is_an_ordered_set() {
        use std::collections::BTreeSet;
        for m in [CpuModel::intel(), CpuModel::amd()] {
            let ordered: BTreeSet<Feature> = m.features.iter().collect();
            assert_eq!(ordered.len(), m.features.len());
            assert_eq!(
                serde_json::to_string(&m.features).unwrap(),
                serde_json::to_string(&ordered).unwrap()
            );
            let back: FeatureSet =
                serde_json::from_str(&serde_json::to_string(&ordered).unwrap()).unwrap();
            assert_eq!(back, m.features);
            for row in FEATURES {
                assert_eq!(m.features.contains(&row.0), ordered.contains(&row.0));
            }
        }
        let mut s = FeatureSet::new();
        assert!(s.is_empty());
        assert!(s.insert(Feature::Xsaves));
        assert!(!s.insert(Feature::Xsaves));
        assert!(s.insert(Feature::Fpu));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [Feature::Fpu, Feature::Xsaves]
        );
        assert!(s.remove(&Feature::Xsaves));
        assert!(!s.remove(&Feature::Xsaves));
        assert_eq!(s.len(), 1);
    }
}
