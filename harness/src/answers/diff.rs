//! A difference between two answers as people read it: the statuses, then a
//! unified line diff of the bodies in the form they were compared, capped.

use similar::TextDiff;

use super::rule::Answer;

/// The most of one diff kept (bytes of text): a result file holds a few of them.
pub const MAX_DIFF_CHARS: usize = 2_000;

/// A's answer against B's: "status 200 → 404", then the bodies' unified diff
/// with two lines of context, cut at [`MAX_DIFF_CHARS`].
pub fn readable(a: &Answer, b: &Answer) -> String {
    let mut out = String::new();
    if a.status != b.status {
        out.push_str(&format!("status {} → {}\n", a.status, b.status));
    }
    if let (Some(x), Some(y)) = (&a.body, &b.body) {
        if x != y {
            let (x, y) = (String::from_utf8_lossy(x), String::from_utf8_lossy(y));
            let diff = TextDiff::from_lines(x.as_ref(), y.as_ref());
            out.push_str(&diff.unified_diff().context_radius(2).header("arm A", "arm B").to_string());
            if !x.ends_with('\n') || !y.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    cap(out)
}

fn cap(text: String) -> String {
    if text.len() <= MAX_DIFF_CHARS {
        return text;
    }
    let mut end = MAX_DIFF_CHARS;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text[..end].rfind('\n').map_or(end, |i| i + 1);
    let rest = text[cut..].lines().count();
    format!("{}… {rest} more lines\n", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer { status, body: Some(body.as_bytes().to_vec()) }
    }

    #[test]
    fn a_diff_names_the_status_and_the_changed_lines() {
        let d = readable(&answer(200, "[\n  \"a\",\n  \"b\",\n  \"c\"\n]\n"), &answer(404, "[\n  \"a\"\n]\n"));
        assert!(d.starts_with("status 200 → 404\n"), "{d}");
        assert!(d.contains("--- arm A") && d.contains("+++ arm B"), "{d}");
        assert!(d.contains("-  \"b\",") && d.contains("-  \"c\""), "{d}");
    }

    #[test]
    fn long_diffs_are_cut_at_a_line() {
        let a: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        let d = readable(&answer(200, &a), &answer(200, ""));
        assert!(d.len() <= MAX_DIFF_CHARS + 40, "{}", d.len());
        assert!(d.ends_with("more lines\n"), "{}", &d[d.len() - 60..]);
    }
}
