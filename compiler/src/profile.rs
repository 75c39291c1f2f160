//! Syscall frequency profiles: how often each syscall is called, to arrange the search tree
//! so that frequent calls take the fewest instructions. Profiles are read from traces by
//! [`crate::import::trace`] (which also holds the built-in one).

use std::collections::BTreeMap;

/// Relative call frequencies by syscall name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// What it was read from, for the manifest.
    pub source: String,
    counts: BTreeMap<String, f64>,
}

impl Profile {
    /// The weight of every number, so that calls the profile never saw still get a balanced
    /// tree among themselves.
    pub const EPSILON: f64 = 1e-12;

    /// A profile where every syscall weighs the same.
    pub fn uniform() -> Profile {
        Profile { source: "uniform".into(), counts: BTreeMap::new() }
    }

    /// The fraction of calls that are `name` (0 if unseen).
    pub fn weight(&self, name: &str) -> f64 {
        self.counts.get(name).copied().unwrap_or(0.0)
    }

    /// Builds a profile from counts; weights are normalised to sum to 1.
    pub fn from_counts(source: &str, counts: impl IntoIterator<Item = (String, f64)>) -> Profile {
        let mut map: BTreeMap<String, f64> = BTreeMap::new();
        for (name, c) in counts {
            *map.entry(name).or_default() += c;
        }
        let total: f64 = map.values().sum();
        if total > 0.0 {
            map.values_mut().for_each(|v| *v /= total);
        }
        Profile { source: source.to_string(), counts: map }
    }

    /// Every syscall's weight, by name.
    pub fn weights(&self) -> impl Iterator<Item = (String, f64)> + '_ {
        self.counts.iter().map(|(n, w)| (n.clone(), *w))
    }
}
