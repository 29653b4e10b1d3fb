//! Chart geometry: turns a series of values into the shapes of an SVG drawing (rectangles, lines and
//! labels with their coordinates). The markup itself is written by the `svg` macro of the templates, so this
//! module is plain arithmetic that unit tests can check.

use serde::Serialize;

/// A drawing: a `viewBox` of `width` x `height` user units, scaled to the page's width by CSS.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Svg {
    /// Identifies the chart in the page (`data-chart`).
    pub id: String,
    /// The accessible name (`<title>` and `aria-label`).
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub rects: Vec<Rect>,
    pub lines: Vec<Line>,
    pub texts: Vec<Text>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// CSS class: `bar`, `bar now` (the period the page is about), `bar outlier`, `track`.
    pub class: String,
    /// Tooltip.
    pub tip: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Line {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
    pub class: &'static str,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Text {
    pub x: f64,
    pub y: f64,
    /// `start`, `middle` or `end`.
    pub anchor: &'static str,
    pub class: &'static str,
    pub text: String,
}

/// One column of a column chart: `value` `None` is "no data" (drawn as a dashed slot, not as zero).
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    pub label: String,
    pub value: Option<f64>,
    /// The value as the page writes it (tooltip).
    pub text: String,
    pub highlight: bool,
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The smallest "nice" number (1, 2 or 5 times a power of ten) at or above `v`, for axis maxima.
pub fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|&n| n >= v * (1.0 - 1e-12)).unwrap_or(10.0 * magnitude)
}

/// A column chart of `slots`, with a labelled y axis from 0 to a nice maximum (`format` writes the tick
/// values).
pub fn columns(id: &str, title: &str, slots: &[Slot], format: &dyn Fn(f64) -> String) -> Svg {
    const W: f64 = 720.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 24.0;
    let plot_h = H - TOP - BOTTOM;
    let max = nice_ceiling(slots.iter().filter_map(|s| s.value).fold(0.0, f64::max));
    let mut svg = Svg {
        id: id.to_string(),
        title: title.to_string(),
        width: W as u32,
        height: H as u32,
        rects: Vec::new(),
        lines: Vec::new(),
        texts: Vec::new(),
    };
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = round1(TOP + plot_h - plot_h * f64::from(i) / 4.0);
        svg.lines.push(Line { x1: LEFT, y1: y, x2: W - RIGHT, y2: y, class: if i == 0 { "axis" } else { "grid" } });
        svg.texts.push(Text { x: LEFT - 6.0, y: y + 4.0, anchor: "end", class: "tick", text: format(v) });
    }
    let n = slots.len().max(1) as f64;
    let step = (W - LEFT - RIGHT) / n;
    let bar_w = round1((step * 0.7).max(1.0));
    // A label every k-th slot so that they never overlap (about 28 units per label).
    let every = ((28.0 / step).ceil() as usize).max(1);
    for (i, slot) in slots.iter().enumerate() {
        let x = LEFT + step * i as f64 + (step - bar_w) / 2.0;
        match slot.value {
            Some(v) => {
                let h = if max > 0.0 { (v.max(0.0) / max) * plot_h } else { 0.0 };
                let h = if v > 0.0 { h.max(1.0) } else { h };
                svg.rects.push(Rect {
                    x: round1(x),
                    y: round1(TOP + plot_h - h),
                    w: bar_w,
                    h: round1(h),
                    class: if slot.highlight { "bar now".into() } else { "bar".into() },
                    tip: format!("{}: {}", slot.label, slot.text),
                });
            }
            None => svg.rects.push(Rect {
                x: round1(x),
                y: TOP,
                w: bar_w,
                h: round1(plot_h),
                class: "missing".into(),
                tip: format!("{}: no data", slot.label),
            }),
        }
        if i % every == 0 || slot.highlight {
            svg.texts.push(Text {
                x: round1(x + bar_w / 2.0),
                y: H - 8.0,
                anchor: "middle",
                class: if slot.highlight { "label now" } else { "label" },
                text: slot.label.clone(),
            });
        }
    }
    svg
}

/// One bar of a bar chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// What is written after the bar (value and share).
    pub text: String,
}

/// A horizontal bar chart, one row per bar, longest bar = largest value.
pub fn bars(id: &str, title: &str, bars: &[Bar]) -> Svg {
    const W: f64 = 360.0;
    const ROW: f64 = 22.0;
    const LABEL: f64 = 90.0;
    const TEXT: f64 = 120.0;
    let height = (ROW * bars.len().max(1) as f64 + 8.0).round();
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let span = W - LABEL - TEXT;
    let mut svg = Svg {
        id: id.to_string(),
        title: title.to_string(),
        width: W as u32,
        height: height as u32,
        rects: Vec::new(),
        lines: Vec::new(),
        texts: Vec::new(),
    };
    for (i, bar) in bars.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let w = if max > 0.0 {
            (bar.value.max(0.0) / max * span).max(if bar.value > 0.0 { 1.0 } else { 0.0 })
        } else {
            0.0
        };
        svg.rects.push(Rect {
            x: LABEL,
            y: y + 3.0,
            w: round1(span),
            h: ROW - 8.0,
            class: "track".into(),
            tip: String::new(),
        });
        svg.rects.push(Rect {
            x: LABEL,
            y: y + 3.0,
            w: round1(w),
            h: ROW - 8.0,
            class: "bar".into(),
            tip: format!("{}: {}", bar.label, bar.text),
        });
        svg.texts.push(Text { x: LABEL - 6.0, y: y + 15.0, anchor: "end", class: "label", text: bar.label.clone() });
        svg.texts.push(Text {
            x: LABEL + span + 6.0,
            y: y + 15.0,
            anchor: "start",
            class: "value",
            text: bar.text.clone(),
        });
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        for (v, want) in [(0.0, 1.0), (0.7, 1.0), (1.0, 1.0), (1.2, 2.0), (3.0, 5.0), (7.0, 10.0), (12_345.0, 20_000.0)]
        {
            assert_eq!(nice_ceiling(v), want, "{v}");
        }
    }

    #[test]
    fn columns_scale_to_the_largest_value_and_mark_missing_slots() {
        let slot = |label: &str, value: Option<f64>, highlight| Slot {
            label: label.into(),
            value,
            text: format!("{value:?}"),
            highlight,
        };
        let svg = columns(
            "c",
            "t",
            &[slot("a", Some(50.0), false), slot("b", None, false), slot("c", Some(100.0), true)],
            &|v| format!("{v}"),
        );
        assert_eq!(svg.rects.len(), 3);
        let (a, b, c) = (&svg.rects[0], &svg.rects[1], &svg.rects[2]);
        assert_eq!(c.h, 166.0, "the largest value reaches the nice maximum (100)");
        assert_eq!(a.h, 83.0);
        assert_eq!(a.y + a.h, c.y + c.h, "bars stand on one baseline");
        assert_eq!(b.class, "missing");
        assert_eq!(c.class, "bar now");
        assert_eq!(svg.texts.iter().filter(|t| t.class == "tick").count(), 5);
        assert_eq!(svg.texts.last().unwrap().text, "c");
    }

    #[test]
    fn bars_are_proportional() {
        let bar = |label: &str, value| Bar { label: label.into(), value, text: String::new() };
        let svg = bars("b", "t", &[bar("x", 10.0), bar("y", 5.0), bar("z", 0.0)]);
        let widths: Vec<f64> = svg.rects.iter().filter(|r| r.class == "bar").map(|r| r.w).collect();
        assert_eq!(widths, [150.0, 75.0, 0.0]);
        assert_eq!(svg.height, 74);
    }
}
