//! The resize stage: renditions of one image (thumbnails, web sizes) in one pass.
//!
//! An image is detected by its content (JPEG, PNG, GIF, WebP, TIFF, BMP), its header is checked
//! against the limits before any pixel buffer is allocated, and it is decoded once for all its
//! variants: a JPEG with DCT scaling (shrink-on-decode) to the smallest power-of-two reduction that
//! still covers the largest variant, everything else with the `image` crate. Each variant is
//! resampled with `fast_image_resize` (SIMD, Lanczos3 by default), turned upright by its EXIF
//! orientation, and encoded (`jpeg-encoder`, `png`, libwebp); variants run on rayon. The ICC
//! profile is kept so colours stay right; other metadata is dropped unless asked for (and then the
//! orientation tag is reset, since the pixels are upright).
//!
//! Nothing here panics on input: a corrupt, truncated, unsupported or over-limit file is an
//! `Err(reason)`, which the caller turns into a reject.

use std::io::Cursor;

use fast_image_resize as fr;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};
use rayon::prelude::*;

pub use crate::sniff::ImageKind;

/// How a variant fits its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// Inside the box, aspect kept (may upscale).
    #[default]
    Contain,
    /// Fills the box, aspect kept, the overflow cropped around the centre.
    Cover,
    /// Exactly the box, stretched.
    Fill,
    /// Like `contain`, but never larger than the source.
    Inside,
}

impl Fit {
    /// `contain`, `cover`, `fill`, `inside`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "contain" => Fit::Contain,
            "cover" => Fit::Cover,
            "fill" => Fit::Fill,
            "inside" => Fit::Inside,
            _ => return None,
        })
    }
}

/// The output format setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// WebP (lossy at `quality`).
    Webp,
    /// The source's own format where it can be written (JPEG, PNG, WebP); GIF, TIFF and BMP
    /// sources become PNG (lossless, alpha kept).
    #[default]
    Same,
}

impl OutputFormat {
    /// `jpeg`, `png`, `webp`, `same`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "jpeg" | "jpg" => OutputFormat::Jpeg,
            "png" => OutputFormat::Png,
            "webp" => OutputFormat::Webp,
            "same" => OutputFormat::Same,
            _ => return None,
        })
    }

    fn for_source(self, src: ImageKind) -> ImageKind {
        match (self, src) {
            (OutputFormat::Jpeg, _) => ImageKind::Jpeg,
            (OutputFormat::Png, _) => ImageKind::Png,
            (OutputFormat::Webp, _) => ImageKind::Webp,
            (OutputFormat::Same, k @ (ImageKind::Jpeg | ImageKind::Png | ImageKind::Webp)) => k,
            (OutputFormat::Same, _) => ImageKind::Png,
        }
    }
}

/// The resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear.
    Bilinear,
    /// Catmull-Rom (bicubic).
    CatmullRom,
    /// Mitchell–Netravali.
    Mitchell,
    /// Lanczos with a = 3 (the default; what sharp and libvips use for reduction).
    #[default]
    Lanczos3,
}

impl Filter {
    /// `nearest`, `bilinear`, `catmull-rom`, `mitchell`, `lanczos3`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "nearest" => Filter::Nearest,
            "bilinear" => Filter::Bilinear,
            "catmull-rom" | "bicubic" => Filter::CatmullRom,
            "mitchell" => Filter::Mitchell,
            "lanczos3" => Filter::Lanczos3,
            _ => return None,
        })
    }

    fn alg(self) -> fr::ResizeAlg {
        match self {
            Filter::Nearest => fr::ResizeAlg::Nearest,
            Filter::Bilinear => fr::ResizeAlg::Convolution(fr::FilterType::Bilinear),
            Filter::CatmullRom => fr::ResizeAlg::Convolution(fr::FilterType::CatmullRom),
            Filter::Mitchell => fr::ResizeAlg::Convolution(fr::FilterType::Mitchell),
            Filter::Lanczos3 => fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3),
        }
    }
}

/// One rendition to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Names the output folder.
    pub name: String,
    /// Box width; `None` follows the height, keeping the aspect.
    pub width: Option<u32>,
    /// Box height; `None` follows the width.
    pub height: Option<u32>,
    /// How the image fits the box.
    pub fit: Fit,
}

/// Everything the stage is told.
#[derive(Debug, Clone)]
pub struct ResizeOptions {
    /// The renditions.
    pub variants: Vec<Variant>,
    /// Output format.
    pub format: OutputFormat,
    /// JPEG / WebP quality, 1–100.
    pub quality: u8,
    /// Progressive JPEG.
    pub progressive: bool,
    /// Drop EXIF and other metadata (the ICC profile is always kept).
    pub strip_metadata: bool,
    /// What transparent pixels become in a JPEG.
    pub background: [u8; 3],
    /// Resampling filter.
    pub filter: Filter,
    /// Largest accepted width × height, checked from the header before decoding.
    pub max_pixels: u64,
    /// Largest accepted file.
    pub max_input_bytes: u64,
}

/// Default `max_pixels`: 100 MP.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;
/// Default `max_input_bytes`: 64 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 64 << 20;

impl Default for ResizeOptions {
    fn default() -> Self {
        ResizeOptions {
            variants: Vec::new(),
            format: OutputFormat::Same,
            quality: 80,
            progressive: false,
            strip_metadata: true,
            background: [255, 255, 255],
            filter: Filter::Lanczos3,
            max_pixels: DEFAULT_MAX_PIXELS,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
        }
    }
}

/// One encoded rendition.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// The variant's name.
    pub variant: String,
    /// Pixels across, upright.
    pub width: u32,
    /// Pixels down, upright.
    pub height: u32,
    /// What it is encoded as.
    pub format: ImageKind,
    /// The encoded file.
    pub bytes: Vec<u8>,
}

/// What was read from a source besides its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceInfo {
    /// The detected format.
    pub kind: ImageKind,
    /// Stored width (before orientation).
    pub width: u32,
    /// Stored height.
    pub height: u32,
    /// The EXIF orientation, 1–8.
    pub orientation: u8,
}

/// Decoded pixels: 1 (grey), 3 (RGB) or 4 (RGBA) 8-bit channels.
struct Pixels {
    width: u32,
    height: u32,
    channels: u8,
    data: Vec<u8>,
}

/// The renditions of one image file, or why it cannot be made into them.
pub fn renditions(
    input: &[u8],
    opts: &ResizeOptions,
) -> Result<(SourceInfo, Vec<Rendition>), String> {
    if input.len() as u64 > opts.max_input_bytes {
        return Err(format!(
            "the file is {} bytes, over max_input_bytes ({})",
            input.len(),
            opts.max_input_bytes
        ));
    }
    let kind = ImageKind::detect(input).ok_or_else(|| {
        "not an image this stage reads (JPEG, PNG, GIF, WebP, TIFF or BMP, by content)".to_string()
    })?;
    let (info, pixels, icc, exif) = match kind {
        ImageKind::Jpeg => decode_jpeg(input, opts)?,
        _ => decode_other(input, kind, opts)?,
    };
    let out = opts.format.for_source(kind);
    let exif = exif.filter(|_| !opts.strip_metadata && out == ImageKind::Jpeg);
    let made: Result<Vec<Rendition>, String> = opts
        .variants
        .par_iter()
        .map(|v| {
            render(
                &pixels,
                &info,
                v,
                out,
                icc.as_deref(),
                exif.as_deref(),
                opts,
            )
        })
        .collect();
    Ok((info, made?))
}

/// Width and height a variant is made at, upright, from an upright `w × h` source; and whether
/// the source is cropped (cover).
pub fn target_size(w: u32, h: u32, v: &Variant) -> (u32, u32) {
    let (w, h) = (w.max(1) as f64, h.max(1) as f64);
    let round = |x: f64| (x.round() as u32).max(1);
    match (v.width, v.height) {
        (None, None) => (round(w), round(h)),
        (Some(bw), None) => {
            let s = bw as f64 / w;
            let s = if v.fit == Fit::Inside { s.min(1.0) } else { s };
            (round(w * s), round(h * s))
        }
        (None, Some(bh)) => {
            let s = bh as f64 / h;
            let s = if v.fit == Fit::Inside { s.min(1.0) } else { s };
            (round(w * s), round(h * s))
        }
        (Some(bw), Some(bh)) => match v.fit {
            Fit::Fill | Fit::Cover => (bw.max(1), bh.max(1)),
            Fit::Contain | Fit::Inside => {
                let s = (bw as f64 / w).min(bh as f64 / h);
                let s = if v.fit == Fit::Inside { s.min(1.0) } else { s };
                (round(w * s), round(h * s))
            }
        },
    }
}

/// Whether an EXIF orientation swaps width and height.
fn transposes(orientation: u8) -> bool {
    orientation >= 5
}

fn check_pixels(w: u32, h: u32, opts: &ResizeOptions) -> Result<(), String> {
    if w == 0 || h == 0 {
        return Err(format!("the image header says {w} × {h} pixels"));
    }
    let px = w as u64 * h as u64;
    if px > opts.max_pixels {
        return Err(format!(
            "the image is {w} × {h} = {px} pixels, over max_pixels ({}); refused before decoding",
            opts.max_pixels
        ));
    }
    Ok(())
}

/// The largest scale any variant needs from an upright `w × h` source (1.0: full size).
fn needed_scale(w: u32, h: u32, opts: &ResizeOptions) -> f64 {
    opts.variants
        .iter()
        .map(|v| {
            let (tw, th) = target_size(w, h, v);
            (tw as f64 / w.max(1) as f64).max(th as f64 / h.max(1) as f64)
        })
        .fold(0.0, f64::max)
}

type Decoded = (SourceInfo, Pixels, Option<Vec<u8>>, Option<Vec<u8>>);

fn decode_jpeg(input: &[u8], opts: &ResizeOptions) -> Result<Decoded, String> {
    let bad = |e: jpeg_decoder::Error| format!("corrupt or unsupported JPEG: {e}");
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(input));
    d.read_info().map_err(bad)?;
    let info = d
        .info()
        .ok_or_else(|| "corrupt JPEG: no frame header".to_string())?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    check_pixels(w, h, opts)?;
    let exif = d.exif_data().map(<[u8]>::to_vec);
    let orientation = exif
        .as_deref()
        .and_then(Orientation::from_exif_chunk)
        .map_or(1, Orientation::to_exif);
    let icc = d.icc_profile();
    // Shrink on decode: the smallest 1/2, 1/4, 1/8 reduction still at least as large as the
    // largest variant needs (in stored orientation).
    let (uw, uh) = if transposes(orientation) {
        (h, w)
    } else {
        (w, h)
    };
    let scale = needed_scale(uw, uh, opts);
    if scale < 1.0 && !opts.variants.is_empty() {
        let rw = ((w as f64 * scale).ceil() as u32).clamp(1, w);
        let rh = ((h as f64 * scale).ceil() as u32).clamp(1, h);
        d.scale(rw as u16, rh as u16).map_err(bad)?;
    }
    d.set_max_decoding_buffer_size(
        usize::try_from(opts.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX),
    );
    let data = d.decode().map_err(bad)?;
    let info = d
        .info()
        .ok_or_else(|| "corrupt JPEG: no frame header".to_string())?;
    let (dw, dh) = (u32::from(info.width), u32::from(info.height));
    let (channels, data) = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => (1, data),
        jpeg_decoder::PixelFormat::L16 => (1, data.chunks_exact(2).map(|p| p[0]).collect()),
        jpeg_decoder::PixelFormat::RGB24 => (3, data),
        jpeg_decoder::PixelFormat::CMYK32 => (3, cmyk_to_rgb(&data)),
    };
    let pixels = Pixels {
        width: dw,
        height: dh,
        channels,
        data,
    };
    if pixels.data.len() < dw as usize * dh as usize * pixels.channels as usize {
        return Err("corrupt JPEG: fewer pixels than its header says".into());
    }
    Ok((
        SourceInfo {
            kind: ImageKind::Jpeg,
            width: w,
            height: h,
            orientation,
        },
        pixels,
        icc,
        exif,
    ))
}

/// CMYK (and YCCK, which the decoder turns into CMYK) as Adobe writes it → RGB.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let k = 255 - u32::from(p[3]);
        for &c in &p[..3] {
            out.push(((255 - u32::from(c)) * k / 255) as u8);
        }
    }
    out
}

fn decode_other(input: &[u8], kind: ImageKind, opts: &ResizeOptions) -> Result<Decoded, String> {
    let format = match kind {
        ImageKind::Png => image::ImageFormat::Png,
        ImageKind::Gif => image::ImageFormat::Gif,
        ImageKind::Webp => image::ImageFormat::WebP,
        ImageKind::Tiff => image::ImageFormat::Tiff,
        ImageKind::Bmp => image::ImageFormat::Bmp,
        ImageKind::Jpeg => image::ImageFormat::Jpeg,
    };
    let bad = |e: image::ImageError| {
        format!("corrupt or unsupported {}: {e}", kind.name().to_uppercase())
    };
    let mut reader = ImageReader::new(Cursor::new(input));
    reader.set_format(format);
    let mut limits = image::Limits::default();
    // Decoders allocate the output and their own buffers: allow 8 bytes a pixel (16-bit RGBA).
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(8));
    reader.limits(limits);
    let mut d = reader.into_decoder().map_err(bad)?;
    let (w, h) = d.dimensions();
    check_pixels(w, h, opts)?;
    let orientation = d.orientation().map_or(1, Orientation::to_exif);
    let icc = d.icc_profile().ok().flatten();
    let exif = d.exif_metadata().ok().flatten();
    let img = DynamicImage::from_decoder(d).map_err(bad)?;
    let has_alpha = img.color().has_alpha();
    let grey = !img.color().has_color();
    let (channels, data) = match (grey, has_alpha) {
        (true, false) => (1, img.into_luma8().into_raw()),
        (_, true) => (4, img.into_rgba8().into_raw()),
        (false, false) => (3, img.into_rgb8().into_raw()),
    };
    let pixels = Pixels {
        width: w,
        height: h,
        channels,
        data,
    };
    Ok((
        SourceInfo {
            kind,
            width: w,
            height: h,
            orientation,
        },
        pixels,
        icc,
        exif,
    ))
}

/// `src` resampled to `sw` × `sh` with fast_image_resize's typed entry point, for the three pixel
/// layouts decoded here. Its untyped entry point dispatches over all 13 layouts it knows, so every
/// one of them is compiled in (about 3 MB of the binary); the typed one keeps only these.
fn resample<P: fr::PixelTrait>(
    src: &Pixels,
    sw: u32,
    sh: u32,
    o: &fr::ResizeOptions,
) -> Result<Vec<u8>, String> {
    let view = fr::images::TypedImageRef::<P>::from_buffer(src.width, src.height, &src.data)
        .map_err(|e| format!("internal: pixel buffer: {e}"))?;
    let mut out = vec![0u8; sw as usize * sh as usize * P::size()];
    let mut dst = fr::images::TypedImage::<P>::from_buffer(sw, sh, &mut out)
        .map_err(|e| format!("internal: pixel buffer: {e}"))?;
    fr::Resizer::new()
        .resize_typed(&view, &mut dst, o)
        .map_err(|e| format!("resize to {sw} × {sh}: {e}"))?;
    Ok(out)
}

fn render(
    src: &Pixels,
    info: &SourceInfo,
    v: &Variant,
    out: ImageKind,
    icc: Option<&[u8]>,
    exif: Option<&[u8]>,
    opts: &ResizeOptions,
) -> Result<Rendition, String> {
    let t = transposes(info.orientation);
    // Sizes are decided upright (what the viewer sees), from the source's full size; the pixels
    // are resampled in stored orientation, then turned.
    let (uw, uh) = if t {
        (info.height, info.width)
    } else {
        (info.width, info.height)
    };
    let (tw, th) = target_size(uw, uh, v);
    if tw as u64 * th as u64 > opts.max_pixels {
        return Err(format!(
            "variant `{}` would be {tw} × {th} pixels, over max_pixels ({})",
            v.name, opts.max_pixels
        ));
    }
    let (sw, sh) = if t { (th, tw) } else { (tw, th) };
    let resized = if (sw, sh) == (src.width, src.height) {
        src.data.clone()
    } else {
        let mut o = fr::ResizeOptions::new().resize_alg(opts.filter.alg());
        if v.fit == Fit::Cover {
            o = o.fit_into_destination(Some((0.5, 0.5)));
        }
        match src.channels {
            1 => resample::<fr::pixels::U8>(src, sw, sh, &o)?,
            3 => resample::<fr::pixels::U8x3>(src, sw, sh, &o)?,
            _ => resample::<fr::pixels::U8x4>(src, sw, sh, &o)?,
        }
    };
    let (data, width, height) = orient(resized, sw, sh, src.channels, info.orientation)?;
    let bytes = encode(&data, width, height, src.channels, out, icc, exif, opts)?;
    Ok(Rendition {
        variant: v.name.clone(),
        width,
        height,
        format: out,
        bytes,
    })
}

/// Pixels turned upright by an EXIF orientation.
fn orient(
    data: Vec<u8>,
    w: u32,
    h: u32,
    channels: u8,
    orientation: u8,
) -> Result<(Vec<u8>, u32, u32), String> {
    let Some(o) = Orientation::from_exif(orientation).filter(|o| *o != Orientation::NoTransforms)
    else {
        return Ok((data, w, h));
    };
    let bad = || "internal: pixel buffer size".to_string();
    let mut img = match channels {
        1 => DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, data).ok_or_else(bad)?),
        3 => DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, data).ok_or_else(bad)?),
        _ => DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, data).ok_or_else(bad)?),
    };
    img.apply_orientation(o);
    let (w, h) = (img.width(), img.height());
    Ok((img.into_bytes(), w, h))
}

#[allow(clippy::too_many_arguments)]
fn encode(
    data: &[u8],
    w: u32,
    h: u32,
    channels: u8,
    out: ImageKind,
    icc: Option<&[u8]>,
    exif: Option<&[u8]>,
    opts: &ResizeOptions,
) -> Result<Vec<u8>, String> {
    match out {
        ImageKind::Jpeg => {
            let (w16, h16) = match (u16::try_from(w), u16::try_from(h)) {
                (Ok(a), Ok(b)) if a < 65500 && b < 65500 => (a, b),
                _ => return Err(format!("{w} × {h} is too large for JPEG")),
            };
            let flat;
            let (pixels, color) = match channels {
                1 => (data, jpeg_encoder::ColorType::Luma),
                3 => (data, jpeg_encoder::ColorType::Rgb),
                _ => {
                    flat = flatten(data, opts.background);
                    (flat.as_slice(), jpeg_encoder::ColorType::Rgb)
                }
            };
            let mut buf = Vec::with_capacity(data.len() / 8 + 1024);
            let mut e = jpeg_encoder::Encoder::new(&mut buf, opts.quality.clamp(1, 100));
            e.set_progressive(opts.progressive);
            let err = |e: jpeg_encoder::EncodingError| format!("JPEG encode: {e}");
            if let Some(icc) = icc {
                e.add_icc_profile(icc).map_err(err)?;
            }
            if let Some(exif) = exif {
                let mut seg = b"Exif\0\0".to_vec();
                seg.extend_from_slice(exif);
                // The pixels are upright now: a viewer must not turn them again.
                let _ = Orientation::remove_from_exif_chunk(&mut seg[6..]);
                if seg.len() <= 65533 {
                    e.add_app_segment(1, seg).map_err(err)?;
                }
            }
            e.encode(pixels, w16, h16, color).map_err(err)?;
            Ok(buf)
        }
        ImageKind::Png => {
            use image::ImageEncoder;
            let mut buf = Vec::new();
            let mut e = image::codecs::png::PngEncoder::new_with_quality(
                &mut buf,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            );
            if let Some(icc) = icc {
                // A profile the encoder will not take is dropped, not fatal.
                let _ = e.set_icc_profile(icc.to_vec());
            }
            let color = match channels {
                1 => image::ExtendedColorType::L8,
                3 => image::ExtendedColorType::Rgb8,
                _ => image::ExtendedColorType::Rgba8,
            };
            e.write_image(data, w, h, color)
                .map_err(|e| format!("PNG encode: {e}"))?;
            Ok(buf)
        }
        ImageKind::Webp => {
            let rgb;
            let enc = match channels {
                1 => {
                    rgb = data.iter().flat_map(|&g| [g, g, g]).collect::<Vec<u8>>();
                    webp::Encoder::from_rgb(&rgb, w, h)
                }
                3 => webp::Encoder::from_rgb(data, w, h),
                _ => webp::Encoder::from_rgba(data, w, h),
            };
            let mem = enc
                .encode_simple(false, f32::from(opts.quality.clamp(1, 100)))
                .map_err(|e| format!("WebP encode: {e:?}"))?;
            Ok(mem.to_vec())
        }
        other => Err(format!("cannot write {}", other.name())),
    }
}

/// RGBA over a solid background → RGB.
fn flatten(rgba: &[u8], bg: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for p in rgba.chunks_exact(4) {
        let a = u32::from(p[3]);
        for c in 0..3 {
            out.push(((u32::from(p[c]) * a + u32::from(bg[c]) * (255 - a) + 127) / 255) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(w: Option<u32>, h: Option<u32>, fit: Fit) -> Variant {
        Variant {
            name: "x".into(),
            width: w,
            height: h,
            fit,
        }
    }

    #[test]
    fn sizes_per_fit_mode() {
        // A 4000 × 3000 source.
        let s = |w, h, f| target_size(4000, 3000, &v(w, h, f));
        assert_eq!(s(Some(1024), None, Fit::Contain), (1024, 768));
        assert_eq!(s(None, Some(300), Fit::Contain), (400, 300));
        assert_eq!(s(Some(200), Some(200), Fit::Contain), (200, 150));
        assert_eq!(s(Some(200), Some(200), Fit::Cover), (200, 200));
        assert_eq!(s(Some(200), Some(100), Fit::Fill), (200, 100));
        assert_eq!(s(Some(8000), None, Fit::Inside), (4000, 3000));
        assert_eq!(s(Some(8000), None, Fit::Contain), (8000, 6000));
        assert_eq!(s(Some(8000), Some(100), Fit::Inside), (133, 100));
        // A 1 × 20000 strip never collapses to zero.
        assert_eq!(
            target_size(1, 20000, &v(Some(128), None, Fit::Contain)),
            (128, 2_560_000)
        );
        assert_eq!(
            target_size(1, 20000, &v(Some(128), Some(128), Fit::Contain)),
            (1, 128)
        );
    }

    #[test]
    fn flattens_alpha_onto_the_background() {
        assert_eq!(
            flatten(&[10, 20, 30, 0, 10, 20, 30, 255], [255, 0, 0]),
            [255, 0, 0, 10, 20, 30]
        );
    }
}
