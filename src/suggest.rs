//! "Did you mean": the one helper behind every hint for a mistyped name (services, keys,
//! templates, events, steps, run ids, finding kinds).
//!
//! One rule everywhere, rustc's: the candidate at the smallest edit distance (insertions,
//! deletions, substitutions and swaps of two adjacent characters each count one: `orders-bd`,
//! `checkuot`, `tow`), offered only within `max(len, 3) / 3` edits of the name (one in a short
//! name, two from six characters, …), so that a name with no plausible match gets no hint
//! rather than a random one. Each answer is one pass over the candidates; callers that may
//! meet many unknown names against a big list (a generated graph with 200 000 dangling
//! dependencies against 100 000 services) ask only for the ones they print (see
//! `load::diag::PendingHint`).

/// Edits allowed between a name and the candidate offered for it.
fn bound(name: &str) -> usize {
    name.chars().count().max(3) / 3
}

/// The edit distance, or `None` when it is certainly above `limit` (the difference in length
/// is a lower bound: most candidates of a big list are dismissed without computing it).
fn distance(name: &str, candidate: &str, limit: usize) -> Option<usize> {
    if name.chars().count().abs_diff(candidate.chars().count()) > limit {
        return None;
    }
    if candidate.eq_ignore_ascii_case(name) {
        return Some(0);
    }
    Some(strsim::osa_distance(name, candidate))
}

/// The candidate closest to `name`, if it is plausibly a typo of it (the first one on a tie).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = bound(name);
    let mut best: Option<(&str, usize)> = None;
    for c in candidates {
        if let Some(d) = distance(name, c, limit)
            && d <= limit
            && best.is_none_or(|(_, b)| d < b)
        {
            best = Some((c, d));
        }
    }
    best.map(|(c, _)| c)
}

/// Up to `n` candidates, closest first (ties in candidate order), however far: for listings
/// such as "closest run ids: …".
pub fn ranked<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<&'a str> {
    let mut scored: Vec<(usize, usize, &str)> = candidates
        .into_iter()
        .enumerate()
        .map(|(i, c)| (distance(name, c, usize::MAX).unwrap_or(usize::MAX), i, c))
        .collect();
    scored.sort_unstable();
    scored.into_iter().take(n).map(|(_, _, c)| c).collect()
}

/// ` (did you mean `X`?)`, or nothing: the usual tail of a one-line error.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(name, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_found_and_strangers_are_not() {
        let names = ["orders-db", "orders", "checkout", "payments"];
        assert_eq!(closest("orders-bd", names), Some("orders-db"));
        assert_eq!(closest("checkuot", names), Some("checkout"));
        assert_eq!(closest("apj", ["api", "web"]), Some("api"));
        assert_eq!(closest("tow", ["one", "two"]), Some("two"));
        assert_eq!(closest("zzzzzz", names), None);
        assert_eq!(closest("x", []), None);
        assert_eq!(closest("Checkout", names), Some("checkout"));
        // Two edits are too many for a short name, fine for a longer one.
        assert_eq!(closest("ordes", ["orders-db"]), None);
        assert_eq!(closest("paymnt", names), Some("payments"));
        assert_eq!(closest("ünïcode", ["unicode"]), Some("unicode"));
        assert_eq!(
            did_you_mean("paymnts", names),
            " (did you mean `payments`?)"
        );
        assert_eq!(did_you_mean("zzzzzz", names), "");
    }

    #[test]
    fn ranked_lists_the_closest_first() {
        let ids = [
            "20261126T081000Z-aaaa",
            "20261126T091000Z-bbbb",
            "20251126T081000Z-cccc",
        ];
        assert_eq!(
            ranked("20261126T081000Z-aaab", ids, 2),
            ["20261126T081000Z-aaaa", "20261126T091000Z-bbbb"]
        );
        assert_eq!(ranked("x", ids, 5).len(), 3);
    }
}
