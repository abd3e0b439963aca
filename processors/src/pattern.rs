//! Regular expressions a pipeline compiles (the `lines` pattern, `regexp_match`), bounded in size.
//!
//! A pattern's cost per byte of input grows with its compiled size: past about a megabyte the
//! matcher's state cache thrashes, and `[\w\W]{0,1000}[\w\W]{0,1000}x` (2 MB compiled, Unicode
//! classes repeated) reads well under 1 MB/s on some lines, so a 100 MB object outlives Lambda's
//! 15 minutes. Patterns larger than [`MAX_PATTERN_BYTES`] are refused when the pipeline is
//! checked, with the pattern named and the usual cure (ASCII classes, shorter repeats).

use regex::{Regex, RegexBuilder};

/// Largest compiled pattern accepted (the `regex` crate's `size_limit`): 1 MiB. Every log preset
/// is under 40 KiB; `^(?P<ts>\S+) (?P<level>[A-Z]+) (?P<msg>.*)$` is 11 KiB.
pub const MAX_PATTERN_BYTES: usize = 1 << 20;

/// Compile `pattern`, refusing one whose compiled size passes [`MAX_PATTERN_BYTES`]. The error
/// is a sentence for the user (`what` names the setting, e.g. "`pattern`").
pub fn compile(pattern: &str, what: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(MAX_PATTERN_BYTES)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "{what} `{pattern}` compiles to more than {limit} bytes, which would read slowly enough \
                 to outlive a Lambda on a large object; make it smaller: ASCII classes ([A-Za-z0-9_] \
                 or (?-u:\\w) instead of \\w, which covers all of Unicode) and shorter counted repeats"
            ),
            e => format!("{what} is not a valid regular expression: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_patterns_that_compile_too_big_and_keeps_ordinary_ones() {
        let e = compile(r"[\w\W]{0,1000}[\w\W]{0,1000}x", "`pattern`").unwrap_err();
        assert!(
            e.starts_with(
                r"`pattern` `[\w\W]{0,1000}[\w\W]{0,1000}x` compiles to more than 1048576 bytes"
            ),
            "{e}"
        );
        assert!(compile(r"\w{0,100}x", "x").is_err());
        for ok in [
            r"^(?P<ts>\S+) (?P<level>[A-Z]+) +(?P<component>\S+) (?P<ms>\d+)ms (?P<message>.*)$",
            r"(?P<a>\w+)\s+(?P<b>\w+)\s+(?P<c>\w+)",
            r"(?P<n>\d{1,50})",
            r"(?-u:\w){0,1000}x",
        ] {
            compile(ok, "x").unwrap();
        }
        let e = compile("(", "regexp_match's pattern").unwrap_err();
        assert!(
            e.starts_with("regexp_match's pattern is not a valid regular expression"),
            "{e}"
        );
    }
}
