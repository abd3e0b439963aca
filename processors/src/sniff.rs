//! What a file is, from its first bytes: images by their magic numbers, compressed containers,
//! Parquet, PDF, zip, JSON and text. One place for the magic numbers that image decoding,
//! decompression and the index stage's catalog all go by.

/// gzip's magic bytes.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// zstd's frame magic.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Whether `b` starts a zstd stream: a zstd frame, or a skippable frame (magic `0x184D2A50` to
/// `0x184D2A5F`, little-endian), which `pzstd` and seekable-zstd writers put first.
pub fn is_zstd(b: &[u8]) -> bool {
    b.starts_with(&ZSTD_MAGIC) || matches!(b, [0x50..=0x5f, 0x2a, 0x4d, 0x18, ..])
}

/// How many leading bytes [`content_type`] looks at.
pub const SNIFF_BYTES: usize = 32;

/// An image format, as detected or as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// GIF (read only: its first frame).
    Gif,
    /// WebP.
    Webp,
    /// TIFF (read only).
    Tiff,
    /// BMP (read only).
    Bmp,
}

impl ImageKind {
    /// Detect by magic bytes.
    pub fn detect(b: &[u8]) -> Option<Self> {
        Some(match b {
            [0xff, 0xd8, 0xff, ..] => ImageKind::Jpeg,
            [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, ..] => ImageKind::Png,
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => ImageKind::Gif,
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => ImageKind::Webp,
            [b'I', b'I', 42, 0, ..] | [b'M', b'M', 0, 42, ..] => ImageKind::Tiff,
            [b'B', b'M', ..] if b.len() >= 26 => ImageKind::Bmp,
            _ => return None,
        })
    }

    /// Lower-case name (`jpeg`, `png`, …).
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpeg",
            ImageKind::Png => "png",
            ImageKind::Gif => "gif",
            ImageKind::Webp => "webp",
            ImageKind::Tiff => "tiff",
            ImageKind::Bmp => "bmp",
        }
    }

    /// The file extension written for this format.
    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpg",
            other => other.name(),
        }
    }

    /// The `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::Gif => "image/gif",
            ImageKind::Webp => "image/webp",
            ImageKind::Tiff => "image/tiff",
            ImageKind::Bmp => "image/bmp",
        }
    }
}

/// The content type an object's first bytes show (compressed containers by their magic).
pub fn content_type(head: &[u8]) -> &'static str {
    if let Some(k) = ImageKind::detect(head) {
        return k.content_type();
    }
    match head {
        h if h.starts_with(&GZIP_MAGIC) => "application/gzip",
        h if is_zstd(h) => "application/zstd",
        [b'P', b'A', b'R', b'1', ..] => "application/vnd.apache.parquet",
        [b'%', b'P', b'D', b'F', ..] => "application/pdf",
        [b'P', b'K', 3, 4, ..] => "application/zip",
        _ => {
            let text = match std::str::from_utf8(head) {
                Ok(t) => t,
                // A multi-byte character cut by the sniffing window is still text.
                Err(e) if e.error_len().is_none() => {
                    std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
                }
                Err(_) => return "application/octet-stream",
            };
            let t = text.trim_start_matches('\u{feff}').trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                "application/json"
            } else if text.is_empty() && !head.is_empty() {
                "application/octet-stream"
            } else {
                "text/plain"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_detected_by_content() {
        assert_eq!(
            ImageKind::detect(b"\xff\xd8\xff\xe0"),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(ImageKind::detect(b"GIF89a.."), Some(ImageKind::Gif));
        assert_eq!(
            ImageKind::detect(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageKind::Webp)
        );
        assert_eq!(ImageKind::detect(b"{\"json\": 1}"), None);
        assert_eq!(ImageKind::detect(b""), None);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(b"\x1f\x8b\x08\x00"), "application/gzip");
        assert_eq!(
            content_type(b"PAR1\x15\x04"),
            "application/vnd.apache.parquet"
        );
        assert_eq!(content_type(b"\xff\xd8\xff\xdb"), "image/jpeg");
        assert_eq!(content_type(b"\xef\xbb\xbf{\"a\":1}"), "application/json");
        assert_eq!(content_type(b"  [1,2]"), "application/json");
        assert_eq!(content_type(b"2026-11-22 INFO"), "text/plain");
        // A character cut at the end of the window is still text.
        assert_eq!(
            content_type("abcdefghijklmn\u{00e9}".as_bytes()[..15].as_ref()),
            "text/plain"
        );
        assert_eq!(
            content_type(b"\x00\x01\x02\xff"),
            "application/octet-stream"
        );
    }
}
