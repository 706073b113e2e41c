//! "Did you mean": the closest of a few known words to one a person typed.

/// The candidate closest to `word` by edit distance (a swap of two neighbours counts as one
/// edit), when it is close enough to be a typo: at most two edits, and fewer than the word's
/// length. Ties go to the first candidate.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = 2.min(word.chars().count().saturating_sub(1));
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The optimal-string-alignment distance between `a` and `b`, compared case-insensitively.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn typos_find_the_word_and_strangers_find_nothing() {
        let commands = ["run", "profile", "status", "gc", "completions"];
        assert_eq!(closest("profle", commands), Some("profile"));
        assert_eq!(closest("stauts", commands), Some("status"));
        assert_eq!(closest("rn", commands), Some("run"));
        assert_eq!(closest("wrok", ["home", "work"]), Some("work"));
        assert_eq!(closest("deploy", commands), None);
        assert_eq!(closest("g", commands), None);
        assert_eq!(closest("work", ["work"]), None);
    }
}
