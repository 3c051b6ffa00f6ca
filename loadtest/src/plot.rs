//! Line charts as PNG: a grid of panels sharing an x axis, each with one or more series (for
//! example yunshi and Janus against the number of viewers). Text is drawn with a TrueType font
//! found on the system (DejaVu or Liberation, which Chromium's Debian package brings).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

fn ensure_font() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = FONTS
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or_else(|| format!("no font for the plot; looked for {}", FONTS.join(", ")))?;
            // Registered once for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| "the font file is not valid".to_string())
        })
        .clone()
}

const COLOURS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189)];

pub fn write_png(path: &Path, title: &str, x_label: &str, panels: &[Panel]) -> Result<(), String> {
    ensure_font()?;
    let cols = if panels.len() > 1 { 2 } else { 1 };
    let rows = panels.len().div_ceil(cols).max(1);
    let size = (560 * cols as u32, 380 * rows as u32 + 40);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("plot: {e}");
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(e)?;
    for (panel, area) in panels.iter().zip(root.split_evenly((rows, cols))) {
        let xs = panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let x_max = xs.fold(1.0f64, f64::max);
        let y_max = ys.fold(0.0f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| if y_max >= 100.0 { format!("{y:.0}") } else { format!("{y:.1}") })
            .disable_x_mesh()
            .label_style(("sans-serif", 13))
            .light_line_style(RGBColor(245, 245, 245))
            .draw()
            .map_err(e)?;
        for (i, s) in panel.series.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(e)?
                .label(&s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled()))).map_err(e)?;
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_with_two_series() {
        let path = std::env::temp_dir().join(format!("loadtest-plot-{}.png", std::process::id()));
        let panels = vec![
            Panel {
                title: "packets/s".into(),
                series: vec![
                    Series { name: "a".into(), points: vec![(10.0, 100.0), (20.0, 210.0)] },
                    Series { name: "b".into(), points: vec![(10.0, 90.0), (20.0, 150.0)] },
                ],
            },
            Panel { title: "empty".into(), series: vec![] },
        ];
        write_png(&path, "test", "viewers", &panels).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 5_000, "{} bytes", bytes.len());
    }
}
