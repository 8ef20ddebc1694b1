//! Zeller's delta debugging (ddmin): the smallest subset of a list it can find that still
//! passes `test` (here: still fails the same way), trying halves, then quarters, ... and each
//! chunk's complement. Deterministic: the same list and test give the same answer.

/// A 1-minimal subset of `items` (removing any one item more makes `test` false), unless the
/// test budget runs out first. `test` is assumed true for `items` itself.
pub fn ddmin<T: Clone>(items: Vec<T>, test: &mut dyn FnMut(&[T]) -> bool) -> Vec<T> {
    if items.is_empty() || test(&[]) {
        return Vec::new();
    }
    let mut items = items;
    let mut n = 2usize;
    while items.len() >= 2 {
        let chunks = split(&items, n);
        if let Some(c) = chunks.iter().find(|c| test(c)) {
            items = c.clone();
            n = 2;
            continue;
        }
        let complement = (0..chunks.len()).map(|skip| chunks.iter().enumerate().filter(|(i, _)| *i != skip).flat_map(|(_, c)| c.iter().cloned()).collect::<Vec<T>>()).find(|c| test(c));
        if let Some(c) = complement {
            items = c;
            n = (n - 1).max(2);
            continue;
        }
        if n >= items.len() {
            break;
        }
        n = (n * 2).min(items.len());
    }
    items
}

/// `items` in `n` contiguous chunks of nearly equal size.
fn split<T: Clone>(items: &[T], n: usize) -> Vec<Vec<T>> {
    assert!(n >= 1 && n <= items.len(), "n={n} len={}", items.len());
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let end = start + (items.len() - start) / (n - i);
        out.push(items[start..end].to_vec());
        start = end;
    }
    assert_eq!(start, items.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_two_items_that_together_make_the_failure() {
        let items: Vec<u32> = (0..20).collect();
        let mut runs = 0;
        let found = ddmin(items, &mut |s| {
            runs += 1;
            s.contains(&3) && s.contains(&17)
        });
        assert_eq!(found, vec![3, 17]);
        assert!(runs < 60, "{runs} runs");
    }

    #[test]
    fn an_empty_schedule_that_still_fails_is_the_answer() {
        assert_eq!(ddmin(vec![1, 2, 3], &mut |_| true), Vec::<i32>::new());
    }

    #[test]
    fn chunks_cover_the_list_in_order() {
        assert_eq!(split(&[1, 2, 3, 4, 5], 2), vec![vec![1, 2], vec![3, 4, 5]]);
        assert_eq!(split(&[1, 2, 3], 3), vec![vec![1], vec![2], vec![3]]);
    }
}
