//! Text → index terms, for the index stage's term index.
//!
//! Words are found with Unicode word segmentation (UAX #29), so punctuation, spaces and symbols
//! (emoji included) separate words and are never terms themselves; numbers stay whole (`3.14`,
//! `1,000`). Alphabetic words are case folded (`Straße` and `STRASSE` are not merged: folding is
//! lower-casing, not a full Unicode case fold). A run of Chinese characters (Han script), which
//! UAX #29 would cut into single characters, is segmented into words with jieba and its default
//! dictionary instead: `我来到北京清华大学` → 我 / 来到 / 北京 / 清华大学. Every term gets its
//! position: the count of terms before it in the text.

use std::collections::HashSet;
use std::sync::OnceLock;

use unicode_segmentation::UnicodeSegmentation;

/// The jieba dictionary, loaded once per process (it takes a fraction of a second).
fn jieba() -> &'static jieba_rs::Jieba {
    static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    JIEBA.get_or_init(jieba_rs::Jieba::new)
}

/// Whether `c` is a Han (Chinese) character.
pub fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F | 0x3007)
}

/// Splits text into terms.
#[derive(Debug, Clone, Default)]
pub struct Tokenizer {
    stop: HashSet<String>,
}

impl Tokenizer {
    /// A tokenizer that drops `stop_words` (compared after case folding).
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(stop_words: I) -> Self {
        Tokenizer {
            stop: stop_words
                .into_iter()
                .map(|w| w.as_ref().to_lowercase())
                .collect(),
        }
    }

    /// Call `f(term, position)` for each term of `text`, in order. Stop words are skipped but
    /// still count for positions (so phrase distances stay true).
    pub fn each(&self, text: &str, mut f: impl FnMut(&str, u32)) {
        let mut position: u32 = 0;
        let mut folded = String::new();
        let mut emit = |word: &str, fold: bool| {
            let term = if fold && word.chars().any(char::is_uppercase) {
                folded.clear();
                folded.extend(word.chars().flat_map(char::to_lowercase));
                folded.as_str()
            } else {
                word
            };
            if self.stop.is_empty() || !self.stop.contains(term) {
                f(term, position);
            }
            position = position.saturating_add(1);
        };
        // UAX #29 breaks before and after every Han character, so the text is cut into runs of
        // Han characters, segmented by jieba, and what lies between, segmented by UAX #29 — each
        // Han character never goes through the word iterator on its own.
        let mut rest = text;
        while !rest.is_empty() {
            let han = rest.find(is_han).unwrap_or(rest.len());
            for word in rest[..han].unicode_words() {
                emit(word, true);
            }
            rest = &rest[han..];
            let end = rest.find(|c| !is_han(c)).unwrap_or(rest.len());
            if end > 0 {
                for word in jieba().cut(&rest[..end], true) {
                    emit(word.word, false);
                }
            }
            rest = &rest[end..];
        }
    }

    /// The terms of `text`, in order (positions are their indexes when no stop words are set).
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.each(text, |t, _| out.push(t.to_string()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        Tokenizer::default().terms(text)
    }

    #[test]
    fn english_is_split_on_words_and_folded() {
        assert_eq!(
            terms("The quick (brown) FOX — can't stop; e-mail: a.b@example.com!"),
            [
                "the",
                "quick",
                "brown",
                "fox",
                "can't",
                "stop",
                "e",
                "mail",
                "a.b",
                "example.com"
            ]
        );
        assert_eq!(terms("Ünïcode ÉCOLE"), ["ünïcode", "école"]);
    }

    #[test]
    fn chinese_is_segmented_into_words_with_jieba() {
        assert_eq!(
            terms("我来到北京清华大学"),
            ["我", "来到", "北京", "清华大学"]
        );
        // Mixed with English and numbers, punctuation between them.
        assert_eq!(
            terms("我来到北京清华大学, visited in 2024年!"),
            [
                "我",
                "来到",
                "北京",
                "清华大学",
                "visited",
                "in",
                "2024",
                "年"
            ]
        );
    }

    #[test]
    fn han_runs_end_where_other_scripts_start() {
        // No space needed between Latin letters, kana and Han; a variation selector after a Han
        // character ends its run and is not a term.
        assert_eq!(
            terms("Rust语言很快fast。カタカナ東京\u{FE00}大学"),
            ["rust", "语言", "很快", "fast", "カタカナ", "東京", "大学"]
        );
    }

    #[test]
    fn numbers_emoji_and_punctuation() {
        assert_eq!(
            terms("pi is 3.14, about 1,000 times 42"),
            ["pi", "is", "3.14", "about", "1,000", "times", "42"]
        );
        // Emoji separate words and are not terms.
        assert_eq!(terms("great👍work 🎉🎉"), ["great", "work"]);
        assert!(terms("... --- !!! ？。、").is_empty());
        assert!(terms("").is_empty());
    }

    #[test]
    fn stop_words_are_dropped_but_keep_their_positions() {
        let t = Tokenizer::new(["the", "A"]);
        let mut seen = Vec::new();
        t.each("The cat saw a dog", |term, pos| {
            seen.push((term.to_string(), pos))
        });
        assert_eq!(
            seen,
            [
                ("cat".to_string(), 1),
                ("saw".to_string(), 2),
                ("dog".to_string(), 4)
            ]
        );
    }
}
