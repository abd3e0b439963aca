//! The resize stage: variants, formats, limits.

use std::sync::Arc;

use crate::config::model::*;
use crate::config::spans::*;
use crate::error::ConfigError;

pub(crate) fn resize_spec(r: &ResizeConfig, cx: &Ctx<'_>) -> Result<ResizeSpec, ConfigError> {
    use sluice_processors::resize::{self, Filter, Fit, OutputFormat, ResizeOptions, Variant};
    let at = |k: &'static str| [Seg::Key("stage"), Seg::Index(0), Seg::Key(k)];
    if r.variants.is_empty() {
        return Err(cx.err(
            &at("variants"),
            "needs at least one variant, e.g. [{ name = \"thumb\", width = 128 }]",
        ));
    }
    let mut variants: Vec<Variant> = Vec::new();
    for (j, v) in r.variants.iter().enumerate() {
        let here = |k: &'static str| {
            [
                Seg::Key("stage"),
                Seg::Index(0),
                Seg::Key("variants"),
                Seg::Index(j),
                Seg::Key(k),
            ]
        };
        let fit = match v.fit.as_deref() {
            None => Fit::Contain,
            Some(f) => Fit::parse(f).ok_or_else(|| {
                cx.err(
                    &here("fit"),
                    format!("`{f}` is not a fit; use contain, cover, fill or inside"),
                )
            })?,
        };
        if v.width.is_none() && v.height.is_none() {
            return Err(cx.err(&here("name"), "needs width, height or both"));
        }
        if v.width == Some(0) || v.height == Some(0) {
            return Err(cx.err(&here("width"), "sizes are at least 1 pixel"));
        }
        if matches!(fit, Fit::Cover | Fit::Fill) && (v.width.is_none() || v.height.is_none()) {
            return Err(cx.err(
                &here("fit"),
                "cover and fill need both width and height (a box to fill)",
            ));
        }
        let ok_name = !v.name.is_empty()
            && v.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !v.name.starts_with('.');
        if !ok_name {
            return Err(cx.err(
                &here("name"),
                format!(
                    "`{}` names an output folder: use letters, digits, - _ .",
                    v.name
                ),
            ));
        }
        if variants.iter().any(|o| o.name == v.name) {
            return Err(cx.err(&here("name"), format!("`{}` is named twice", v.name)));
        }
        variants.push(Variant {
            name: v.name.clone(),
            width: v.width,
            height: v.height,
            fit,
        });
    }
    let format = match r.format.as_deref() {
        None => OutputFormat::Same,
        Some(f) => OutputFormat::parse(f).ok_or_else(|| {
            cx.err(
                &at("format"),
                format!("`{f}` is not an image format sluice writes; use jpeg, png, webp or same"),
            )
        })?,
    };
    let quality = r.quality.unwrap_or(80);
    if !(1..=100).contains(&quality) {
        return Err(cx.err(&at("quality"), "is 1 to 100"));
    }
    let background = match r.background.as_deref() {
        None => [255, 255, 255],
        Some(c) => parse_colour(c).ok_or_else(|| {
            cx.err(
                &at("background"),
                format!("`{c}` is not a colour; write #rrggbb, e.g. \"#ffffff\""),
            )
        })?,
    };
    let filter = match r.filter.as_deref() {
        None => Filter::Lanczos3,
        Some(f) => Filter::parse(f).ok_or_else(|| {
            cx.err(
                &at("filter"),
                format!("`{f}` is not a filter; use lanczos3, mitchell, catmull-rom, bilinear or nearest"),
            )
        })?,
    };
    let positive = |v: Option<u64>, k: &'static str, d: u64| match v {
        Some(0) => Err(cx.err(&at(k), "must be at least 1")),
        v => Ok(v.unwrap_or(d)),
    };
    Ok(ResizeSpec {
        options: Arc::new(ResizeOptions {
            variants,
            format,
            quality,
            progressive: r.progressive,
            strip_metadata: r.strip_metadata,
            background,
            filter,
            max_pixels: positive(r.max_pixels, "max_pixels", resize::DEFAULT_MAX_PIXELS)?,
            max_input_bytes: positive(
                r.max_input_bytes,
                "max_input_bytes",
                resize::DEFAULT_MAX_INPUT_BYTES,
            )?,
        }),
        cache_control: r
            .cache_control
            .clone()
            .unwrap_or_else(|| DEFAULT_CACHE_CONTROL.to_string()),
    })
}

/// `#rrggbb` (or `rrggbb`).
pub(crate) fn parse_colour(c: &str) -> Option<[u8; 3]> {
    let hex = c.strip_prefix('#').unwrap_or(c);
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}
