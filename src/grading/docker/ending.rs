//! How a finished grading container ended, from what it wrote and what the engine says of
//! it: a grade, the student's fault with a sentence, or our own (retried) fault. Pure: the
//! runner reads the container, this decides.

use base64::Engine;

use super::{Evaluator, spec, trusted};
use crate::grading::local::{last_line, no_results_outcome, tail};
use crate::grading::{GradeOutcome, RunnerError, SandboxLimits, StudentFault, results};

/// What a container left when it exited (before our deadline).
pub struct Ended<'a> {
    pub stdout: &'a [u8],
    pub stderr: &'a str,
    /// The engine says the memory limit killed something in it.
    pub oom: bool,
    pub exit_code: Option<i64>,
}

/// The ending of a container that exited, graded by `evaluator` with the job's `key`.
pub fn classify(
    ended: &Ended,
    evaluator: Evaluator,
    key: &[u8],
    limits: &SandboxLimits,
) -> Result<GradeOutcome, RunnerError> {
    let log_tail = tail(ended.stderr, limits.output_bytes);
    let reported = match evaluator {
        Evaluator::Otter => parse_results(ended.stdout).map(trusted::Reported::Graded),
        Evaluator::Trusted => trusted::parse(ended.stdout, key)?,
    };
    match reported {
        Some(trusted::Reported::Graded(r)) => return Ok(GradeOutcome::Graded(r)),
        Some(trusted::Reported::KernelDied) if !ended.oom => {
            return Ok(no_results_outcome(&log_tail));
        }
        Some(trusted::Reported::Refused {
            message,
            integrity_flags,
        }) => {
            return Ok(GradeOutcome::Failed {
                fault: StudentFault::Refused,
                message,
                log_tail,
                integrity_flags,
            });
        }
        _ => {}
    }
    let exit_code = ended.exit_code.map_or("unknown".into(), |c| c.to_string());
    // The trusted evaluator reports a dead kernel itself (above), so ending without a
    // result line is its own failure (or the engine's), never the notebook's.
    if !ended.oom && evaluator == Evaluator::Trusted {
        return Err(RunnerError::Internal(format!(
            "the trusted evaluator ended without a result (exit code {exit_code}): {}",
            last_line(&log_tail)
        )));
    }
    if !ended.oom && ended_abnormally(ended.exit_code) {
        return Err(RunnerError::Internal(format!(
            "the grading container ended abnormally (exit code {exit_code}) without results"
        )));
    }
    if ended.oom {
        return Ok(GradeOutcome::Failed {
            fault: StudentFault::OutOfMemory,
            message: format!(
                "Your notebook used more than the {} MB of memory grading allows, so it \
                 could not be graded. Reduce the size of the data your code builds, then \
                 submit again.",
                limits.memory_bytes / (1024 * 1024)
            ),
            log_tail,
            integrity_flags: Vec::new(),
        });
    }
    Ok(no_results_outcome(&log_tail))
}

/// Whether a container's exit code says something outside the notebook ended it: the
/// container was killed (a signal: 128+n, e.g. the engine stopped or someone removed it),
/// or the runtime or shell failed (125-127), or there is no exit code at all. otter
/// itself exits 0 or 1; a notebook that kills its own kernel makes otter exit 1.
fn ended_abnormally(exit_code: Option<i64>) -> bool {
    match exit_code {
        None => true,
        Some(c) => !(0..125).contains(&c),
    }
}

/// The results.json after the marker on stdout, if complete and valid.
fn parse_results(stdout: &[u8]) -> Option<results::GradeResults> {
    let text = std::str::from_utf8(stdout).ok()?;
    let encoded = text.rsplit_once(spec::RESULTS_MARKER)?.1.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    results::parse(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(stdout: &[u8], oom: bool, exit_code: Option<i64>) -> Ended<'_> {
        Ended {
            stdout,
            stderr: "Traceback...\nlast words",
            oom,
            exit_code,
        }
    }

    #[test]
    fn a_trusted_run_without_a_result_line_is_ours_unless_memory_ran_out() {
        let limits = SandboxLimits::default();
        let e = classify(
            &ended(b"", false, Some(3)),
            Evaluator::Trusted,
            b"k",
            &limits,
        );
        let Err(RunnerError::Internal(why)) = e else {
            panic!("{e:?}")
        };
        assert!(
            why.contains("exit code 3") && why.contains("last words"),
            "{why}"
        );
        let oom = classify(
            &ended(b"", true, Some(137)),
            Evaluator::Trusted,
            b"k",
            &limits,
        );
        assert!(matches!(
            oom,
            Ok(GradeOutcome::Failed {
                fault: StudentFault::OutOfMemory,
                ..
            })
        ));
        // A bare otter run killed from outside is ours; one that ended normally is not.
        let killed = classify(
            &ended(b"", false, Some(137)),
            Evaluator::Otter,
            b"k",
            &limits,
        );
        assert!(matches!(killed, Err(RunnerError::Internal(_))));
        let none = classify(&ended(b"", false, Some(1)), Evaluator::Otter, b"k", &limits);
        assert!(matches!(
            none,
            Ok(GradeOutcome::Failed {
                fault: StudentFault::NoResults,
                ..
            })
        ));
    }
}
