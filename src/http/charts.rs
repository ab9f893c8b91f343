//! The dashboard's charts: inline SVG drawn by plotters (its SVG backend, writing to a
//! string). Labels are the caller's text; plotters escapes them as SVG text.

use plotters::prelude::*;

/// A bar chart: one bar per label, heights `values`, the y axis up to `y_max` (at least
/// the highest bar) and named `y_label`. `None` if plotters could not draw it (the page
/// then shows the table alone).
pub fn bars(
    title: &str,
    labels: &[String],
    values: &[f64],
    y_max: f64,
    y_label: &str,
) -> Option<String> {
    let n = labels.len().min(values.len());
    if n == 0 {
        return None;
    }
    let top = values.iter().copied().fold(y_max, f64::max).max(1.0);
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (640, 260)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .build_cartesian_2d((0..n).into_segmented(), 0f64..top * 1.05)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(24))
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) if *i < n => labels[*i].clone(),
                _ => String::new(),
            })
            .y_desc(y_label)
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(RGBColor(243, 119, 38).filled())
                .margin(6)
                .data(values.iter().take(n).enumerate().map(|(i, v)| (i, *v))),
        )?;
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => Some(svg),
        Err(e) => {
            tracing::warn!(error = %e, chart = title, "could not draw a chart");
            None
        }
    }
}

/// How many of `fractions` fall in each tenth of [0, 1] (1.0 in the last).
pub fn tenths(fractions: &[f64]) -> [f64; 10] {
    let mut bins = [0.0; 10];
    for f in fractions {
        let i = ((f.clamp(0.0, 1.0) * 10.0).floor() as usize).min(9);
        bins[i] += 1.0;
    }
    bins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_fall_in_their_tenth_and_full_marks_in_the_last() {
        let b = tenths(&[0.0, 0.05, 0.6, 0.99, 1.0, 1.0]);
        assert_eq!(b[0], 2.0);
        assert_eq!(b[6], 1.0);
        assert_eq!(b[9], 3.0);
        assert_eq!(b.iter().sum::<f64>(), 6.0);
    }

    #[test]
    fn a_chart_is_svg_with_its_bars_and_escaped_labels() {
        let svg = bars(
            "Pass rate",
            &["q1".into(), "<q2>".into()],
            &[100.0, 40.0],
            100.0,
            "%",
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Pass rate"));
        assert!(svg.contains("&lt;q2&gt;") && !svg.contains("<q2>"), "{svg}");
        // Two filled bars.
        assert!(svg.matches("<rect").count() >= 3, "{svg}");
        assert_eq!(bars("empty", &[], &[], 1.0, ""), None);
    }
}
