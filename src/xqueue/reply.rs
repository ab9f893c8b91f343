//! The grader reply XQueue passes to edX: `{"correct", "score", "msg"}`.
//!
//! edX's LMS parses `msg` as XML (lxml) and shows "Invalid grader reply" for anything that
//! does not parse, so `msg` is a small HTML fragment of our own making: every piece of
//! text escaped, characters XML 1.0 cannot carry dropped. It holds what the student's page
//! shows and nothing more: the score, each question's score, the public tests' output;
//! never a hidden test's output (staff only) or the run's log.

use crate::db::submissions::QuestionScore;
use crate::db::xqueue::Due;

/// How the score is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreAs {
    /// A fraction in [0, 1] (edx-submissions multiplies it by the problem's points).
    Fraction,
    /// Points (a legacy xqueue's LMS takes `score` as points).
    Points,
}

/// The reply for a due answer, and the score in it.
pub fn reply(d: &Due, score_as: ScoreAs) -> (serde_json::Value, f64) {
    if let Some(why) = &d.refusal {
        let msg = format!(
            "<div class=\"otter-result\"><p>Your file could not be graded: {}</p><p>Score: 0</p></div>",
            escape(why)
        );
        return (
            serde_json::json!({"correct": false, "score": 0, "msg": msg}),
            0.0,
        );
    }
    let Some(g) = &d.grade else {
        // Grading ended without a grade (dead: it kept failing): a 0 with the reason.
        let why = d
            .message
            .clone()
            .unwrap_or_else(|| "grading did not finish".into());
        let msg = format!(
            "<div class=\"otter-result\"><p>Your notebook could not be graded: {}</p><p>Score: 0</p></div>",
            escape(&why)
        );
        return (
            serde_json::json!({"correct": false, "score": 0, "msg": msg}),
            0.0,
        );
    };
    let fraction = if g.fraction.is_finite() {
        g.fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let score = match score_as {
        ScoreAs::Fraction => fraction,
        ScoreAs::Points => g.score.clamp(0.0, g.max_score.max(0.0)),
    };
    let correct = g.max_score > 0.0 && g.score >= g.max_score;
    let questions: Vec<QuestionScore> = serde_json::from_str(&g.tests_json).unwrap_or_default();
    let mut msg = String::from("<div class=\"otter-result\">");
    msg.push_str(&format!(
        "<p>Score: {} / {}</p>",
        num(g.score),
        num(g.max_score)
    ));
    if let Some(m) = &g.message {
        msg.push_str(&format!("<p>{}</p>", escape(m)));
    }
    if !questions.is_empty() {
        msg.push_str("<ul>");
        for q in &questions {
            msg.push_str(&format!(
                "<li>{}: {} / {}</li>",
                escape(&q.name),
                num(q.score),
                num(q.max_score)
            ));
        }
        msg.push_str("</ul>");
    }
    if !g.public_feedback.trim().is_empty() {
        msg.push_str(&format!("<pre>{}</pre>", escape(&g.public_feedback)));
    }
    msg.push_str("</div>");
    (
        serde_json::json!({"correct": correct, "score": score, "msg": msg}),
        score,
    )
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

/// Text for XML: `& < > " '` escaped, characters XML 1.0 forbids dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::xqueue::DueGrade;

    fn due(feedback: &str, tests: &str) -> Due {
        Due {
            item: 1,
            header: "{}".into(),
            attempts: 0,
            pulled_at: 0,
            refusal: None,
            submission_id: Some(1),
            state: Some("graded".into()),
            message: None,
            grade: Some(DueGrade {
                id: 1,
                status: "graded".into(),
                score: 3.0,
                max_score: 5.0,
                fraction: 0.6,
                tests_json: tests.into(),
                public_feedback: feedback.into(),
                message: None,
            }),
        }
    }

    #[test]
    fn a_hostile_feedback_stays_text_and_the_msg_parses_as_xml() {
        let tests = r#"[{"name":"q1</li><script>","score":1,"max_score":1,"visibility":"visible",
                         "staff_output":"HIDDEN TEST SECRET"}]"#;
        let (r, score) = reply(
            &due("x < y & \u{0}</pre><b>]]>\u{1b}[31m", tests),
            ScoreAs::Fraction,
        );
        assert_eq!(score, 0.6);
        assert_eq!(r["correct"], false);
        let msg = r["msg"].as_str().unwrap();
        assert!(!msg.contains("HIDDEN TEST SECRET"), "{msg}");
        assert!(!msg.contains("<script>") && !msg.contains("<b>"), "{msg}");
        // Well-formed XML: every element closed, no raw < or & in text.
        let mut reader = quick_xml::Reader::from_str(msg);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not XML: {e}: {msg}"),
            }
        }
        let (r, score) = reply(&due("", "[]"), ScoreAs::Points);
        assert_eq!((score, r["score"].as_f64()), (3.0, Some(3.0)));
    }
}
