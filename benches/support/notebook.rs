//! A student notebook of a given size for the benchmarks, shaped like a Data 8 lab after
//! it was run: the demo notebook (its metadata and otter tests) followed by markdown
//! prose, code cells, their outputs as text and as pandas-style HTML tables, and a plot
//! (`image/png`). The plot's bytes are random (a PNG is compressed data, which random bytes
//! stand in for: neither compresses further); the text is drawn from a course's
//! vocabulary by `rand`'s `StdRng` with a fixed seed, so every run sends the same notebook. About a quarter of
//! the bytes are the plot. Earlier benchmarks padded the demo notebook with one long run
//! of `x`, which says nothing about what storing it costs once the store compresses.

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::{Value, json};

fn pick<'a>(rng: &mut StdRng, words: &[&'a str]) -> &'a str {
    words[rng.random_range(0..words.len())]
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "of",
    "to",
    "in",
    "and",
    "is",
    "that",
    "for",
    "we",
    "table",
    "column",
    "row",
    "rows",
    "value",
    "values",
    "array",
    "sample",
    "samples",
    "mean",
    "median",
    "standard",
    "deviation",
    "distribution",
    "histogram",
    "bins",
    "data",
    "dataset",
    "population",
    "probability",
    "chance",
    "simulation",
    "experiment",
    "hypothesis",
    "null",
    "alternative",
    "test",
    "statistic",
    "p-value",
    "observed",
    "expected",
    "random",
    "bootstrap",
    "confidence",
    "interval",
    "percentile",
    "regression",
    "line",
    "slope",
    "intercept",
    "correlation",
    "residual",
    "prediction",
    "error",
    "function",
    "argument",
    "return",
    "call",
    "each",
    "every",
    "number",
    "numbers",
    "count",
    "counts",
    "proportion",
    "total",
    "average",
    "variable",
    "variables",
    "name",
    "names",
    "question",
    "answer",
    "below",
    "above",
    "cell",
    "run",
    "code",
    "output",
    "result",
    "results",
    "compute",
    "calculate",
    "assign",
    "use",
    "using",
    "method",
    "methods",
    "group",
    "groups",
    "category",
    "pivot",
    "join",
    "where",
    "select",
    "sort",
    "take",
    "apply",
    "plot",
    "scatter",
    "bar",
    "chart",
    "axis",
    "label",
    "labels",
    "year",
    "years",
    "state",
    "states",
    "county",
    "income",
    "salary",
    "age",
    "height",
    "weight",
    "flight",
    "delay",
    "movie",
    "gross",
    "rating",
    "student",
    "score",
    "scores",
    "because",
    "should",
    "could",
    "would",
    "not",
    "more",
    "less",
    "than",
    "between",
    "which",
    "when",
    "how",
    "why",
    "what",
    "this",
    "these",
];

const IDENTS: &[&str] = &[
    "tbl",
    "movies",
    "flights",
    "salaries",
    "census",
    "births",
    "delays",
    "top",
    "sample",
    "stats",
    "means",
    "counts",
    "resampled",
    "observed",
    "simulated",
    "predictions",
    "residuals",
    "slope",
    "intercept",
    "r",
    "diffs",
    "props",
    "grouped",
    "joined",
    "summary",
];

const COLUMNS: &[&str] = &[
    "Year",
    "State",
    "Gross",
    "Rating",
    "Delay",
    "Salary",
    "Age",
    "Height",
    "Weight",
    "Count",
    "Income",
    "County",
    "Score",
    "Proportion",
];

const CALLS: &[&str] = &[
    "where({c:?}, are.above({n}))",
    "sort({c:?}, descending=True)",
    "column({c:?})",
    "select({c:?}, {c:?})",
    "group({c:?})",
    "pivot({c:?}, {c:?})",
    "take(np.arange({n}))",
    "apply(np.mean, {c:?})",
    "with_column({c:?}, np.ones({n}))",
];

fn sentence(rng: &mut StdRng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(pick(rng, WORDS));
    }
    s.push('.');
    s
}

fn number(rng: &mut StdRng) -> String {
    format!(
        "{}.{:04}",
        rng.random_range(0..1000),
        rng.random_range(0..10000)
    )
}

fn code_line(rng: &mut StdRng) -> String {
    let mut line = format!("{} = {}", pick(rng, IDENTS), pick(rng, IDENTS));
    for _ in 0..1 + rng.random_range(0..3) {
        let call = pick(rng, CALLS);
        let mut filled = String::new();
        let mut rest = call;
        while let Some(at) = rest.find('{') {
            filled.push_str(&rest[..at]);
            let end = rest[at..].find('}').unwrap() + at;
            match &rest[at..=end] {
                "{c:?}" => filled.push_str(&format!("{:?}", pick(rng, COLUMNS))),
                _ => filled.push_str(&rng.random_range(0..100).to_string()),
            }
            rest = &rest[end + 1..];
        }
        filled.push_str(rest);
        line.push('.');
        line.push_str(&filled);
    }
    line
}

/// An HTML table output as `datascience`/pandas render it, with its text form.
fn table_output(rng: &mut StdRng, n: usize) -> Value {
    let cols: Vec<&str> = (0..4).map(|_| pick(rng, COLUMNS)).collect();
    let mut html = String::from("<table border=\"1\" class=\"dataframe\">\n  <thead>\n    <tr>\n");
    let mut text = String::new();
    for c in &cols {
        html.push_str(&format!("      <th>{c}</th>\n"));
        text.push_str(&format!("{c:<12}"));
    }
    html.push_str("    </tr>\n  </thead>\n  <tbody>\n");
    text.push('\n');
    for _ in 0..10 {
        html.push_str("    <tr>\n");
        for _ in &cols {
            let v = number(rng);
            html.push_str(&format!("      <td>{v}</td>\n"));
            text.push_str(&format!("{v:<12}"));
        }
        html.push_str("    </tr>\n");
        text.push('\n');
    }
    html.push_str("  </tbody>\n</table>");
    json!({
        "output_type": "execute_result", "execution_count": n, "metadata": {},
        "data": { "text/html": [html], "text/plain": [text] }
    })
}

/// A plot: `bytes` random bytes as a base64 PNG.
fn plot_output(rng: &mut StdRng, bytes: usize) -> Value {
    use base64::Engine;
    let mut raw = vec![0u8; bytes];
    rng.fill_bytes(&mut raw);
    json!({
        "output_type": "display_data", "metadata": {},
        "data": {
            "image/png": base64::engine::general_purpose::STANDARD.encode(raw),
            "text/plain": ["<Figure size 600x400 with 1 Axes>"]
        }
    })
}

/// `base` (a notebook) grown to about `size` bytes of JSON.
pub fn grown_to(mut base: Value, size: usize) -> Value {
    let mut rng = StdRng::seed_from_u64(8);
    let plot_bytes = size / 4 * 3 / 4; // a quarter of the notebook, after base64
    let mut plotted = false;
    let mut n = 0;
    while base.to_string().len() < size {
        n += 1;
        let md = (0..3 + rng.random_range(0..4))
            .map(|_| {
                let words = 8 + rng.random_range(0..12);
                sentence(&mut rng, words)
            })
            .collect::<Vec<_>>()
            .join(" ");
        let code: Vec<String> = (0..2 + rng.random_range(0..5))
            .map(|_| code_line(&mut rng))
            .collect();
        let mut outputs = vec![table_output(&mut rng, n)];
        if !plotted && n >= 3 {
            outputs.push(plot_output(&mut rng, plot_bytes));
            plotted = true;
        }
        let cells = base["cells"].as_array_mut().expect("a notebook has cells");
        cells.push(json!({"cell_type": "markdown", "metadata": {}, "source": [md]}));
        cells.push(json!({
            "cell_type": "code", "execution_count": n, "metadata": {},
            "source": [code.join("\n")], "outputs": outputs
        }));
    }
    base
}
