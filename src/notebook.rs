//! Which course/section/assignment a submitted notebook belongs to. Pure: no I/O.
//!
//! Two metadata forms are accepted, so existing notebooks move over unedited:
//! otter-service's `metadata.otter_service.{course, section, assignment}` and
//! gofer_service's top-level `metadata.{course, section, lab|assignment}`.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

/// A course, section or assignment name: non-empty, no path separators, no `..`, printable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Check a name taken from a notebook or the course config.
    pub fn parse(key: &'static str, value: &str) -> Result<Self, MetadataError> {
        let bad = |why: &str| MetadataError::BadName {
            key,
            value: value.chars().take(80).collect(),
            why: why.to_string(),
        };
        if value.trim().is_empty() {
            return Err(bad("it is empty"));
        }
        if value.len() > 200 {
            return Err(bad("it is longer than 200 characters"));
        }
        if value.contains(['/', '\\']) || value == "." || value.contains("..") {
            return Err(bad("it contains a path separator or `..`"));
        }
        if value.chars().any(char::is_control) {
            return Err(bad("it contains control characters"));
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The assignment a notebook says it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotebookMetadata {
    pub course: Name,
    pub section: Name,
    pub assignment: Name,
}

/// What is wrong with a submitted notebook. Each message names the key and the fix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetadataError {
    #[error("the submission is not valid JSON ({0}); send the .ipynb file's contents")]
    NotJson(String),
    #[error("the submission is not a Jupyter notebook: {0}")]
    NotANotebook(String),
    #[error(
        "the notebook has no `metadata.otter_service` (or gofer `metadata.course`) section; \
         download a fresh copy of the assignment notebook and copy your answers into it"
    )]
    NoMetadata,
    #[error("the notebook metadata has no `{0}`; download a fresh copy of the assignment")]
    MissingKey(&'static str),
    #[error("the notebook metadata `{key}` must be a string or number, not {found}")]
    WrongType {
        key: &'static str,
        found: &'static str,
    },
    #[error("the notebook metadata `{key}` value {value:?} is not allowed: {why}")]
    BadName {
        key: &'static str,
        value: String,
        why: String,
    },
}

impl NotebookMetadata {
    /// Read the assignment from a parsed notebook document.
    pub fn parse(notebook: &Value) -> Result<Self, MetadataError> {
        let obj = notebook
            .as_object()
            .ok_or_else(|| MetadataError::NotANotebook("the JSON is not an object".into()))?;
        if !obj.get("cells").is_some_and(Value::is_array) {
            return Err(MetadataError::NotANotebook("it has no `cells` list".into()));
        }
        Self::from_metadata(obj.get("metadata"))
    }

    /// Read the assignment from a notebook's `metadata` value.
    fn from_metadata(meta: Option<&Value>) -> Result<Self, MetadataError> {
        let meta = meta
            .and_then(Value::as_object)
            .ok_or(MetadataError::NoMetadata)?;
        if let Some(otter) = meta.get("otter_service") {
            let otter = otter.as_object().ok_or(MetadataError::WrongType {
                key: "otter_service",
                found: "a non-object",
            })?;
            return Ok(Self {
                course: field(otter, "course", "otter_service.course")?,
                section: field(otter, "section", "otter_service.section")?,
                assignment: field(otter, "assignment", "otter_service.assignment")?,
            });
        }
        if !meta.contains_key("course") {
            return Err(MetadataError::NoMetadata);
        }
        let assignment = if meta.contains_key("lab") {
            field(meta, "lab", "lab")?
        } else {
            field(meta, "assignment", "assignment")?
        };
        Ok(Self {
            course: field(meta, "course", "course")?,
            section: field(meta, "section", "section")?,
            assignment,
        })
    }
}

/// A submitted body, read without building the notebook's tree (a 60 KB notebook is
/// mostly cell text we never look at): the notebook's exact bytes and its assignment.
#[derive(Debug)]
pub struct Submission {
    /// The notebook document as sent (inside `{"nb": ...}` when wrapped).
    pub notebook: Vec<u8>,
    pub metadata: NotebookMetadata,
}

/// A submitted body read where it lies: the notebook's bytes borrowed from the body (owned
/// only when `nb` held the notebook as JSON text) and its assignment. The intake hashes
/// and compresses the notebook from here without copying it first.
#[derive(Debug)]
pub struct SubmissionIn<'a> {
    pub notebook: Cow<'a, [u8]>,
    pub metadata: NotebookMetadata,
}

/// A body that is exactly `{"nb": <notebook object>}`, the form every Submit client sends:
/// read in one scan of the notebook. Anything else (another member, `nb` twice, `nb` as
/// text, a key spelt with escapes) fails here and is read by the general path, which
/// also words the errors.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OnlyNb<'a> {
    #[serde(borrow)]
    nb: Shallow<'a>,
}

/// Where the notebook object lies in a body of the form `{"nb": {...}}` (JSON whitespace
/// allowed between the tokens), judged by its first and last tokens only: the caller
/// has parsed the body as [`OnlyNb`], so what lies between is that one object.
fn only_nb_span(body: &[u8]) -> Option<std::ops::Range<usize>> {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let skip = |mut i: usize| {
        while body.get(i).is_some_and(ws) {
            i += 1;
        }
        i
    };
    let mut i = skip(0);
    for token in [&b"{"[..], b"\"nb\"", b":"] {
        if !body[i..].starts_with(token) {
            return None;
        }
        i = skip(i + token.len());
    }
    if body.get(i) != Some(&b'{') {
        return None;
    }
    let close = body.iter().rposition(|b| !ws(b))?;
    let end = body[..close].iter().rposition(|b| !ws(b))? + 1;
    (body[close] == b'}' && end > i && body[end - 1] == b'}').then_some(i..end)
}

/// The top level of a body: a notebook, or `{"nb": notebook}` (gofer_submit, otter-submit).
#[derive(serde::Deserialize)]
struct Shallow<'a> {
    #[serde(borrow, default)]
    nb: Option<&'a serde_json::value::RawValue>,
    /// Elements are skipped, not built.
    #[serde(default)]
    cells: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    metadata: Option<Value>,
}

fn shallow(bytes: &[u8]) -> Result<Shallow<'_>, MetadataError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => MetadataError::NotANotebook(
            e.to_string().replace("struct Shallow", "a notebook object"),
        ),
        _ => MetadataError::NotJson(e.to_string()),
    })
}

impl Submission {
    /// Read a body holding a notebook or `{"nb": notebook}` (`nb` may also be the
    /// notebook's JSON text).
    pub fn read(body: &[u8]) -> Result<Self, MetadataError> {
        let read = Self::read_in_place(body)?;
        Ok(Self {
            notebook: read.notebook.into_owned(),
            metadata: read.metadata,
        })
    }

    /// [`Submission::read`] without copying the notebook out of the body.
    pub fn read_in_place(body: &[u8]) -> Result<SubmissionIn<'_>, MetadataError> {
        // The usual body, `{"nb": {...}}`, in one scan (the general path below scans the
        // notebook twice: for the end of `nb`, then for its cells and metadata).
        let read = match only_nb_span(body)
            .and_then(|span| Some((span, serde_json::from_slice::<OnlyNb<'_>>(body).ok()?)))
        {
            Some((span, only)) => SubmissionIn {
                notebook: Cow::Borrowed(&body[span]),
                metadata: Self::check(only.nb)?,
            },
            None => Self::read_general(body)?,
        };
        // serde_json checks the UTF-8 of what it decodes, not of the strings it skips (the
        // cells): a notebook is JSON text, and one that is not UTF-8 is refused here, not
        // stored to fail in the grader.
        if let Err(e) = std::str::from_utf8(&read.notebook) {
            return Err(MetadataError::NotJson(format!(
                "the notebook is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            )));
        }
        Ok(read)
    }

    /// Any body form, the notebook scanned twice when wrapped.
    fn read_general(body: &[u8]) -> Result<SubmissionIn<'_>, MetadataError> {
        let top = shallow(body)?;
        let Some(nb) = top.nb.filter(|_| top.cells.is_none()) else {
            return Ok(SubmissionIn {
                metadata: Self::check(top)?,
                notebook: Cow::Borrowed(body),
            });
        };
        let nb = nb.get();
        if nb.starts_with('"') {
            let text: String =
                serde_json::from_str(nb).map_err(|e| MetadataError::NotJson(e.to_string()))?;
            let metadata = Self::check(shallow(text.as_bytes())?)?;
            return Ok(SubmissionIn {
                notebook: Cow::Owned(text.into_bytes()),
                metadata,
            });
        }
        Ok(SubmissionIn {
            metadata: Self::check(shallow(nb.as_bytes())?)?,
            notebook: Cow::Borrowed(nb.as_bytes()),
        })
    }

    /// Read a notebook file (the bare document) for an assignment named elsewhere (an
    /// XQueue problem's grader_payload): it must be a notebook; its own metadata is not
    /// consulted.
    pub fn read_as(body: &[u8], metadata: NotebookMetadata) -> Result<Self, MetadataError> {
        let top = shallow(body)?;
        if top.cells.is_none() {
            return Err(MetadataError::NotANotebook("it has no `cells` list".into()));
        }
        Ok(Self {
            notebook: body.to_vec(),
            metadata,
        })
    }

    fn check(doc: Shallow<'_>) -> Result<NotebookMetadata, MetadataError> {
        if doc.cells.is_none() {
            return Err(MetadataError::NotANotebook("it has no `cells` list".into()));
        }
        NotebookMetadata::from_metadata(doc.metadata.as_ref())
    }
}

/// One name from a metadata object; numbers (gofer often has `"section": 1`) become text.
fn field(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    key: &'static str,
) -> Result<Name, MetadataError> {
    match obj.get(name) {
        None | Some(Value::Null) => Err(MetadataError::MissingKey(key)),
        Some(Value::String(s)) => Name::parse(key, s),
        Some(Value::Number(n)) => Name::parse(key, &n.to_string()),
        Some(Value::Bool(_)) => Err(MetadataError::WrongType {
            key,
            found: "a boolean",
        }),
        Some(Value::Array(_)) => Err(MetadataError::WrongType {
            key,
            found: "a list",
        }),
        Some(Value::Object(_)) => Err(MetadataError::WrongType {
            key,
            found: "an object",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_three_body_shapes_keeping_the_notebook_bytes() {
        let nb = json!({"cells": [{"cell_type": "code", "source": "x"}], "nbformat": 4,
            "metadata": {"otter_service": {"course": "c", "section": "1", "assignment": "a"}}});
        let raw = nb.to_string();
        let s = Submission::read(raw.as_bytes()).unwrap();
        assert_eq!(
            (s.notebook.as_slice(), s.metadata.assignment.as_str()),
            (raw.as_bytes(), "a")
        );
        let wrapped = format!("{{\"nb\": {raw}}}");
        assert_eq!(
            Submission::read(wrapped.as_bytes()).unwrap().notebook,
            raw.as_bytes()
        );
        let as_text = json!({"nb": raw}).to_string();
        assert_eq!(
            Submission::read(as_text.as_bytes()).unwrap().notebook,
            raw.as_bytes()
        );
    }

    #[test]
    fn the_one_scan_reading_agrees_with_the_general_one() {
        let nb = json!({"cells": [{"cell_type": "code", "source": "print(\"}\")"}],
            "metadata": {"otter_service": {"course": "c", "section": "1", "assignment": "a"}},
            "nb": "a notebook may hold a key named nb"})
        .to_string();
        let no_meta = json!({"cells": [], "metadata": {}}).to_string();
        let bodies = [
            format!("{{\"nb\":{nb}}}"),
            format!(" \r\n{{ \"nb\" :\t{nb} \n}}\n "),
            format!("{{\"nb\": {no_meta}}}"),
            "{\"nb\": {\"cells\": 3}}".to_string(),
            format!("{{\"nb\": {nb}, \"nb\": {no_meta}}}"),
            format!("{{\"nb\": {nb}, \"extra\": 1}}"),
            format!("{{\"\\u006eb\": {nb}}}"),
            format!("{{\"nb\": {nb}"),
            format!("{{\"nb\": {nb}}} trailing"),
            json!({ "nb": nb }).to_string(),
            nb.clone(),
        ];
        for body in &bodies {
            let fast = Submission::read_in_place(body.as_bytes());
            let general = Submission::read_general(body.as_bytes());
            match (fast, general) {
                (Ok(f), Ok(g)) => {
                    assert_eq!(f.notebook, g.notebook, "{body}");
                    assert_eq!(f.metadata, g.metadata, "{body}");
                }
                (Err(f), Err(g)) => assert_eq!(f, g, "{body}"),
                (f, g) => panic!("{body}: one scan {f:?}, general {g:?}"),
            }
        }
        // Bytes that are not UTF-8 inside a skipped cell are refused by both readings, in
        // every body form (serde_json does not check what it skips).
        let bad = nb.replace("print", "pr\u{1}int").into_bytes();
        let at = bad.iter().position(|b| *b == 1).unwrap();
        let mut bad = bad;
        bad[at] = 0xff;
        for body in [
            [&b"{\"nb\": "[..], &bad, b"}"].concat(),
            bad.clone(),
            [&b"{\"nb\": "[..], &bad, b", \"x\": 1}"].concat(),
        ] {
            assert!(
                matches!(
                    Submission::read_in_place(&body),
                    Err(MetadataError::NotJson(_))
                ),
                "{:?}",
                Submission::read_in_place(&body)
            );
        }
        // The usual body is read where it lies, and gives the notebook as sent.
        let read = Submission::read_in_place(bodies[1].as_bytes()).unwrap();
        assert!(matches!(read.notebook, Cow::Borrowed(_)));
        assert_eq!(read.notebook.as_ref(), nb.as_bytes());
    }

    #[test]
    fn body_errors_say_what_is_wrong() {
        assert!(matches!(
            Submission::read(b"nope"),
            Err(MetadataError::NotJson(_))
        ));
        assert!(matches!(
            Submission::read(b"{\"nb\": [1]}"),
            Err(MetadataError::NotANotebook(_))
        ));
        assert!(matches!(
            Submission::read(b"[1, 2]"),
            Err(MetadataError::NotANotebook(_))
        ));
        assert!(matches!(
            Submission::read(br#"{"cells": [], "metadata": {}}"#),
            Err(MetadataError::NoMetadata)
        ));
        assert!(matches!(
            Submission::read(br#"{"cells": 3}"#),
            Err(MetadataError::NotANotebook(_))
        ));
    }

    fn nb(metadata: Value) -> Value {
        json!({"cells": [], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5})
    }

    #[test]
    fn reads_otter_service_metadata() {
        let m = NotebookMetadata::parse(&nb(json!({"otter_service":
            {"course": "8x", "section": "1", "assignment": "lab01"}})))
        .unwrap();
        assert_eq!((m.course.as_str(), m.section.as_str()), ("8x", "1"));
        assert_eq!(m.assignment.as_str(), "lab01");
    }

    #[test]
    fn reads_gofer_metadata_with_lab_or_assignment_and_numbers() {
        let m = NotebookMetadata::parse(&nb(json!({"course": "8x", "section": 1, "lab": "lab02"})))
            .unwrap();
        assert_eq!((m.section.as_str(), m.assignment.as_str()), ("1", "lab02"));
        let m = NotebookMetadata::parse(&nb(
            json!({"course": "8x", "section": "2", "assignment": "hw"}),
        ))
        .unwrap();
        assert_eq!(m.assignment.as_str(), "hw");
    }

    #[test]
    fn names_the_missing_key() {
        let err = NotebookMetadata::parse(&nb(
            json!({"otter_service": {"course": "8x", "section": "1"}}),
        ))
        .unwrap_err();
        assert_eq!(err, MetadataError::MissingKey("otter_service.assignment"));
        assert!(err.to_string().contains("otter_service.assignment"));
        assert_eq!(
            NotebookMetadata::parse(&nb(json!({}))).unwrap_err(),
            MetadataError::NoMetadata
        );
    }

    #[test]
    fn a_body_dressed_as_a_stored_zstd_frame_is_refused_in_every_form() {
        // The database tells a compressed notebook from one kept as sent by the zstd magic
        // number (db/notebooks.rs); a student who sent bytes starting with it could have
        // their own frame (a decompression bomb) unpacked at grading. No accepted body
        // can start with it: each form must parse as JSON, and the stored notebook is
        // an object (or a string holding one).
        let magic = [0x28u8, 0xb5, 0x2f, 0xfd];
        let mut raw = magic.to_vec();
        raw.extend_from_slice(br#"{"cells": [], "metadata": {}}"#);
        assert!(Submission::read(&raw).is_err());
        let as_text = serde_json::to_string(&String::from_utf8_lossy(&raw)).unwrap();
        assert!(Submission::read(format!("{{\"nb\": {as_text}}}").as_bytes()).is_err());
        let meta = NotebookMetadata::parse(&json!({"cells": [], "metadata": {"otter_service":
            {"course": "c", "section": "1", "assignment": "a"}}}))
        .unwrap();
        assert!(Submission::read_as(&raw, meta).is_err());
    }

    #[test]
    fn refuses_non_notebooks_and_path_tricks() {
        assert!(matches!(
            NotebookMetadata::parse(&json!([1, 2])),
            Err(MetadataError::NotANotebook(_))
        ));
        assert!(matches!(
            NotebookMetadata::parse(&json!({"metadata": {}})),
            Err(MetadataError::NotANotebook(_))
        ));
        for bad in ["../etc", "a/b", "a\\b", "..", "", "x\n"] {
            let err = NotebookMetadata::parse(&nb(json!({"otter_service":
                {"course": bad, "section": "1", "assignment": "a"}})))
            .unwrap_err();
            assert!(
                matches!(
                    err,
                    MetadataError::BadName {
                        key: "otter_service.course",
                        ..
                    }
                ),
                "{bad:?}"
            );
        }
    }
}
