//! otter-service's `course-config.json`, loaded and validated once at start.
//!
//! ```json
//! { "<course>": { "<section>": {
//!     "course_id": "BerkeleyX+Data8.1x+2026", "subpath_to_zips": "8x/materials",
//!     "assignments": { "<assignment>": "<edX LTI block id>" } } } }
//! ```
//! Optional extensions, per section or per assignment (an assignment may be an object
//! `{"lti_block": "...", ...}` instead of a block id string): `time_limit_secs`,
//! `memory_mb`, `cpus`, `pids`, `network`, `lti` (post to edX, default true when a block id
//! is given), `post_score` (`latest`, `best` or `latest_on_time`); per assignment,
//! `calendar` (release, due date, late credit, held results: `crate::calendar`).
//!
//! LTI 1.3 (Assignment and Grade Services) instead of LTI 1.1, per section: the section
//! names its platform under `lti13` (`issuer`, `client_id`, `deployment_id`, `token_url`,
//! optional `audience`), and each assignment that posts names its line item, either
//! directly (`"lineitem": "<URL>"`) or by the resource link the platform launches it from
//! (`"resource_link_id": "..."`: the line item is then learned from a launch). See
//! docs/lti13.md.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::db::states::ScorePolicy;
use crate::grading::SandboxLimits;
use crate::notebook::{Name, NotebookMetadata};

/// Optional per-section / per-assignment overrides.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub time_limit_secs: Option<u64>,
    pub memory_mb: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
    pub network: Option<bool>,
    pub lti: Option<bool>,
    pub post_score: Option<String>,
    /// The grader image for these assignments (one with the course's packages, built by
    /// `scripts/build-grader-image.sh --requirements FILE IMAGE`).
    pub image: Option<String>,
    /// Tags a grader host must offer to grade these assignments (`otter-service hosts add
    /// NAME --tags ...`): a GPU, a site's licence, a pool. Only hosts grade them (the
    /// service's own workers offer no tags). An assignment's own list replaces its
    /// section's.
    pub requires: Option<Vec<String>>,
}

impl Overrides {
    /// `self` where set, else `base`.
    fn or(&self, base: &Overrides) -> Overrides {
        Overrides {
            time_limit_secs: self.time_limit_secs.or(base.time_limit_secs),
            memory_mb: self.memory_mb.or(base.memory_mb),
            cpus: self.cpus.or(base.cpus),
            pids: self.pids.or(base.pids),
            network: self.network.or(base.network),
            lti: self.lti.or(base.lti),
            post_score: self.post_score.clone().or_else(|| base.post_score.clone()),
            image: self.image.clone().or_else(|| base.image.clone()),
            requires: self.requires.clone().or_else(|| base.requires.clone()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawAssignment {
    Block(String),
    Full {
        #[serde(default)]
        lti_block: Option<String>,
        /// LTI 1.3: the AGS line item's URL.
        #[serde(default)]
        lineitem: Option<String>,
        /// LTI 1.3: the resource link the platform launches this assignment from.
        #[serde(default)]
        resource_link_id: Option<String>,
        /// Dates and late credit (`crate::calendar`).
        #[serde(default)]
        calendar: Option<Box<crate::calendar::RawCalendar>>,
        #[serde(flatten)]
        overrides: Overrides,
    },
}

/// An LTI 1.3 platform, as a section names it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    issuer: String,
    client_id: String,
    #[serde(default)]
    deployment_id: Option<String>,
    token_url: String,
    #[serde(default)]
    audience: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawSection {
    /// edX course id (LTI 1.1); may be empty in a section that posts with LTI 1.3.
    #[serde(default)]
    course_id: String,
    #[serde(default)]
    lti13: Option<RawPlatform>,
    subpath_to_zips: String,
    /// The JupyterHub group whose members are this section's staff.
    #[serde(default)]
    staff_group: Option<String>,
    assignments: BTreeMap<String, RawAssignment>,
    #[serde(flatten)]
    overrides: Overrides,
}

type RawConfig = BTreeMap<String, BTreeMap<String, RawSection>>;

/// A known assignment, resolved against the materials root.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// edX course id, e.g. `BerkeleyX+Data8.1x+2026`.
    pub course_id: String,
    /// The LTI block id, when scores are posted to edX for this assignment (LTI 1.1).
    pub lti_block: Option<String>,
    /// Where LTI 1.3 scores go, when this assignment posts with LTI 1.3 instead.
    pub ags: Option<AgsTarget>,
    /// `{materials_root}/{subpath_to_zips}/{assignment}-autograder.zip`.
    pub autograder_zip: PathBuf,
    /// Which grade counts, when the course config overrides the global setting.
    pub post_score: Option<ScorePolicy>,
    /// Release, due date, late credit and held results, when the assignment has them.
    pub calendar: Option<std::sync::Arc<crate::calendar::Calendar>>,
    overrides: Overrides,
}

/// An assignment's LTI 1.3 line item on its section's platform.
#[derive(Debug, Clone, PartialEq)]
pub struct AgsTarget {
    pub platform: std::sync::Arc<crate::ags::Platform>,
    pub line: crate::ags::LineItemRef,
}

/// How an assignment's scores leave the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passback {
    /// LTI 1.1 Basic Outcomes (`lti_block`).
    Lti11,
    /// LTI 1.3 Assignment and Grade Services (`lti13` and a line item).
    Ags,
}

impl Assignment {
    /// How this assignment's scores are posted, if they are.
    pub fn passback(&self) -> Option<Passback> {
        if self.ags.is_some() {
            Some(Passback::Ags)
        } else if self.lti_block.is_some() {
            Some(Passback::Lti11)
        } else {
            None
        }
    }

    /// The assignment's own grader image, if its course config names one.
    pub fn image(&self) -> Option<&str> {
        self.overrides.image.as_deref()
    }

    /// What a grader host must offer to grade this assignment: its `requires` tags and,
    /// when it names one, its own grader image. Empty: any host, and the service's own
    /// workers.
    pub fn needs(&self) -> Vec<String> {
        let mut needs: Vec<String> = self.overrides.requires.clone().unwrap_or_default();
        needs.extend(self.overrides.image.clone());
        needs.sort();
        needs.dedup();
        needs
    }

    /// Whether the service's own workers may grade it (it requires no tags; a course
    /// image is checked by the runner itself).
    pub fn local_ok(&self) -> bool {
        self.overrides
            .requires
            .as_ref()
            .is_none_or(|r| r.is_empty())
    }

    /// The sandbox limits for this assignment: course-config overrides over `defaults`.
    pub fn limits(&self, defaults: &SandboxLimits) -> SandboxLimits {
        let o = &self.overrides;
        SandboxLimits {
            time_limit: o
                .time_limit_secs
                .map_or(defaults.time_limit, Duration::from_secs),
            memory_bytes: o
                .memory_mb
                .map_or(defaults.memory_bytes, |m| m * 1024 * 1024),
            cpus: o.cpus.unwrap_or(defaults.cpus),
            pids: o.pids.unwrap_or(defaults.pids),
            network: o.network.unwrap_or(defaults.network),
            output_bytes: defaults.output_bytes,
            image: o.image.clone().or_else(|| defaults.image.clone()),
        }
    }
}

/// The validated course config.
#[derive(Debug, Clone)]
pub struct CourseConfig {
    courses: BTreeMap<String, BTreeMap<String, BTreeMap<String, Assignment>>>,
    /// Per course, the Hub groups whose members are its staff (from its sections'
    /// `staff_group`).
    staff_groups: BTreeMap<String, std::collections::BTreeSet<String>>,
}

/// A broken course config: names the file, the key and the problem.
#[derive(Debug, thiserror::Error)]
#[error("course config {file}: {problem}")]
pub struct CourseConfigError {
    pub file: PathBuf,
    pub problem: String,
}

/// A submission names an assignment the config does not know.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LookupError {
    #[error("unknown course {0:?}: this service grades no such course")]
    UnknownCourse(String),
    #[error("unknown section {section:?} of course {course:?}")]
    UnknownSection { course: String, section: String },
    #[error("unknown assignment {assignment:?} in course {course:?} section {section:?}")]
    UnknownAssignment {
        course: String,
        section: String,
        assignment: String,
    },
}

impl CourseConfig {
    /// Read and validate `file`; zips are resolved under `materials_root`.
    pub fn load(file: &Path, materials_root: &Path) -> Result<Self, CourseConfigError> {
        let err = |problem: String| CourseConfigError {
            file: file.to_path_buf(),
            problem,
        };
        let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read: {e}")))?;
        Self::parse(&text, materials_root).map_err(err)
    }

    /// Validate the JSON text of a course config.
    pub fn parse(text: &str, materials_root: &Path) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("invalid: {e}"))?;
        check_known_keys(&value)?;
        let raw: RawConfig = serde_json::from_value(value).map_err(|e| format!("invalid: {e}"))?;
        let mut courses = BTreeMap::new();
        let mut staff_groups: BTreeMap<String, std::collections::BTreeSet<String>> =
            BTreeMap::new();
        for (course, sections) in raw {
            check_name("course", &course, &course)?;
            let mut by_section = BTreeMap::new();
            for (section, s) in sections {
                let at = format!("{course}.{section}");
                check_name("section", &section, &at)?;
                if let Some(group) = &s.staff_group {
                    if group.trim().is_empty() {
                        return Err(format!("key {at:?}.staff_group: must not be empty"));
                    }
                    staff_groups
                        .entry(course.clone())
                        .or_default()
                        .insert(group.clone());
                }
                by_section.insert(section, resolve_section(&at, s, materials_root)?);
            }
            courses.insert(course, by_section);
        }
        Ok(Self {
            courses,
            staff_groups,
        })
    }

    /// The assignment a notebook belongs to.
    pub fn lookup(&self, m: &NotebookMetadata) -> Result<&Assignment, LookupError> {
        self.find(m.course.as_str(), m.section.as_str(), m.assignment.as_str())
    }

    /// The assignment with these names (as stored with a submission).
    pub fn find(&self, c: &str, s: &str, a: &str) -> Result<&Assignment, LookupError> {
        let sections = self
            .courses
            .get(c)
            .ok_or_else(|| LookupError::UnknownCourse(c.into()))?;
        let assignments = sections.get(s).ok_or_else(|| LookupError::UnknownSection {
            course: c.into(),
            section: s.into(),
        })?;
        assignments
            .get(a)
            .ok_or_else(|| LookupError::UnknownAssignment {
                course: c.into(),
                section: s.into(),
                assignment: a.into(),
            })
    }

    /// The courses whose staff a user is: every course for a Hub admin, else those with a
    /// `staff_group` among `groups`.
    pub fn staff_courses(&self, admin: bool, groups: &[String]) -> Vec<String> {
        self.courses
            .keys()
            .filter(|c| {
                admin
                    || self
                        .staff_groups
                        .get(*c)
                        .is_some_and(|g| groups.iter().any(|x| g.contains(x)))
            })
            .cloned()
            .collect()
    }

    /// Every assignment, as `(course, section, assignment, details)`.
    /// The assignments a grader cannot take (`can` says no), as the JSON array of
    /// `[course, section, assignment]` that a claim skips (`[]`: none).
    pub fn excluded(&self, can: impl Fn(&Assignment) -> bool) -> String {
        let out: Vec<[&str; 3]> = self
            .assignments()
            .filter(|(_, _, _, a)| !can(a))
            .map(|(c, s, a, _)| [c, s, a])
            .collect();
        serde_json::to_string(&out).expect("strings serialise")
    }

    /// What grading `course/section/assignment` needs of a grader host, and whether the
    /// service's own workers may grade it ([`Assignment::needs`], [`Assignment::local_ok`]);
    /// `None` for an assignment the config does not have. The form
    /// `db::hosts::unroutable` asks for.
    pub fn grader_needs(&self, c: &str, s: &str, a: &str) -> Option<(Vec<String>, bool)> {
        self.find(c, s, a).ok().map(|a| (a.needs(), a.local_ok()))
    }

    pub fn assignments(&self) -> impl Iterator<Item = (&str, &str, &str, &Assignment)> {
        self.courses.iter().flat_map(|(c, secs)| {
            secs.iter().flat_map(move |(s, asgs)| {
                asgs.iter()
                    .map(move |(a, d)| (c.as_str(), s.as_str(), a.as_str(), d))
            })
        })
    }
}

/// The optional keys of a section or an assignment object.
const OVERRIDE_KEYS: &[&str] = &[
    "time_limit_secs",
    "memory_mb",
    "cpus",
    "pids",
    "network",
    "lti",
    "post_score",
    "image",
    "requires",
];

/// Refuse keys the service does not know, naming them: a misspelt `time_limit` must stop
/// the service, not be ignored (serde cannot refuse them itself here: the optional keys
/// are `flatten`ed into sections and assignments, and `deny_unknown_fields` does not work
/// with `flatten`).
fn check_known_keys(config: &serde_json::Value) -> Result<(), String> {
    let unknown = |at: String, key: &str, known: &[&str]| {
        Err(format!(
            "key {:?}: unknown key (known keys here: {})",
            format!("{at}.{key}"),
            known.join(", ")
        ))
    };
    let section_keys: Vec<&str> = [
        "course_id",
        "subpath_to_zips",
        "assignments",
        "staff_group",
        "lti13",
    ]
    .iter()
    .chain(OVERRIDE_KEYS)
    .copied()
    .collect();
    let assignment_keys: Vec<&str> = ["lti_block", "lineitem", "resource_link_id", "calendar"]
        .iter()
        .chain(OVERRIDE_KEYS)
        .copied()
        .collect();
    let Some(courses) = config.as_object() else {
        return Ok(()); // serde names the shape error
    };
    for (course, sections) in courses {
        for (section, s) in sections.as_object().into_iter().flatten() {
            let at = format!("{course}.{section}");
            for key in s.as_object().into_iter().flat_map(|o| o.keys()) {
                if !section_keys.contains(&key.as_str()) {
                    return unknown(at, key, &section_keys);
                }
            }
            let assignments = s.get("assignments").and_then(|a| a.as_object());
            for (name, a) in assignments.into_iter().flatten() {
                for key in a.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !assignment_keys.contains(&key.as_str()) {
                        return unknown(format!("{at}.assignments.{name}"), key, &assignment_keys);
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_name(kind: &'static str, value: &str, at: &str) -> Result<(), String> {
    Name::parse(kind, value)
        .map(|_| ())
        .map_err(|e| format!("key {at:?}: bad {kind} name: {e}"))
}

fn resolve_section(
    at: &str,
    s: RawSection,
    materials_root: &Path,
) -> Result<BTreeMap<String, Assignment>, String> {
    let platform = match &s.lti13 {
        Some(p) => Some(std::sync::Arc::new(resolve_platform(at, p)?)),
        None => None,
    };
    if s.course_id.trim().is_empty() && platform.is_none() {
        return Err(format!("key {at:?}.course_id: must not be empty"));
    }
    let sub = Path::new(&s.subpath_to_zips);
    if sub
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "key {at:?}.subpath_to_zips: {:?} must be a relative path without `..`",
            s.subpath_to_zips
        ));
    }
    check_post_score(at, &s.overrides)?;
    let mut out = BTreeMap::new();
    for (name, raw) in s.assignments {
        let at = format!("{at}.assignments.{name}");
        check_name("assignment", &name, &at)?;
        let (block, line, own, calendar) = match raw {
            RawAssignment::Block(b) => (Some(b), None, Overrides::default(), None),
            RawAssignment::Full {
                lti_block,
                lineitem,
                resource_link_id,
                calendar,
                overrides,
            } => {
                let line = resolve_line(&at, lineitem, resource_link_id)?;
                let calendar = calendar
                    .map(|c| crate::calendar::Calendar::parse(&format!("{at}.calendar"), &c))
                    .transpose()?
                    .map(std::sync::Arc::new);
                (lti_block, line, overrides, calendar)
            }
        };
        check_post_score(&at, &own)?;
        let overrides = own.or(&s.overrides);
        let posts = overrides.lti != Some(false);
        let lti_block = block.filter(|b| !b.trim().is_empty() && posts);
        let ags = match (&platform, line) {
            (Some(platform), Some(line)) if posts => Some(AgsTarget {
                platform: platform.clone(),
                line,
            }),
            (None, Some(_)) => {
                return Err(format!(
                    "key {at:?}: a line item needs the section's \"lti13\" platform"
                ));
            }
            _ => None,
        };
        if ags.is_some() && lti_block.is_some() {
            return Err(format!(
                "key {at:?}: both an LTI 1.1 lti_block and an LTI 1.3 line item; \
                 an assignment posts one way"
            ));
        }
        let autograder_zip = materials_root
            .join(sub)
            .join(format!("{name}-autograder.zip"));
        out.insert(
            name,
            Assignment {
                course_id: s.course_id.clone(),
                lti_block,
                ags,
                autograder_zip,
                post_score: overrides.post_score.as_deref().and_then(|p| p.parse().ok()),
                calendar,
                overrides,
            },
        );
    }
    Ok(out)
}

/// A section's `lti13` platform, checked.
fn resolve_platform(at: &str, p: &RawPlatform) -> Result<crate::ags::Platform, String> {
    let at = format!("{at}.lti13");
    let nonempty = |key: &str, v: &str| {
        if v.trim().is_empty() {
            Err(format!("key {at:?}.{key}: must not be empty"))
        } else {
            Ok(())
        }
    };
    nonempty("issuer", &p.issuer)?;
    nonempty("client_id", &p.client_id)?;
    let token_url = crate::ags::parse_http_url(&p.token_url)
        .map_err(|e| format!("key {at:?}.token_url: {e}"))?;
    Ok(crate::ags::Platform {
        issuer: p.issuer.clone(),
        client_id: p.client_id.clone(),
        deployment_id: p.deployment_id.clone().filter(|d| !d.is_empty()),
        audience: p
            .audience
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| token_url.to_string()),
        token_url,
    })
}

/// An assignment's line item: a URL, or the resource link to learn it from.
fn resolve_line(
    at: &str,
    lineitem: Option<String>,
    resource_link_id: Option<String>,
) -> Result<Option<crate::ags::LineItemRef>, String> {
    match (lineitem, resource_link_id) {
        (Some(_), Some(_)) => Err(format!(
            "key {at:?}: give either lineitem or resource_link_id, not both"
        )),
        (Some(url), None) => crate::ags::parse_http_url(&url)
            .map(|u| Some(crate::ags::LineItemRef::Url(u)))
            .map_err(|e| format!("key {at:?}.lineitem: {e}")),
        (None, Some(id)) if id.trim().is_empty() => {
            Err(format!("key {at:?}.resource_link_id: must not be empty"))
        }
        (None, Some(id)) => Ok(Some(crate::ags::LineItemRef::ResourceLink(id))),
        (None, None) => Ok(None),
    }
}

fn check_post_score(at: &str, o: &Overrides) -> Result<(), String> {
    match o.post_score.as_deref().map(str::parse::<ScorePolicy>) {
        None | Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(format!("key {at:?}.post_score: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_assignment_may_name_its_own_grader_image() {
        let root = std::path::Path::new("/m");
        let text = r#"{"8x": {"1": {"course_id": "c", "subpath_to_zips": "z",
            "image": "data8-grader:2026", "assignments": {"lab1": "b",
            "lab2": {"lti_block": "b", "image": "data8-grader:lab2"}}}}}"#;
        let c = super::CourseConfig::parse(text, root).unwrap();
        let image = |a| {
            c.find("8x", "1", a)
                .unwrap()
                .limits(&crate::grading::SandboxLimits::default())
                .image
        };
        assert_eq!(image("lab1").as_deref(), Some("data8-grader:2026"));
        assert_eq!(image("lab2").as_deref(), Some("data8-grader:lab2"));
    }

    #[test]
    fn staff_are_hub_admins_and_members_of_a_courses_staff_group() {
        let root = std::path::Path::new("/m");
        let text = r#"{"8x": {"1": {"course_id": "c", "subpath_to_zips": "z",
            "staff_group": "8x-staff", "assignments": {"lab1": "b"}},
                              "2": {"course_id": "c", "subpath_to_zips": "z",
            "staff_group": "8x-tas", "assignments": {"lab1": "b"}}},
            "9x": {"1": {"course_id": "c", "subpath_to_zips": "z", "assignments": {}}}}"#;
        let c = super::CourseConfig::parse(text, root).unwrap();
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(c.staff_courses(true, &[]), ["8x", "9x"]);
        assert_eq!(c.staff_courses(false, &groups(&["8x-tas"])), ["8x"]);
        assert!(
            c.staff_courses(false, &groups(&["students", "9x"]))
                .is_empty()
        );
        let empty = text.replace("\"8x-tas\"", "\" \"");
        let err = super::CourseConfig::parse(&empty, root).unwrap_err();
        assert!(err.contains("8x.2\".staff_group"), "{err}");
    }

    #[test]
    fn a_misspelt_key_is_named_not_ignored() {
        let root = std::path::Path::new("/m");
        let section = r#"{"8x": {"1": {"course_id": "c", "subpath_to_zips": "z",
            "time_limit": 30, "assignments": {}}}}"#;
        let e = super::CourseConfig::parse(section, root).unwrap_err();
        assert!(e.contains("\"8x.1.time_limit\": unknown key"), "{e}");
        let assignment = r#"{"8x": {"1": {"course_id": "c", "subpath_to_zips": "z",
            "assignments": {"lab1": {"lti_block": "b", "memory": 512}}}}}"#;
        let e = super::CourseConfig::parse(assignment, root).unwrap_err();
        assert!(e.contains("8x.1.assignments.lab1.memory"), "{e}");
        assert!(e.contains("memory_mb"), "the known keys are listed: {e}");
    }

    use super::*;

    const CONFIG: &str = r#"{"8x": {"1": {"course_id": "BerkeleyX+8x+2026",
        "subpath_to_zips": "8x/zips", "memory_mb": 512,
        "assignments": {"lab01": "blockA", "lab02": {"lti_block": "blockB", "time_limit_secs": 30},
                        "lab03": {"lti": false}}}}}"#;

    fn meta(c: &str, s: &str, a: &str) -> NotebookMetadata {
        NotebookMetadata {
            course: Name::parse("c", c).unwrap(),
            section: Name::parse("s", s).unwrap(),
            assignment: Name::parse("a", a).unwrap(),
        }
    }

    #[test]
    fn resolves_zip_block_and_overrides() {
        let cfg = CourseConfig::parse(CONFIG, Path::new("/m")).unwrap();
        let a = cfg.lookup(&meta("8x", "1", "lab02")).unwrap();
        assert_eq!(
            a.autograder_zip,
            Path::new("/m/8x/zips/lab02-autograder.zip")
        );
        assert_eq!(a.lti_block.as_deref(), Some("blockB"));
        let limits = a.limits(&SandboxLimits::default());
        assert_eq!(limits.time_limit, Duration::from_secs(30));
        assert_eq!(limits.memory_bytes, 512 * 1024 * 1024);
        assert_eq!(
            cfg.lookup(&meta("8x", "1", "lab03")).unwrap().lti_block,
            None
        );
    }

    #[test]
    fn unknown_pieces_are_named() {
        let cfg = CourseConfig::parse(CONFIG, Path::new("/m")).unwrap();
        assert_eq!(
            cfg.lookup(&meta("9x", "1", "lab01")),
            Err(LookupError::UnknownCourse("9x".into()))
        );
        assert!(matches!(
            cfg.lookup(&meta("8x", "2", "lab01")),
            Err(LookupError::UnknownSection { .. })
        ));
        assert!(matches!(
            cfg.lookup(&meta("8x", "1", "lab09")),
            Err(LookupError::UnknownAssignment { .. })
        ));
    }

    #[test]
    fn broken_configs_name_key_and_problem() {
        let e = CourseConfig::parse(
            r#"{"8x": {"1": {"course_id": "c", "subpath_to_zips": "../x", "assignments": {}}}}"#,
            Path::new("/m"),
        )
        .unwrap_err();
        assert!(e.contains("8x.1") && e.contains("subpath_to_zips"), "{e}");
        let e = CourseConfig::parse(r#"{"8x": {"1": {"course_id": "c"}}}"#, Path::new("/m"))
            .unwrap_err();
        assert!(e.contains("missing field"), "{e}");
        let e = CourseConfig::parse(
            r#"{"8x": {"1": {"course_id": "c", "subpath_to_zips": "z", "post_score": "worst", "assignments": {}}}}"#,
            Path::new("/m"),
        )
        .unwrap_err();
        assert!(e.contains("post_score"), "{e}");
    }
}
