//! 32-bit words as vectors of boolean diagrams (bit 0 first): the input words a filter
//! loads, and exact arithmetic on them (every ALU operation seccomp takes, each as the
//! circuit that computes it), and the tests jumps make.

use super::dd::{Dd, Manager, NodeId, FALSE, TRUE};
use crate::bpf::sim::{AluOp, JmpOp};

/// A symbolic 32-bit word: `bits[i]` is the boolean function "bit i is 1".
pub type Word = [NodeId; 32];

/// The variable of bit `bit` (0 = least significant) of the `seccomp_data` word at byte
/// `offset` (`None` for an offset outside it).
pub fn var_of(offset: u32, bit: u32) -> Option<u16> {
    let msb_first = (31 - bit) as u16;
    let base: u16 = match offset {
        4 => 0,        // arch
        0 => 32,       // nr
        8 => 448 + 32, // instruction_pointer, low half
        12 => 448,     // instruction_pointer, high half
        16..=60 if offset.is_multiple_of(4) => {
            let arg = ((offset - 16) / 8) as u16;
            let hi = (offset - 16) % 8 == 4;
            64 + 64 * arg + if hi { 0 } else { 32 }
        }
        _ => return None,
    };
    Some(base + msb_first)
}

/// The first variable of the arguments (and the instruction pointer): every variable from
/// here on is input the kernel's action cache does not know.
pub const FIRST_ARG_VAR: u16 = 64;

/// The variable of bit `bit` (0 = least significant) of `args[arg]` as a 64-bit value.
pub fn arg_var(arg: u8, bit: u32) -> u16 {
    64 + 64 * u16::from(arg) + (63 - bit) as u16
}

/// A constant word.
pub fn constant(k: u32) -> Word {
    std::array::from_fn(|i| if k >> i & 1 == 1 { TRUE } else { FALSE })
}

/// The value of a word whose bits are all constants.
pub fn as_constant(w: &Word) -> Option<u32> {
    let mut k = 0u32;
    for (i, b) in w.iter().enumerate() {
        match *b {
            TRUE => k |= 1 << i,
            FALSE => {}
            _ => return None,
        }
    }
    Some(k)
}

/// The input word at `offset`.
pub fn input(m: &mut Manager, offset: u32) -> Result<Word, super::dd::OverBudget> {
    let mut w = [FALSE; 32];
    for (i, bit) in w.iter_mut().enumerate() {
        // offsets are checked before: a bad one reads as 0 rather than panicking
        *bit = match var_of(offset, i as u32) {
            Some(v) => m.literal(v)?,
            None => FALSE,
        };
    }
    Ok(w)
}

fn map2(m: &mut Manager, a: &Word, b: &Word, f: impl Fn(&mut Manager, NodeId, NodeId) -> Dd) -> Result<Word, super::dd::OverBudget> {
    let mut out = [FALSE; 32];
    for i in 0..32 {
        out[i] = f(m, a[i], b[i])?;
    }
    Ok(out)
}

/// `a + b + carry_in`, wrapping.
fn add(m: &mut Manager, a: &Word, b: &Word, carry_in: NodeId) -> Result<Word, super::dd::OverBudget> {
    let mut out = [FALSE; 32];
    let mut c = carry_in;
    for i in 0..32 {
        let x = m.xor(a[i], b[i])?;
        out[i] = m.xor(x, c)?;
        // carry = a&b | c&(a^b)
        let ab = m.and(a[i], b[i])?;
        c = m.ite(x, c, ab)?;
    }
    Ok(out)
}

fn not(m: &mut Manager, a: &Word) -> Result<Word, super::dd::OverBudget> {
    let mut out = [FALSE; 32];
    for i in 0..32 {
        out[i] = m.not(a[i])?;
    }
    Ok(out)
}

fn shift_const(a: &Word, by: u32, left: bool) -> Word {
    std::array::from_fn(|i| {
        let i = i as i64;
        let from = if left { i - i64::from(by) } else { i + i64::from(by) };
        if (0..32).contains(&from) {
            a[from as usize]
        } else {
            FALSE
        }
    })
}

/// Shift by the low 5 bits of `by`, one stage per bit.
fn shift(m: &mut Manager, a: &Word, by: &Word, left: bool) -> Result<Word, super::dd::OverBudget> {
    let mut r = *a;
    for (s, sel) in by.iter().enumerate().take(5) {
        let moved = shift_const(&r, 1 << s, left);
        r = map2(m, &moved, &r, |m, x, y| m.ite(*sel, x, y))?;
    }
    Ok(r)
}

fn mul(m: &mut Manager, a: &Word, b: &Word) -> Result<Word, super::dd::OverBudget> {
    let mut acc = constant(0);
    for (i, sel) in b.iter().enumerate() {
        if *sel == FALSE {
            continue;
        }
        let part = shift_const(a, i as u32, true);
        let part = if *sel == TRUE { part } else { map2(m, &part, &constant(0), |m, x, _| m.and(*sel, x))? };
        acc = add(m, &acc, &part, FALSE)?;
    }
    Ok(acc)
}

/// Unsigned division by a divisor that is not 0 where it matters (restoring division).
fn div(m: &mut Manager, a: &Word, d: &Word) -> Result<Word, super::dd::OverBudget> {
    if let Some(k) = as_constant(d).filter(|k| k.is_power_of_two()) {
        return Ok(shift_const(a, k.trailing_zeros(), false));
    }
    // 64-bit remainder so that the shifted-in bits never overflow
    let mut q = [FALSE; 32];
    let mut r: Vec<NodeId> = vec![FALSE; 33];
    let mut d33: Vec<NodeId> = d.to_vec();
    d33.push(FALSE);
    for i in (0..32).rev() {
        r.rotate_right(1);
        r[0] = a[i];
        // r >= d ?
        let mut ge = TRUE;
        for j in 0..33 {
            let x = m.xor(r[j], d33[j])?;
            ge = m.ite(x, r[j], ge)?;
        }
        q[i] = ge;
        // r - d where ge
        let nd: Vec<NodeId> = d33.iter().map(|b| m.not(*b)).collect::<Result<_, _>>()?;
        let mut c = TRUE;
        let mut diff = [FALSE; 33];
        for j in 0..33 {
            let x = m.xor(r[j], nd[j])?;
            diff[j] = m.xor(x, c)?;
            let ab = m.and(r[j], nd[j])?;
            c = m.ite(x, c, ab)?;
        }
        for j in 0..33 {
            r[j] = m.ite(ge, diff[j], r[j])?;
        }
    }
    Ok(q)
}

/// `a op b` (a division by 0 is the caller's to rule out first).
pub fn alu(m: &mut Manager, op: AluOp, a: &Word, b: &Word) -> Result<Word, super::dd::OverBudget> {
    if let (Some(x), Some(y)) = (as_constant(a), as_constant(b)) {
        if let Some(v) = crate::bpf::sim::alu(op, x, y) {
            return Ok(constant(v));
        }
    }
    match op {
        AluOp::And => map2(m, a, b, |m, x, y| m.and(x, y)),
        AluOp::Or => map2(m, a, b, |m, x, y| m.or(x, y)),
        AluOp::Xor => map2(m, a, b, |m, x, y| m.xor(x, y)),
        AluOp::Add => add(m, a, b, FALSE),
        AluOp::Sub => {
            let nb = not(m, b)?;
            add(m, a, &nb, TRUE)
        }
        AluOp::Lsh | AluOp::Rsh => match as_constant(b) {
            Some(k) => Ok(shift_const(a, k & 31, op == AluOp::Lsh)),
            None => shift(m, a, b, op == AluOp::Lsh),
        },
        AluOp::Mul => match (as_constant(a), as_constant(b)) {
            (Some(_), None) => mul(m, b, a),
            _ => mul(m, a, b),
        },
        AluOp::Div => div(m, a, b),
    }
}

/// `-a`.
pub fn neg(m: &mut Manager, a: &Word) -> Result<Word, super::dd::OverBudget> {
    let na = not(m, a)?;
    add(m, &na, &constant(0), TRUE)
}

/// The boolean function "`a op b`".
pub fn test(m: &mut Manager, op: JmpOp, a: &Word, b: &Word) -> Dd {
    match op {
        JmpOp::Eq => {
            let mut r = TRUE;
            for i in 0..32 {
                let x = m.xor(a[i], b[i])?;
                r = m.ite(x, FALSE, r)?;
            }
            Ok(r)
        }
        JmpOp::Gt | JmpOp::Ge => {
            // from the least significant bit up: the highest differing bit decides
            let mut r = if op == JmpOp::Ge { TRUE } else { FALSE };
            for i in 0..32 {
                let x = m.xor(a[i], b[i])?;
                r = m.ite(x, a[i], r)?;
            }
            Ok(r)
        }
        JmpOp::Set => {
            let mut r = FALSE;
            for i in 0..32 {
                let both = m.and(a[i], b[i])?;
                r = m.or(both, r)?;
            }
            Ok(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::sim::alu as concrete;

    /// Every operation on a symbolic word, evaluated at sample points, equals the concrete
    /// operation.
    #[test]
    fn circuits_compute_what_the_emulator_computes() {
        let mut m = Manager::new(1 << 22);
        let a = input(&mut m, 16).expect("within budget");
        let samples = [0u32, 1, 2, 3, 7, 0x7fff_ffff, 0x8000_0000, 0xdead_beef, u32::MAX, 12345];
        let eval = |m: &Manager, w: &Word, x: u32| -> u32 {
            let mut out = 0;
            for (i, bit) in w.iter().enumerate() {
                let mut n = *bit;
                while m.value(n).is_none() {
                    let var = m.var(n);
                    // nr reads as 0 here
                    if var < var_of(16, 31).expect("within budget") {
                        n = m.children(n).0;
                        continue;
                    }
                    let b = 31 - (var - var_of(16, 31).expect("within budget"));
                    let (lo, hi) = m.children(n);
                    n = if x >> b & 1 == 1 { hi } else { lo };
                }
                out |= (m.value(n).expect("within budget") as u32) << i;
            }
            out
        };
        for op in [AluOp::Add, AluOp::Sub, AluOp::Mul, AluOp::Div, AluOp::Or, AluOp::And, AluOp::Lsh, AluOp::Rsh, AluOp::Xor] {
            for k in [1u32, 3, 5, 31, 33, 0x8000_0001] {
                let w = alu(&mut m, op, &a, &constant(k)).expect("within budget");
                for &x in &samples {
                    assert_eq!(eval(&m, &w, x), concrete(op, x, k).expect("within budget"), "{op:?} {x:#x} {k:#x}");
                }
            }
        }
        let n = neg(&mut m, &a).expect("within budget");
        for &x in &samples {
            assert_eq!(eval(&m, &n, x), x.wrapping_neg());
        }
        // a symbolic shift amount read before the word (nr & 3, nr = 0 in `eval`), and
        // one that is too big to be exact (x << (x & 31)) runs out of budget, no answer
        let nr = input(&mut m, 0).expect("within budget");
        let by = alu(&mut m, AluOp::And, &nr, &constant(3)).expect("within budget");
        let w = alu(&mut m, AluOp::Lsh, &a, &by).expect("within budget");
        for &x in &samples {
            assert_eq!(eval(&m, &w, x), x);
        }
        let mut small = Manager::new(1 << 16);
        let a = input(&mut small, 16).expect("within budget");
        assert_eq!(alu(&mut small, AluOp::Lsh, &a, &a), Err(crate::prove::dd::OverBudget));
    }
}
