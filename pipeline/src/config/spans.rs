//! Where a key is in the config text: every error names its file, line and key.

use std::ops::Range;
use std::path::Path;

use crate::error::ConfigError;

/// One step of a key path.
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Find the byte span of a key path in a TOML document: of the whole path when `exact`, otherwise
/// of its longest prefix that exists.
pub(crate) fn locate(text: &str, path: &[Seg<'_>], exact: bool) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let span = root.span();
    let mut cur = toml::Spanned::new(span, DeValue::Table(root.into_inner()));
    let mut best = None;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => cur.get_ref().get(*k),
            Seg::Index(i) => cur.get_ref().get(*i),
        };
        let Some(next) = next else {
            return if exact { None } else { best };
        };
        best = Some(next.span());
        cur = next.clone();
    }
    best
}

/// An owned path step, parsed from `stage[0].where`.
pub(crate) enum OwnedSeg {
    Key(String),
    Index(usize),
}

impl OwnedSeg {
    pub(crate) fn as_seg(&self) -> Seg<'_> {
        match self {
            OwnedSeg::Key(k) => Seg::Key(k),
            OwnedSeg::Index(i) => Seg::Index(*i),
        }
    }
}

pub(crate) fn path_segments(path: &str) -> Vec<OwnedSeg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            out.push(OwnedSeg::Key(name.to_string()));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(OwnedSeg::Index(i));
            }
        }
    }
    out
}

pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn err(&self, path: &[Seg<'_>], message: impl Into<String>) -> ConfigError {
        let key = path
            .iter()
            .map(|s| match s {
                Seg::Key(k) => format!(".{k}"),
                Seg::Index(i) => format!("[{i}]"),
            })
            .collect::<String>();
        ConfigError {
            file: self.file.to_path_buf(),
            line: locate(self.text, path, false).map(|r| line_of(self.text, r.start)),
            key: Some(key.trim_start_matches('.').to_string()),
            message: message.into(),
        }
    }
}
