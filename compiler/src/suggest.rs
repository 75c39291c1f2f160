//! "Did you mean …?": the closest known name by edit distance.

/// Levenshtein distance between two strings, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The candidate closest to `name`, if close enough to be a likely typo (at most a third of
/// the name's length, and at least 1, edits away). Ties go to the first in `candidates`.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, c)| (d, c))
        .map(|(_, c)| c)
}

/// "did you mean `X`?" or the fallback text.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>, fallback: &str) -> String {
    match closest(name, candidates) {
        Some(c) => format!("did you mean `{c}`?"),
        None => fallback.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_the_name() {
        assert_eq!(closest("opneat", ["open", "openat", "read"]), Some("openat"));
        assert_eq!(closest("O_RDONL", ["O_RDONLY", "O_RDWR"]), Some("O_RDONLY"));
        assert_eq!(closest("zzzz", ["open", "read"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
