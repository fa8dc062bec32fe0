//! Sorting with one sort routine for the whole core: items are sorted through their keys,
//! `(number, number)` or text, by sorting their positions with one comparison function, then
//! moved into that order. Each `sort` or `sort_by` of the standard library on a new item type
//! or closure adds another copy of its sort routine (kilobytes each, which the browser
//! downloads); these add only the small loops below. Positions break ties, so the order is
//! stable and reproducible. A few items (the common case: a lock's holders, a query's locks)
//! are sorted in place instead, without allocating, in the same order.

use alloc::vec::Vec;
use core::cmp::Ordering;

/// Up to this many items, an insertion sort in place costs less than the allocations of
/// sorting keys and positions.
const SMALL: usize = 16;

/// Sorts `items` by the numbers `key` gives, first number first; equal keys keep their order.
pub(crate) fn sort_by_numbers<T>(items: &mut Vec<T>, key: impl Fn(&T) -> (u64, u64)) {
    if items.len() < 2 {
        return;
    }
    if items.len() <= SMALL {
        insertion_sort(items, |before, item| key(before) > key(item));
        return;
    }
    let keys: Vec<(u64, u64)> = items.iter().map(key).collect();
    let order = sorted_positions(keys.len(), &|a, b| keys.get(a).cmp(&keys.get(b)));
    arrange(items, &order);
}

/// Sorts `items` by the text `key` gives (byte order); equal keys keep their order.
pub(crate) fn sort_by_text<T>(items: &mut Vec<T>, key: impl Fn(&T) -> &str) {
    if items.len() < 2 {
        return;
    }
    if items.len() <= SMALL {
        insertion_sort(items, |before, item| key(before) > key(item));
        return;
    }
    let keys: Vec<&str> = items.iter().map(&key).collect();
    let order = sorted_positions(keys.len(), &|a, b| keys.get(a).cmp(&keys.get(b)));
    arrange(items, &order);
}

/// Returns the positions `0..len` ordered by `compare`, equal ones by position: the one
/// instance of the standard sort in the core (a `&dyn` comparison keeps it one).
fn sorted_positions(len: usize, compare: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_unstable_by(|&a, &b| compare(a, b).then(a.cmp(&b)));
    order
}

/// Sorts a few items in place; an item moves before another only if it sorts strictly
/// before it, so equal keys keep their order (as in the standard stable sort).
fn insertion_sort<T>(items: &mut [T], after: impl Fn(&T, &T) -> bool) {
    for end in 1..items.len() {
        let mut at = end;
        while at > 0 {
            let out_of_order = match (items.get(at - 1), items.get(at)) {
                (Some(before), Some(item)) => after(before, item),
                _ => false,
            };
            if !out_of_order {
                break;
            }
            items.swap(at - 1, at);
            at -= 1;
        }
    }
}

/// Moves the items into `order`, a permutation of their positions.
fn arrange<T>(items: &mut Vec<T>, order: &[usize]) {
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(
        order
            .iter()
            .filter_map(|&at| slots.get_mut(at).and_then(Option::take)),
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn orders_as_the_standard_stable_sort(items in proptest::collection::vec((0u64..4, 0u64..3, "[ab]{0,2}"), 0..40)) {
            let mut ours = items.clone();
            sort_by_numbers(&mut ours, |&(first, second, _)| (first, second));
            let mut standard = items.clone();
            standard.sort_by_key(|&(first, second, _)| (first, second));
            prop_assert_eq!(ours, standard);

            let mut ours = items.clone();
            sort_by_text(&mut ours, |(_, _, text)| text.as_str());
            let mut standard = items;
            standard.sort_by(|a, b| a.2.cmp(&b.2));
            prop_assert_eq!(ours, standard);
        }
    }

    #[test]
    fn short_lists_are_left_alone() {
        let mut none: Vec<String> = vec![];
        sort_by_text(&mut none, String::as_str);
        assert!(none.is_empty());
        let mut one = vec![7u64];
        sort_by_numbers(&mut one, |&n| (n, 0));
        assert_eq!(one, vec![7]);
    }
}
