//! Frequency profiles: how often each syscall is called, and with which argument values, to
//! arrange the search trees so that frequent calls take the fewest instructions. Profiles
//! are read from traces by [`crate::import::trace`] (which also holds the built-in one).

use std::collections::BTreeMap;

use crate::abi::AbiTable;

/// An argument of a syscall as a profile names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArgKey {
    /// `argN`: register N (`seccomp_data.args[N]`).
    Register(u8),
    /// A parameter by its name in the kernel's signature (`cmd`).
    Param(String),
    /// The N-th parameter (0-based), as strace prints them.
    Position(u8),
}

impl ArgKey {
    /// The key a profile line writes: `argN` or a parameter name.
    pub fn parse(text: &str) -> Option<ArgKey> {
        if let Some(n) = text.strip_prefix("arg").and_then(|n| n.parse::<u8>().ok()) {
            return (n < 6).then_some(ArgKey::Register(n));
        }
        let ok = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        ok.then(|| ArgKey::Param(text.to_string()))
    }

    /// The registers of the argument on an architecture: `(low half, high half)`, where the
    /// high half is `None` when it is the upper word of the same register.
    pub fn registers(&self, table: &AbiTable, syscall: &str) -> Option<(u8, Option<u8>)> {
        let sys = table.syscall(syscall)?;
        match self {
            ArgKey::Register(n) => Some((*n, None)),
            ArgKey::Param(name) => sys.params.iter().find(|p| p.name == name).map(|p| (p.reg, p.reg_hi)),
            ArgKey::Position(i) => sys.params.get(usize::from(*i)).map(|p| (p.reg, p.reg_hi)),
        }
    }
}

/// An argument value as a profile gives it: a number, or named constants ORed together (as
/// strace prints flags), resolved on each architecture.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArgValue {
    /// Constants ORed in (`O_RDONLY|O_CLOEXEC`).
    pub names: Vec<String>,
    /// Numbers ORed in.
    pub number: u64,
}

impl ArgValue {
    /// A plain number.
    pub fn number(v: u64) -> ArgValue {
        ArgValue { names: Vec::new(), number: v }
    }

    /// `123`, `-1`, `0x5401`, `0644` (octal, as strace prints modes), `NULL`, a constant, or
    /// several of them joined by `|`.
    pub fn parse(text: &str) -> Option<ArgValue> {
        let mut v = ArgValue::number(0);
        for part in text.split('|').map(str::trim) {
            if part == "NULL" {
                continue;
            }
            match parse_number(part) {
                Some(n) => v.number |= n,
                None if !part.is_empty()
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !part.starts_with(|c: char| c.is_ascii_digit()) =>
                {
                    v.names.push(part.to_string())
                }
                None => return None,
            }
        }
        v.names.sort();
        v.names.dedup();
        Some(v)
    }

    /// Its value on an architecture (`None` when a constant is unknown there).
    pub fn resolve(&self, table: &AbiTable) -> Option<u64> {
        self.names.iter().try_fold(self.number, |acc, n| table.constant(n).map(|c| acc | c))
    }
}

fn parse_number(text: &str) -> Option<u64> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let v = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<u64>().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// The argument values a profile records for one syscall: `(argument, value, fraction of the
/// syscall's calls)`.
pub type ArgWeights = [(ArgKey, ArgValue, f64)];

/// Relative call frequencies by syscall name, and argument frequencies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// What it was read from, for the manifest.
    pub source: String,
    counts: BTreeMap<String, f64>,
    args: BTreeMap<String, Vec<(ArgKey, ArgValue, f64)>>,
}

impl Profile {
    /// The weight of every number, so that calls the profile never saw still get a balanced
    /// tree among themselves.
    pub const EPSILON: f64 = 1e-12;

    /// The weight of a syscall the profile never saw but whose arguments the policy checks:
    /// a rule with conditions is written for calls programs make (Docker allows
    /// `personality` for the persona query), so it is placed ahead of the other unseen
    /// numbers, yet far below any call a profile records (one call in 10⁸).
    pub const EXPECTED: f64 = 1e-8;

    /// The factor on the weight of a call the kernel's action cache answers without running
    /// the filter (5.11 and later, allowed whatever its arguments): such calls only order
    /// what the calls that do run leave open (and serve kernels without the cache).
    pub const CACHED: f64 = 1e-10;

    /// A profile where every syscall weighs the same.
    pub fn uniform() -> Profile {
        Profile { source: "uniform".into(), counts: BTreeMap::new(), args: BTreeMap::new() }
    }

    /// Whether it records no calls at all (as [`Profile::uniform`]): then every number is
    /// as unseen as the next, arguments checked or not.
    pub fn is_uniform(&self) -> bool {
        self.counts.values().all(|w| *w == 0.0)
    }

    /// The fraction of calls that are `name` (0 if unseen).
    pub fn weight(&self, name: &str) -> f64 {
        self.counts.get(name).copied().unwrap_or(0.0)
    }

    /// Builds a profile from counts; weights are normalised to sum to 1.
    pub fn from_counts(source: &str, counts: impl IntoIterator<Item = (String, f64)>) -> Profile {
        Profile::from_trace(source, counts, BTreeMap::new())
    }

    /// Builds a profile from syscall counts and argument counts (calls of a syscall with an
    /// argument equal to a value). A syscall's calls are its count, or when the argument
    /// counts of one argument add up to more (or it has no count), their sum; each value's
    /// weight is its share of the syscall's calls.
    pub fn from_trace(
        source: &str,
        counts: impl IntoIterator<Item = (String, f64)>,
        args: BTreeMap<(String, ArgKey, ArgValue), f64>,
    ) -> Profile {
        let mut map: BTreeMap<String, f64> = BTreeMap::new();
        for (name, c) in counts {
            *map.entry(name).or_default() += c;
        }
        // calls per (syscall, argument)
        let mut per_arg: BTreeMap<(&str, &ArgKey), f64> = BTreeMap::new();
        for ((name, key, _), c) in &args {
            *per_arg.entry((name, key)).or_default() += c;
        }
        for ((name, _), sum) in &per_arg {
            let calls = map.entry(name.to_string()).or_default();
            *calls = calls.max(*sum);
        }
        let mut by_syscall: BTreeMap<String, Vec<(ArgKey, ArgValue, f64)>> = BTreeMap::new();
        for ((name, key, value), c) in args {
            let calls = map.get(&name).copied().unwrap_or(0.0);
            if calls > 0.0 && c > 0.0 {
                by_syscall.entry(name).or_default().push((key, value, c / calls));
            }
        }
        let total: f64 = map.values().sum();
        if total > 0.0 {
            map.values_mut().for_each(|v| *v /= total);
        }
        Profile { source: source.to_string(), counts: map, args: by_syscall }
    }

    /// Every syscall's weight, by name.
    pub fn weights(&self) -> impl Iterator<Item = (String, f64)> + '_ {
        self.counts.iter().map(|(n, w)| (n.clone(), *w))
    }

    /// The argument values recorded for `syscall`.
    pub fn arg_weights(&self, syscall: &str) -> &ArgWeights {
        self.args.get(syscall).map_or(&[], Vec::as_slice)
    }

    /// Whether it records argument values.
    pub fn has_args(&self) -> bool {
        !self.args.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_strace_prints_them() {
        assert_eq!(ArgValue::parse("0x5401"), Some(ArgValue::number(0x5401)));
        assert_eq!(ArgValue::parse("0644"), Some(ArgValue::number(0o644)));
        assert_eq!(ArgValue::parse("-1"), Some(ArgValue::number(u64::MAX)));
        assert_eq!(ArgValue::parse("NULL"), Some(ArgValue::number(0)));
        let flags = ArgValue::parse("O_RDONLY|O_CLOEXEC").expect("constants");
        assert_eq!(flags.resolve(crate::abi::Arch::X86_64.table()), Some(0o2000000));
        assert_eq!(ArgValue::parse("\"/etc\""), None);
        assert_eq!(ArgValue::parse("{st_mode=S_IFREG}"), None);
    }

    #[test]
    fn argument_counts_are_shares_of_the_syscall() {
        let args = BTreeMap::from([
            (("ioctl".to_string(), ArgKey::Param("cmd".into()), ArgValue::number(0x5401)), 30.0),
            (("ioctl".to_string(), ArgKey::Param("cmd".into()), ArgValue::number(0x5421)), 10.0),
        ]);
        let p = Profile::from_trace("t", [("ioctl".to_string(), 100.0), ("read".to_string(), 100.0)], args.clone());
        assert_eq!(p.arg_weights("ioctl").iter().map(|a| a.2).collect::<Vec<_>>(), [0.3, 0.1]);
        // without a count line, the argument counts are the calls
        let p = Profile::from_trace("t", [("read".to_string(), 40.0)], args);
        assert_eq!(p.weight("ioctl"), 0.5);
        assert_eq!(p.arg_weights("ioctl").iter().map(|a| a.2).collect::<Vec<_>>(), [0.75, 0.25]);
    }
}
