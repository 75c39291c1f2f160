//! The textual form of the IR, for snapshots and debugging: one line per setting, per rule
//! (`rule3 allow (layer web)`), per condition node (`cond2 = and cond0, cond1`) and per
//! syscall number with its rules in the order they are tried (`257 openat: rule5 if cond2,
//! rule1`). Entity names are cranelift-entity's (`rule3`, `cond2`); numbers are printed as
//! the kernel sees them, names from the architecture's table.

use std::fmt;

use crate::abi::Width;

use super::policy::{ArchPolicy, CondData, Policy};

fn width(w: Width) -> &'static str {
    match w {
        Width::W16 => "16",
        Width::W32 => "32",
        Width::W64 => "64",
    }
}

impl fmt::Display for CondData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CondData::Cmp { arg, width: w, mask, op, value } => {
                write!(f, "args[{arg}]:{} & {mask:#x} {} {value:#x}", width(*w), op.symbol())
            }
            CondData::In { arg, width: w, mask, negated, values } => {
                let set: Vec<String> = values.iter().map(|v| format!("{v:#x}")).collect();
                let not = if *negated { "not " } else { "" };
                write!(f, "args[{arg}]:{} & {mask:#x} {not}in {{{}}}", width(*w), set.join(", "))
            }
            CondData::And(a, b) => write!(f, "and {a}, {b}"),
            CondData::Or(a, b) => write!(f, "or {a}, {b}"),
            CondData::Not(a) => write!(f, "not {a}"),
        }
    }
}

impl fmt::Display for ArchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  target {}", self.arch)?;
        for (id, cond) in &self.conds {
            writeln!(f, "    {id} = {cond}")?;
        }
        let table = self.arch.table();
        for (nr, entries) in &self.syscalls {
            let name = table.by_nr(*nr).map_or("?", |s| s.name);
            let rules: Vec<String> = entries
                .iter()
                .map(|e| match e.cond {
                    Some(c) => format!("{} if {c}", e.rule),
                    None => e.rule.to_string(),
                })
                .collect();
            writeln!(f, "    {nr} {name}: {}", rules.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "policy {}", self.name)?;
        writeln!(f, "  kernel >= {}", self.kernel)?;
        writeln!(f, "  default {}", self.default)?;
        writeln!(f, "  badarch {}", self.badarch)?;
        if let Some(newer) = self.newer {
            writeln!(f, "  newer {newer}")?;
        }
        for (id, rule) in &self.rules {
            let fin = if rule.is_final { "final " } else { "" };
            writeln!(f, "  {id} {fin}{} (layer {})", rule.action, rule.layer)?;
        }
        for target in &self.targets {
            write!(f, "{target}")?;
        }
        Ok(())
    }
}
