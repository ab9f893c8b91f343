//! Every state stored in the database, as a type. Each is stored as the lowercase text
//! shown on its variants (what staff see in SQL and `dump-grades`), read back strictly (an
//! unknown text is an error, never a default), and serialised to JSON the same way.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// Declares a text-backed enum with `as_str`, `Display`, `FromStr`, SQL and serde support.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
            utoipa::ToSchema,
        )]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?} (expected one of: {})",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|e: String| FromSqlError::Other(e.into()))
            }
        }
    };
}

text_enum! {
    /// Where a submission stands.
    SubmissionState {
        /// Waiting for a grade worker (also after a retry was scheduled).
        Queued = "queued",
        /// A worker is grading it.
        Grading = "grading",
        /// Graded: it has a score.
        Graded = "graded",
        /// A student fault ended grading (time limit, memory, no results): score 0.
        Failed = "failed",
        /// Our side could not grade it within the allowed attempts: staff must act.
        Dead = "dead",
        /// Withdrawn by the platform that sent it before it was graded (platform API).
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// A job's state in the queue.
    JobState {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Dead = "dead",
    }
}

text_enum! {
    /// Whether a grader host may take work.
    HostState {
        /// Claims jobs.
        Active = "active",
        /// Finishes what it holds; is given nothing new.
        Draining = "draining",
        /// Its token is refused; what it held went back to the queue.
        Revoked = "revoked",
    }
}

text_enum! {
    /// Kinds of job.
    JobKind {
        /// Grade a submission.
        Grade = "grade",
        /// Post the score that counts for one student's assignment to edX.
        PostScore = "post_score",
    }
}

text_enum! {
    /// What became of a grade on its way to edX.
    PostState {
        /// The assignment's scores are not posted (no LTI block, or LTI off).
        NotConfigured = "not_configured",
        /// A post that covers this grade is queued, running or retrying.
        Pending = "pending",
        /// This grade's score is the one edX holds (as of the last post).
        Posted = "posted",
        /// edX refused, or the retry horizon ran out: staff can `repost`.
        Dead = "dead",
        /// Another grade of the same student and assignment counts for edX.
        Superseded = "superseded",
        /// The assignment's results are held until staff release them (course calendar):
        /// graded and stored, not shown to the student, not posted.
        Held = "held",
    }
}

text_enum! {
    /// How a grading run ended, as stored on the grade.
    GradeStatus {
        /// otter produced results.
        Graded = "graded",
        /// Killed at the wall-clock limit.
        Timeout = "timeout",
        /// Killed for using more memory than allowed.
        OutOfMemory = "out_of_memory",
        /// otter ran and wrote no results because of the notebook (its kernel died...).
        NoResults = "no_results",
        /// The evaluator refused the notebook (another assignment's; a kernel that
        /// answered the grader with nothing readable).
        Refused = "refused",
    }
}

text_enum! {
    /// Which grade of a student's assignment counts (for edX, exports and pages).
    ScorePolicy {
        /// The grade of the newest submission that has one (a regrade of an older
        /// submission never displaces it).
        Latest = "latest",
        /// The highest grade after late credit (the newest submission among equals).
        Best = "best",
        /// The newest submission received by the student's due date (extension
        /// included); when none was, the newest at all. A late resubmission does not
        /// displace on-time work.
        LatestOnTime = "latest_on_time",
    }
}

impl ScorePolicy {
    /// The one definition of "which grade counts": an `ORDER BY` over grades `g` joined
    /// with their submissions `s` that puts the counting grade first within one student's
    /// assignment. Every reader (edX posts, exports, pages, staff views) uses it.
    pub fn order_sql(self) -> &'static str {
        match self {
            ScorePolicy::Latest => "s.id DESC, g.id DESC",
            ScorePolicy::Best => {
                "g.fraction * COALESCE(s.credit, 100.0) DESC, s.id DESC, g.id DESC"
            }
            ScorePolicy::LatestOnTime => "COALESCE(s.late_ms, 0) > 0, s.id DESC, g.id DESC",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_sql_text_and_json() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        for s in PostState::ALL {
            let back: PostState = c.query_row("SELECT ?1", [s], |r| r.get(0)).unwrap();
            assert_eq!(back, *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let bad: rusqlite::Result<JobState> = c.query_row("SELECT 'runnin'", [], |r| r.get(0));
        assert!(bad.is_err(), "an unknown stored state is an error");
        assert!("best".parse::<ScorePolicy>().is_ok());
        assert!(
            "highest"
                .parse::<ScorePolicy>()
                .unwrap_err()
                .contains("latest, best, latest_on_time")
        );
    }
}
