//! How a user's text is shown in messages: between plain double quotes,
//! shortened when long, with invisible characters (a non-breaking space, a
//! tab, a zero-width space …) named in words rather than as Rust escapes.

/// How much of a cell a message quotes, in characters.
const MAX_QUOTED_CHARS: usize = 40;

/// `"cell"`, with invisible characters shown as spaces (or left out when
/// they take no room) and named after the quote: `"06 12" (with a
/// non-breaking space at position 3)`.
pub(crate) fn quote(raw: &str) -> String {
    let mut shown = String::with_capacity(raw.len() + 2);
    shown.push('"');
    let mut first: Option<(usize, char)> = None;
    let mut hidden = 0usize;
    let mut cut = false;
    for (i, c) in raw.chars().enumerate() {
        if i == MAX_QUOTED_CHARS {
            cut = true;
            break;
        }
        if invisible(c).is_some() {
            hidden += 1;
            first.get_or_insert((i + 1, c));
            if c.is_whitespace() {
                shown.push(' ');
            }
        } else {
            shown.push(c);
        }
    }
    shown.push('"');
    if cut {
        shown.push('…');
    }
    if let Some((at, c)) = first {
        let name = invisible(c).unwrap_or_else(|| "an invisible character".into());
        let more = match hidden - 1 {
            0 => String::new(),
            1 => " and 1 more invisible character".into(),
            n => format!(" and {n} more invisible characters"),
        };
        shown.push_str(&format!(" (with {name} at position {at}{more})"));
    }
    shown
}

/// The words for a character a reader cannot see, or `None` for a visible one.
pub(crate) fn invisible(c: char) -> Option<String> {
    let name = match c {
        ' ' => return None,
        '\t' => "a tab",
        '\n' => "a line break",
        '\r' => "a carriage return",
        '\u{a0}' => "a non-breaking space",
        '\u{202f}' => "a narrow non-breaking space",
        '\u{2007}' => "a figure space",
        '\u{3000}' => "a full-width space",
        '\u{ad}' => "a soft hyphen",
        '\u{200b}' => "a zero-width space",
        '\u{200c}' => "a zero-width non-joiner",
        '\u{200d}' => "a zero-width joiner",
        '\u{200e}' => "a left-to-right mark",
        '\u{200f}' => "a right-to-left mark",
        '\u{2060}' => "a word joiner",
        '\u{feff}' => "a byte-order mark",
        c if c.is_whitespace() => return Some(format!("a space character (U+{:04X})", c as u32)),
        c if c.is_control() => return Some(format!("a control character (U+{:04X})", c as u32)),
        '\u{202a}'..='\u{202e}' | '\u{2061}'..='\u{2064}' | '\u{2066}'..='\u{2069}' => {
            return Some(format!(
                "an invisible formatting character (U+{:04X})",
                c as u32
            ));
        }
        _ => return None,
    };
    Some(name.to_string())
}

/// A character in words for a message: `the letter "A"`, `a tab`, `"#"`.
pub(crate) fn describe(c: char) -> String {
    if let Some(name) = invisible(c) {
        name
    } else if c.is_alphabetic() {
        format!("the letter \"{c}\"")
    } else {
        format!("\"{c}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_quoted_as_is() {
        assert_eq!(quote("06 12"), "\"06 12\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("=\"06\" \\ é"), "\"=\"06\" \\ é\"");
    }

    #[test]
    fn invisible_characters_are_named_not_escaped() {
        assert_eq!(
            quote("06\u{a0}12"),
            "\"06 12\" (with a non-breaking space at position 3)"
        );
        assert_eq!(
            quote("Zo\u{200b}é\tx\u{7}"),
            "\"Zoé x\" (with a zero-width space at position 3 and 2 more invisible characters)"
        );
        assert_eq!(describe('\u{feff}'), "a byte-order mark");
        assert_eq!(describe('A'), "the letter \"A\"");
        assert_eq!(describe('#'), "\"#\"");
        assert_eq!(describe('\u{1}'), "a control character (U+0001)");
        assert!(!quote("a\u{a0}b\u{1}").contains('\\'));
    }

    #[test]
    fn long_cells_are_cut() {
        let long = "6".repeat(100);
        assert_eq!(quote(&long), format!("\"{}\"…", "6".repeat(40)));
        assert_eq!(quote(&"6".repeat(40)), format!("\"{}\"", "6".repeat(40)));
        assert_eq!(quote(&"6".repeat(39)), format!("\"{}\"", "6".repeat(39)));
    }
}
