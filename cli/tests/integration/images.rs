//! The resize stage end to end through `sluice replay`: the committed awkward images
//! (fixtures/images, made by fixtures/scripts/make_images.py) become renditions with exact sizes,
//! upright, decodable by a second library (the `image` crate's own decoders; Sluice encodes JPEG
//! with `jpeg-encoder` and decodes it with `jpeg-decoder`), and bad files become rejects.

use std::path::Path;

use crate::support::{Scratch, fixtures, ndjson_values, parquet_values, sluice, stderr};

const CONFIG: &str = r##"
name = "thumbs"

[input]
format = "image"

[[stage]]
type = "resize"
format = "png"
max_pixels = 2_000_000
variants = [
  { name = "w32", width = 32 },
  { name = "box", width = 20, height = 20, fit = "cover" },
  { name = "fill", width = 30, height = 10, fit = "fill" },
  { name = "inside", width = 1000, fit = "inside" },
]

[output]
uri = "s3://renditions/"

[rejects]
uri = "s3://renditions/_rejects/"
"##;

fn decode(path: &Path) -> image::DynamicImage {
    image::ImageReader::open(path)
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .decode()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The named fixture images as `photos/in/{name}`, and an event naming them.
fn setup(config: &str, names: &[&str]) -> Scratch {
    let objects: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|n| {
            let bytes = std::fs::read(fixtures().join("images").join(n)).unwrap();
            (format!("in/{n}"), bytes)
        })
        .collect();
    Scratch::new(config, "photos", &objects)
}

fn rgb(img: &image::DynamicImage, x: u32, y: u32) -> [u8; 3] {
    let p = img.to_rgb8().get_pixel(x, y).0;
    [p[0], p[1], p[2]]
}

fn is_red(p: [u8; 3]) -> bool {
    p[0] > 150 && p[1] < 90 && p[2] < 90
}

fn is_green(p: [u8; 3]) -> bool {
    p[1] > 150 && p[0] < 90 && p[2] < 90
}

#[test]
fn every_exif_orientation_comes_out_upright_at_exact_sizes() {
    let names: Vec<String> = (1..=8).map(|o| format!("orient-{o}.jpg")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let run = setup(CONFIG, &names);
    let store = &run.store;
    let s = run.replay();
    assert_eq!(s["objects"], 8, "{s}");
    assert_eq!(s["rejected"], 0, "{s}");
    assert_eq!(s["records_out"], 32, "{s}");
    let out = store.join("renditions");
    for o in 1..=8 {
        // Upright the picture is 48 × 64 with a red top-left corner and a green bottom edge.
        let w32 = decode(&out.join(format!("w32/in/orient-{o}.png")));
        assert_eq!((w32.width(), w32.height()), (32, 43), "orientation {o}");
        assert!(
            is_red(rgb(&w32, 2, 2)),
            "orientation {o}: {:?}",
            rgb(&w32, 2, 2)
        );
        assert!(
            is_green(rgb(&w32, 16, 42)),
            "orientation {o}: {:?}",
            rgb(&w32, 16, 42)
        );
        assert!(!is_red(rgb(&w32, 29, 2)), "orientation {o}");
        let boxed = decode(&out.join(format!("box/in/orient-{o}.png")));
        assert_eq!((boxed.width(), boxed.height()), (20, 20), "orientation {o}");
        let fill = decode(&out.join(format!("fill/in/orient-{o}.png")));
        assert_eq!((fill.width(), fill.height()), (30, 10), "orientation {o}");
        // `inside` never upscales.
        let inside = decode(&out.join(format!("inside/in/orient-{o}.png")));
        assert_eq!(
            (inside.width(), inside.height()),
            (48, 64),
            "orientation {o}"
        );
    }
}

#[test]
fn every_input_kind_is_read_and_bad_files_are_rejects_with_reasons() {
    let good = [
        ("cmyk.jpg", (480, 640)),
        ("progressive.jpg", (480, 640)),
        ("rgba16.png", (40, 30)),
        ("palette.png", (480, 640)),
        ("animated.gif", (40, 30)),
        ("lossy.webp", (480, 640)),
        ("lossless.webp", (480, 640)),
        ("photo.tif", (60, 80)),
        ("photo.bmp", (60, 80)),
    ];
    let bad = [
        ("truncated.jpg", "JPEG"),
        (
            "bomb.png",
            "over max_pixels (2000000); refused before decoding",
        ),
        ("not-an-image.jpg", "not an image"),
        // 32 wide is 32 × 640 000 pixels: over the limit, so refused, not allocated.
        (
            "strip.png",
            "variant `w32` would be 32 × 640000 pixels, over max_pixels",
        ),
    ];
    let names: Vec<&str> = good
        .iter()
        .map(|g| g.0)
        .chain(bad.iter().map(|b| b.0))
        .collect();
    let run = setup(CONFIG, &names);
    let store = &run.store;
    let s = run.replay();
    // The bad files are rejects; every object of the event still succeeds.
    assert_eq!(s["objects"], names.len(), "{s}");
    assert_eq!(s["rejected"], bad.len(), "{s}");
    assert!(s["error"].is_null(), "{s}");
    assert_eq!(s["batch_item_failures"], serde_json::json!([]), "{s}");
    let out = store.join("renditions");
    for (name, (w, h)) in good {
        let stem = name.rsplit_once('.').unwrap().0;
        let inside = decode(&out.join(format!("inside/in/{stem}.png")));
        assert_eq!((inside.width(), inside.height()), (w, h), "{name}");
        let w32 = decode(&out.join(format!("w32/in/{stem}.png")));
        let want_h = ((h as f64) * 32.0 / w as f64).round() as u32;
        assert_eq!((w32.width(), w32.height()), (32, want_h), "{name}");
    }
    // CMYK is converted to the right colours: the red corner stays red, the blue stays blue.
    let cmyk = decode(&out.join("w32/in/cmyk.png"));
    assert!(is_red(rgb(&cmyk, 3, 3)), "{:?}", rgb(&cmyk, 3, 3));
    let blue = rgb(&cmyk, 25, 20);
    assert!(blue[2] > 150 && blue[0] < 80, "{blue:?}");
    // 16-bit RGBA keeps its alpha: opaque at the top, clear at the bottom.
    let rgba = decode(&out.join("inside/in/rgba16.png")).to_rgba8();
    assert_eq!(rgba.get_pixel(0, 0).0[3], 255);
    assert!(rgba.get_pixel(0, 29).0[3] < 8);
    // The rejects say why, one per bad file.
    let rejects = ndjson_values(&out.join("_rejects"));
    assert_eq!(rejects.len(), bad.len(), "{rejects:?}");
    for (name, why) in bad {
        let r = rejects
            .iter()
            .find(|r| r["source"].as_str().is_some_and(|s| s.ends_with(name)))
            .unwrap_or_else(|| panic!("no reject for {name}: {rejects:?}"));
        let reason = r["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{name}: {reason}");
        assert!(!out.join(format!("w32/in/{name}")).exists());
    }
}

#[test]
fn jpeg_and_webp_outputs_keep_names_types_and_decode() {
    let config = CONFIG.replace(
        "format = \"png\"",
        "format = \"same\"\nprogressive = true\nquality = 70",
    );
    let run = setup(&config, &["orient-6.jpg", "lossy.webp", "rgba16.png"]);
    let store = &run.store;
    let s = run.replay();
    assert_eq!(s["rejected"], 0, "{s}");
    let out = store.join("renditions");
    let jpg = decode(&out.join("w32/in/orient-6.jpg"));
    assert_eq!((jpg.width(), jpg.height()), (32, 43));
    assert!(is_red(rgb(&jpg, 2, 2)), "{:?}", rgb(&jpg, 2, 2));
    let bytes = std::fs::read(out.join("w32/in/orient-6.jpg")).unwrap();
    // Progressive (SOF2), and the orientation tag is gone with the rest of the EXIF.
    assert!(bytes.windows(2).any(|w| w == [0xff, 0xc2]));
    assert!(!bytes.windows(4).any(|w| w == b"Exif"));
    let webp = decode(&out.join("box/in/lossy.webp"));
    assert_eq!((webp.width(), webp.height()), (20, 20));
    assert_eq!(
        image::ImageFormat::from_path(out.join("box/in/lossy.webp")).unwrap(),
        image::ImageFormat::WebP
    );
    assert_eq!(
        decode(&out.join("fill/in/rgba16.png"))
            .color()
            .channel_count(),
        4
    );
}

#[test]
fn bad_resize_configs_name_the_key() {
    for (bad, key, says) in [
        (
            "fit = \"cover\" }",
            "stage[0].variants[0].fit",
            "need both width and height",
        ),
        (
            "fit = \"squash\" }",
            "stage[0].variants[0].fit",
            "not a fit",
        ),
    ] {
        let text = CONFIG.replace(
            "{ name = \"w32\", width = 32 }",
            &format!("{{ name = \"w32\", width = 32, {bad}"),
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pipeline.toml");
        std::fs::write(&cfg, text).unwrap();
        let o = sluice(&["validate", cfg.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(e.contains(key) && e.contains(says), "{e}");
    }
    let text = CONFIG.replace("format = \"image\"", "format = \"ndjson\"");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(&cfg, text).unwrap();
    let o = sluice(&["validate", cfg.to_str().unwrap()]);
    assert!(stderr(&o).contains("stage[0].type"), "{}", stderr(&o));
}

#[test]
fn an_index_stage_catalogs_each_image() {
    let config = CONFIG.replace("[output]", "[[stage]]\ntype = \"index\"\n\n[output]");
    let run = setup(&config, &["orient-6.jpg", "not-an-image.jpg"]);
    let store = &run.store;
    let s = run.replay();
    assert_eq!(s["rejected"], 1, "{s}");
    let folder = store.join("renditions/_index/objects");
    let mut rows = parquet_values(&folder);
    rows.sort_by_key(|r| r["key"].as_str().unwrap().to_string());
    assert_eq!(rows.len(), 2, "{rows:?}");
    let bad = &rows[0];
    assert_eq!(bad["key"], "in/not-an-image.jpg");
    assert_eq!(bad["rejected"], 1);
    assert!(bad["width"].is_null());
    assert_eq!(bad["content_type"], "text/plain");
    let photo = &rows[1];
    assert_eq!(photo["key"], "in/orient-6.jpg");
    assert_eq!(photo["content_type"], "image/jpeg");
    // Upright 48 × 64 (stored 64 × 48, turned by orientation 6), four renditions.
    assert_eq!(
        (
            &photo["width"],
            &photo["height"],
            &photo["orientation"],
            &photo["renditions"]
        ),
        (
            &serde_json::json!(48),
            &serde_json::json!(64),
            &serde_json::json!(6),
            &serde_json::json!(4)
        )
    );
    assert_eq!(photo["outputs"].as_array().unwrap().len(), 4);
    // No text column: the catalog only, no term index.
    assert!(!store.join("renditions/_index/terms").exists());
}
