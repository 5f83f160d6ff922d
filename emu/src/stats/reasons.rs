//! Counts by VM-exit reason name ([`ReasonCounts`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Counts by the manual's name of a VM-exit reason, in the order of the
/// names: reads and serializes as a map from name to count.
///
/// The names counted come from the exit-reason tables as `&'static str`,
/// and a machine sees few of them, so a count is found by the address of
/// its name in a short list, without comparing strings (a name read from a
/// snapshot is found by its text once, and then by address).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ReasonCounts(Vec<(Cow<'static, str>, u64)>);

impl ReasonCounts {
    /// Counts one exit for `reason`.
    #[inline]
    pub fn bump(&mut self, reason: &'static str) {
        for (name, n) in &mut self.0 {
            // The same address and length: the same text.
            if name.as_ptr() == reason.as_ptr() && name.len() == reason.len() {
                *n += 1;
                return;
            }
        }
        self.add_by_name(Cow::Borrowed(reason), 1);
    }

    /// Adds `n` to the count of `reason`, found by its text; the entry's
    /// name becomes `reason` (so a static name is then found by address).
    #[cold]
    fn add_by_name(&mut self, reason: Cow<'static, str>, n: u64) {
        match self
            .0
            .binary_search_by(|(k, _)| k.as_ref().cmp(reason.as_ref()))
        {
            Ok(i) => {
                self.0[i].1 += n;
                if let Cow::Borrowed(_) = reason {
                    self.0[i].0 = reason;
                }
            }
            Err(i) => self.0.insert(i, (reason, n)),
        }
    }

    /// Adds the counts of `o`.
    pub fn merge(&mut self, o: &ReasonCounts) {
        for (name, n) in &o.0 {
            self.add_by_name(name.clone(), *n);
        }
    }

    /// The count of `reason`, if it has one.
    pub fn get(&self, reason: &str) -> Option<&u64> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(reason))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// (name, count) pairs in the order of the names.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &u64)> {
        self.0.iter().map(|(k, n)| (k.as_ref(), n))
    }

    /// The names counted, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// The counts, in the order of the names.
    pub fn values(&self) -> impl Iterator<Item = &u64> {
        self.iter().map(|(_, n)| n)
    }

    /// True if `reason` has a count.
    pub fn contains_key(&self, reason: &str) -> bool {
        self.get(reason).is_some()
    }

    /// How many names have counts.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True before the first exit.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The counts as a map.
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        self.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }
}

impl core::ops::Index<&str> for ReasonCounts {
    type Output = u64;

    /// The count of `reason`; panics if it has none, as a map would.
    fn index(&self, reason: &str) -> &u64 {
        self.get(reason)
            .unwrap_or_else(|| panic!("no exits counted for '{reason}'"))
    }
}

impl core::fmt::Debug for ReasonCounts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for ReasonCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for ReasonCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(d)?;
        Ok(Self(
            map.into_iter().map(|(k, n)| (Cow::Owned(k), n)).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_and_serialize_as_the_map() {
        let mut r = ReasonCounts::default();
        let mut map = BTreeMap::<String, u64>::new();
        for name in ["VMCALL", "CPUID", "VMCALL", "HLT", "CPUID", "VMCALL"] {
            r.bump(name);
            *map.entry(name.to_string()).or_default() += 1;
        }
        assert_eq!(r.to_map(), map);
        assert_eq!(r["VMCALL"], 3);
        assert_eq!(r.get("INVD"), None);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["CPUID", "HLT", "VMCALL"]);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, serde_json::to_string(&map).unwrap());
        // Read back, the names are owned: counting finds them by text.
        let mut back: ReasonCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        back.bump("HLT");
        back.bump("HLT");
        back.bump("INVD");
        assert_eq!(back["HLT"], 3);
        assert_eq!(back.len(), 4);
        let mut sum = ReasonCounts::default();
        sum.merge(&back);
        sum.merge(&r);
        assert_eq!(sum["VMCALL"], 6);
        assert_eq!(sum["INVD"], 1);
        assert_eq!(format!("{sum:?}"), format!("{:?}", sum.to_map()));
    }

    #[test]
    fn equal_names_elsewhere_in_memory_count_together() {
        let mut r = ReasonCounts::default();
        let leaked: &'static str = Box::leak(String::from("CPUID").into_boxed_str());
        r.bump("CPUID");
        r.bump(leaked);
        assert_eq!(r["CPUID"], 2);
        assert_eq!(r.len(), 1);
    }
}
