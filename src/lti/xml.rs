//! The POX (Plain Old XML) bodies of LTI 1.1 Basic Outcomes: the `replaceResultRequest` we
//! send and the `imsx_POXEnvelopeResponse` status we read back. Both go through quick-xml,
//! so text is escaped on the way out and entity references resolved on the way in.

use std::io;

use quick_xml::Writer;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesDecl, BytesRef, BytesText, Event};
use quick_xml::reader::Reader;

/// The LTI 1.1 outcomes namespace; edX looks elements up in it.
const NS: &str = "http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0";

/// A `replaceResultRequest` envelope setting `sourced_id`'s score to `score`.
pub(crate) fn replace_result_request(message_id: &str, sourced_id: &str, score: f64) -> String {
    // Never `-0`; Display of f64 never uses exponent notation, which Python's float() takes.
    let score = if score == 0.0 { 0.0 } else { score };
    let score = score.to_string();
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_request(&mut w, message_id, sourced_id, &score).expect("writing to a Vec cannot fail");
    String::from_utf8(w.into_inner()).expect("quick-xml writes the UTF-8 it is given")
}

fn write_request(
    w: &mut Writer<Vec<u8>>,
    message_id: &str,
    sourced_id: &str,
    score: &str,
) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("imsx_POXEnvelopeRequest")
        .with_attribute(("xmlns", NS))
        .write_inner_content(|w| {
            w.create_element("imsx_POXHeader")
                .write_inner_content(|w| {
                    w.create_element("imsx_POXRequestHeaderInfo")
                        .write_inner_content(|w| {
                            text(w, "imsx_version", "V1.0")?;
                            text(w, "imsx_messageIdentifier", message_id)
                        })?;
                    Ok(())
                })?;
            w.create_element("imsx_POXBody").write_inner_content(|w| {
                w.create_element("replaceResultRequest")
                    .write_inner_content(|w| {
                        w.create_element("resultRecord").write_inner_content(|w| {
                            w.create_element("sourcedGUID")
                                .write_inner_content(|w| text(w, "sourcedId", sourced_id))?;
                            w.create_element("result").write_inner_content(|w| {
                                w.create_element("resultScore").write_inner_content(|w| {
                                    text(w, "language", "en")?;
                                    text(w, "textString", score)
                                })?;
                                Ok(())
                            })?;
                            Ok(())
                        })?;
                        Ok(())
                    })?;
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

/// `<name>value</name>`, with `value` escaped.
fn text(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

/// The status part of an `imsx_POXEnvelopeResponse`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Status {
    pub code_major: String,
    pub description: String,
}

/// Read `imsx_codeMajor` and `imsx_description` from an answer; `Err` says why the answer is
/// not an outcomes response.
///
/// An answer that stops being well-formed *after* a complete `imsx_codeMajor` still counts:
/// edX writes its success description as `Score for {sourcedId} is now {score}` without
/// escaping (lti_consumer/outcomes.py), so a user with `<` or `&` gets a broken success
/// answer for a score it did store. The status comes before the description, so it is known.
pub(crate) fn parse_response(body: &str) -> Result<Status, String> {
    let mut seen = Seen::default();
    let broken = seen.read(body).err();
    match seen.root.as_deref() {
        Some("imsx_POXEnvelopeResponse") => {}
        Some(other) if broken.is_none() => {
            return Err(format!(
                "root element is <{other}>, not imsx_POXEnvelopeResponse"
            ));
        }
        _ => return Err(broken.unwrap_or_else(|| "no XML element at all".into())),
    }
    let code_major = seen
        .code_major
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let (Some(code_major), true) = (code_major, seen.code_major_closed) else {
        return Err(broken.unwrap_or_else(|| "no imsx_codeMajor".into()));
    };
    let mut description = seen
        .description
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if let Some(why) = broken {
        description.push_str(&format!(
            " [the rest of the answer is not well-formed: {why}]"
        ));
    }
    Ok(Status {
        code_major,
        description,
    })
}

/// What a pass over an answer found, up to its end or its first error.
#[derive(Default)]
struct Seen {
    root: Option<String>,
    code_major: Option<String>,
    code_major_closed: bool,
    description: Option<String>,
}

impl Seen {
    fn read(&mut self, body: &str) -> Result<(), String> {
        let mut reader = Reader::from_str(body);
        let mut path: Vec<String> = Vec::new();
        loop {
            let event = reader.read_event().map_err(|e| {
                format!(
                    "not well-formed XML at byte {}: {e}",
                    reader.error_position()
                )
            })?;
            let text = match event {
                Event::Start(e) => {
                    let name = e.local_name().into_inner().to_string();
                    self.root.get_or_insert_with(|| name.clone());
                    path.push(name);
                    continue;
                }
                Event::Empty(e) => {
                    self.root
                        .get_or_insert_with(|| e.local_name().into_inner().to_string());
                    continue;
                }
                Event::End(_) => {
                    if path.pop().as_deref() == Some("imsx_codeMajor") {
                        self.code_major_closed = true;
                    }
                    continue;
                }
                Event::Text(t) => t.xml10_content().into_owned(),
                Event::CData(t) => t.xml10_content().into_owned(),
                Event::GeneralRef(r) => resolve(&r)?,
                Event::Eof if path.is_empty() => return Ok(()),
                Event::Eof => return Err("the answer ends inside an element".into()),
                _ => continue,
            };
            let slot = match path.last().map(String::as_str) {
                Some("imsx_codeMajor") => &mut self.code_major,
                Some("imsx_description") => &mut self.description,
                _ => continue,
            };
            slot.get_or_insert_with(String::new).push_str(&text);
        }
    }
}

/// The text of `&name;` or `&#N;`.
fn resolve(r: &BytesRef<'_>) -> Result<String, String> {
    match r.resolve_char_ref() {
        Ok(Some(c)) => Ok(c.to_string()),
        Ok(None) => resolve_predefined_entity(r)
            .map(str::to_string)
            .ok_or_else(|| format!("unknown entity &{};", &**r)),
        Err(e) => Err(format!("bad character reference: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of the first `<name>` element, unescaped by quick-xml (an independent read).
    fn element_text(xml: &str, name: &str) -> String {
        let mut reader = Reader::from_str(xml);
        let mut inside = false;
        let mut out = String::new();
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) if e.local_name().into_inner() == name => inside = true,
                Event::End(e) if e.local_name().into_inner() == name => return out,
                Event::Text(t) if inside => out.push_str(&t.xml10_content()),
                Event::GeneralRef(r) if inside => {
                    out.push_str(resolve_predefined_entity(&r).unwrap())
                }
                Event::Eof => panic!("no <{name}> in {xml}"),
                _ => {}
            }
        }
    }

    #[test]
    fn request_escapes_markup_and_keeps_non_ascii() {
        let sid = "course-v1%3AX+Y+Z:h-b:<a>&\"'é漢";
        let xml = replace_result_request("m-1", sid, 0.75);
        assert!(xml.contains("&lt;a&gt;&amp;"), "{xml}");
        assert!(xml.contains('é') && xml.contains('漢'));
        assert!(!xml.contains("<a>"));
        assert_eq!(element_text(&xml, "sourcedId"), sid);
        assert_eq!(element_text(&xml, "textString"), "0.75");
        assert_eq!(element_text(&xml, "imsx_messageIdentifier"), "m-1");
        assert!(xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#));
        assert!(xml.contains(&format!(r#"<imsx_POXEnvelopeRequest xmlns="{NS}">"#)));
    }

    #[test]
    fn score_is_a_plain_decimal() {
        let text = |s| element_text(&replace_result_request("m", "s", s), "textString");
        assert_eq!(text(0.0), "0");
        assert_eq!(text(-0.0), "0");
        assert_eq!(text(1.0), "1");
        assert_eq!(text(1e-7), "0.0000001");
        assert_eq!(text(0.1 + 0.2), "0.30000000000000004");
    }

    const SUCCESS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<imsx_POXEnvelopeResponse xmlns = "http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0">
    <imsx_POXHeader>
        <imsx_POXResponseHeaderInfo>
            <imsx_version>V1.0</imsx_version>
            <imsx_messageIdentifier>abc</imsx_messageIdentifier>
            <imsx_statusInfo>
                <imsx_codeMajor>success</imsx_codeMajor>
                <imsx_severity>status</imsx_severity>
                <imsx_description>Score for x:y is now 0.5</imsx_description>
                <imsx_messageRefIdentifier>
                </imsx_messageRefIdentifier>
            </imsx_statusInfo>
        </imsx_POXResponseHeaderInfo>
    </imsx_POXHeader>
    <imsx_POXBody><replaceResultResponse/></imsx_POXBody>
</imsx_POXEnvelopeResponse>"#;

    #[test]
    fn parses_success() {
        let s = parse_response(SUCCESS).unwrap();
        assert_eq!(s.code_major, "success");
        assert_eq!(s.description, "Score for x:y is now 0.5");
    }

    #[test]
    fn parses_failure_with_escaped_description() {
        let xml = SUCCESS.replace(">success<", ">failure<").replace(
            "Score for x:y is now 0.5",
            "Request body XML parsing error: bad &lt;x&gt; &amp; &#233;&#x4E00;",
        );
        let s = parse_response(&xml).unwrap();
        assert_eq!(s.code_major, "failure");
        assert_eq!(
            s.description,
            "Request body XML parsing error: bad <x> & é一"
        );
    }

    #[test]
    fn parses_prefixed_namespace() {
        let xml = r#"<p:imsx_POXEnvelopeResponse xmlns:p="x"><p:imsx_statusInfo>
            <p:imsx_codeMajor>unsupported</p:imsx_codeMajor></p:imsx_statusInfo>
            </p:imsx_POXEnvelopeResponse>"#;
        let s = parse_response(xml).unwrap();
        assert_eq!(
            (s.code_major.as_str(), s.description.as_str()),
            ("unsupported", "")
        );
    }

    #[test]
    fn a_status_before_a_broken_description_counts() {
        // What edX sends for a user with `<` in the sourcedId.
        let xml = SUCCESS.replace("Score for x:y is", "Score for x:<b> & y is");
        let s = parse_response(&xml).unwrap();
        assert_eq!(s.code_major, "success");
        assert!(
            s.description.starts_with("Score for x:"),
            "{}",
            s.description
        );
        assert!(
            s.description.contains("not well-formed"),
            "{}",
            s.description
        );
        let cut = "<imsx_POXEnvelopeResponse><imsx_codeMajor>failure</imsx_codeMajor><imsx_desc";
        assert_eq!(parse_response(cut).unwrap().code_major, "failure");
    }

    #[test]
    fn refuses_garbage() {
        for body in [
            "",
            "Internal Server Error",
            "<html><body>502 Bad Gateway</body></html>",
            "<imsx_POXEnvelopeResponse><imsx_codeMajor>success</oops></imsx_POXEnvelopeResponse>",
            "<imsx_POXEnvelopeResponse><imsx_description>x</imsx_description></imsx_POXEnvelopeResponse>",
            "<imsx_POXEnvelopeResponse><imsx_codeMajor>&bogus;</imsx_codeMajor></imsx_POXEnvelopeResponse>",
            "<imsx_POXEnvelopeResponse><imsx_codeMajor>success",
            "<imsx_POXEnvelopeResponse><imsx_codeMajor>succ<b></imsx_codeMajor></imsx_POXEnvelopeResponse>",
            "<html><imsx_codeMajor>success</imsx_codeMajor></html>",
        ] {
            assert!(parse_response(body).is_err(), "accepted {body:?}");
        }
    }
}
