//! Command line: `serve` and the staff commands (`dump-grades`, `regrade`, `repost`,
//! `status`, `backup`). Staff commands open the database directly; SQLite's WAL lets them
//! read while the server writes, and their writes wait briefly for the server's.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rusqlite::{Connection, OpenFlags};

use crate::db::grades::{self, GradeFilter};
use crate::db::staff::{self, RegradeRequest};
use crate::db::{self, now_ms};
use crate::export::{self, Policy};
use crate::settings::Settings;

/// A JupyterHub-authenticated notebook autograding service.
#[derive(Debug, Parser)]
#[command(name = "otter-service", version, about)]
pub struct Cli {
    /// TOML settings file (every setting has a default; `OTTER_<SECTION>__<FIELD>` and
    /// JupyterHub's `JUPYTERHUB_*` variables override it).
    #[arg(long, short, global = true, env = "OTTER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service and the grading workers.
    Serve,
    /// Write grades as CSV.
    DumpGrades(DumpArgs),
    /// Queue submissions for grading again.
    Regrade(RegradeArgs),
    /// Queue grades for posting to edX again (by default, those whose post is dead).
    Repost(RepostArgs),
    /// Show job counts per state and the oldest waiting job.
    Status,
    /// Show one submission's timeline: received, queued, each attempt's claim, container
    /// start and finish, stored, posted; with the time each phase took.
    Timeline {
        /// The submission's id.
        submission: i64,
    },
    /// Write a consistent copy of the database while the service runs.
    Backup {
        /// Where to write the copy (must not exist).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Grader hosts that pull jobs from this service (docs/grader-hosts.md).
    Hosts {
        #[command(subcommand)]
        command: HostsCommand,
    },
    /// Platforms that submit through the platform API and get webhooks
    /// (docs/platform-api.md).
    Platforms {
        #[command(subcommand)]
        command: crate::platform::admin::PlatformsCommand,
    },
    /// The course calendar: extensions, score overrides, releases of held results
    /// (docs/calendar.md).
    Calendar {
        #[command(subcommand)]
        command: crate::calendar::admin::CalendarCommand,
    },
    /// Print the OpenAPI 3.1 document of every HTTP endpoint, for the configured prefix
    /// (docs/openapi.json is this with the default prefix; the service serves it at
    /// `{prefix}openapi.json`).
    Openapi,
    /// LTI 1.3 tool keys (docs/lti13.md).
    Lti13 {
        #[command(subcommand)]
        command: Lti13Command,
    },
    /// Run a grader host: pull jobs from a service and grade them on this machine's
    /// Docker engine (its own settings file; not the service's `--config`).
    Grader {
        /// The grader host's TOML settings (`OTTER_GRADER_*` variables override it).
        #[arg(long, env = "OTTER_GRADER_SETTINGS")]
        settings: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// Register a host and print its token (once: only its hash is stored).
    Add {
        name: String,
        /// Tags the host offers (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
    },
    /// Every host: state, slots, jobs in hand, last contact, version.
    List,
    /// Let a host finish what it holds and give it nothing new.
    Drain { name: String },
    /// Take a draining host back into service.
    Resume { name: String },
    /// Refuse a host's token from now on; its jobs go back to the queue at once and its
    /// results are refused.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum Lti13Command {
    /// Write a new 2048-bit RSA private key (PEM, mode 0600) for `lti13.private_key_file`,
    /// and print its kid. Refuses to overwrite a file.
    NewKey { file: PathBuf },
    /// Print the public key set the service serves at `{prefix}lti13/jwks.json` (for a
    /// platform that wants the key pasted instead of fetched).
    Jwks,
}

/// Which submissions or grades a command applies to.
#[derive(Debug, Args, Clone, Default)]
pub struct Filter {
    #[arg(long)]
    pub course: Option<String>,
    #[arg(long)]
    pub section: Option<String>,
    #[arg(long)]
    pub assignment: Option<String>,
    /// Only this user's.
    #[arg(long)]
    pub user: Option<String>,
}

impl From<&Filter> for GradeFilter {
    fn from(f: &Filter) -> Self {
        GradeFilter {
            course: f.course.clone(),
            section: f.section.clone(),
            assignment: f.assignment.clone(),
            user: f.user.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub filter: Filter,
    /// Which grades per student and assignment.
    #[arg(long, value_enum, default_value = "all")]
    pub policy: Policy,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RegradeArgs {
    #[command(flatten)]
    pub filter: Filter,
    /// Only these submission ids.
    #[arg(long = "id")]
    pub ids: Vec<i64>,
    /// Only submissions whose grading is dead.
    #[arg(long)]
    pub dead: bool,
}

#[derive(Debug, Args)]
pub struct RepostArgs {
    #[command(flatten)]
    pub filter: Filter,
    /// Repost every matching grade that was posted or died, not only dead ones.
    #[arg(long)]
    pub all: bool,
}

/// Run a command; errors are printed with their causes.
pub fn run(cli: Cli) -> ExitCode {
    match run_inner(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(cli: Cli) -> anyhow::Result<()> {
    if let Command::Grader { settings } = &cli.command {
        return grader(settings.as_deref());
    }
    let settings = Settings::load(cli.config.as_deref())?;
    crate::telemetry::init(settings.server.log_format == "json");
    let path = settings.database.path.clone();
    match cli.command {
        Command::Serve => serve(settings),
        Command::DumpGrades(a) => dump_grades(&open_read_only(&path)?, &a),
        Command::Regrade(a) => {
            let n = regrade(&open_write(&path)?, &a, settings.grading.max_attempts)?;
            println!("queued {n} submission(s) for grading");
            Ok(())
        }
        Command::Repost(a) => {
            let n = repost(&open_write(&path)?, &a, settings.lti.retry_horizon_secs)?;
            println!("queued {n} grade(s) for posting to edX");
            Ok(())
        }
        Command::Status => status(&open_read_only(&path)?, &settings),
        Command::Timeline { submission } => timeline(&open_read_only(&path)?, submission),
        Command::Backup { output } => backup(&open_read_only(&path)?, &output),
        Command::Hosts { command } => hosts(&open_write(&path)?, command),
        Command::Lti13 { command } => lti13(&settings, command),
        Command::Openapi => {
            let doc = crate::app::openapi(&settings.server.prefix);
            println!("{}", doc.to_pretty_json()?);
            Ok(())
        }
        Command::Platforms { command } => crate::platform::admin::run(&settings, command),
        Command::Calendar { command } => {
            let target = calendar_target(&settings, &command)?;
            crate::calendar::admin::run(&mut open_write(&path)?, &target, command)
        }
        Command::Grader { .. } => unreachable!("handled before the service's settings"),
    }
}

/// The assignment a calendar command names, from the course config and the settings.
fn calendar_target(
    settings: &Settings,
    command: &crate::calendar::admin::CalendarCommand,
) -> anyhow::Result<crate::calendar::admin::Target> {
    use crate::course::{CourseConfig, Passback};
    let courses = CourseConfig::load(&settings.course.config, &settings.course.materials_root)?;
    let (c, s, a) = command.assignment();
    let a = courses.find(c, s, a).map_err(|e| anyhow::anyhow!("{e}"))?;
    let posts = match a.passback() {
        Some(Passback::Lti11) => !settings.lti.consumer_key.is_empty(),
        Some(Passback::Ags) => settings.lti13.private_key_file.is_some(),
        None => false,
    };
    Ok(crate::calendar::admin::Target {
        calendar: a.calendar.clone(),
        policy: a.post_score.unwrap_or(settings.lti.post_score),
        post_horizon_ms: posts.then_some(settings.lti.retry_horizon_secs as i64 * 1000),
    })
}

fn lti13(settings: &Settings, command: Lti13Command) -> anyhow::Result<()> {
    use crate::ags::ToolKeys;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match command {
        Lti13Command::NewKey { file } => {
            let pem = crate::ags::keys::generate_pem().map_err(anyhow::Error::msg)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .with_context(|| format!("creating {} (it must not exist)", file.display()))?;
            f.write_all(pem.as_bytes())?;
            let keys = ToolKeys::from_pems(pem.as_bytes(), &[]).map_err(anyhow::Error::msg)?;
            println!("wrote {} (kid {})", file.display(), keys.kid());
            Ok(())
        }
        Lti13Command::Jwks => {
            let Some(file) = &settings.lti13.private_key_file else {
                anyhow::bail!("lti13.private_key_file is not set");
            };
            let keys = ToolKeys::load(file, &settings.lti13.retired_key_files)
                .map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(keys.jwks())?);
            Ok(())
        }
    }
}

fn grader(file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let settings = crate::settings::GraderSettings::load(file)?;
    crate::telemetry::init(settings.log_format == "json");
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(crate::hosts::grader::run(settings, shutdown_signal()))
}

fn hosts(conn: &Connection, command: HostsCommand) -> anyhow::Result<()> {
    use crate::db::hosts;
    use crate::db::states::HostState;
    let set = |name: &str, state: HostState| -> anyhow::Result<usize> {
        let tx = conn.unchecked_transaction()?;
        let n = hosts::set_state(&tx, name, state, now_ms())?;
        tx.commit()?;
        Ok(n)
    };
    match command {
        HostsCommand::Add { name, tags } => {
            anyhow::ensure!(
                !name.is_empty()
                    && name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "a host name is 1 to 64 letters, digits, '-', '_' or '.'"
            );
            let (token, sha) = crate::hosts::new_token();
            hosts::add(conn, &name, &tags, &sha, now_ms())?;
            eprintln!(
                "host {name} added. Its token, shown only now (give it to the host as \
                 OTTER_GRADER_TOKEN or its token_file):"
            );
            println!("{token}");
        }
        HostsCommand::List => {
            println!(
                "{:<20} {:<9} {:>5} {:>9} {:>8} {:<22} {:<10} {:<16} images",
                "host", "state", "slots", "in hand", "graded", "last contact", "version", "tags"
            );
            for h in hosts::list(conn)? {
                let seen = h.last_seen_at.map_or("never".into(), |t| {
                    format!("{}s ago", (now_ms() - t) / 1000)
                });
                let tags = if h.tags.is_empty() {
                    "-".to_string()
                } else {
                    h.tags.join(",")
                };
                println!(
                    "{:<20} {:<9} {:>5} {:>9} {:>8} {:<22} {:<10} {:<16} {}",
                    h.name,
                    h.state.as_str(),
                    h.slots,
                    h.in_flight,
                    h.finished,
                    seen,
                    h.version.as_deref().unwrap_or("-"),
                    tags,
                    h.images.join(",")
                );
            }
        }
        HostsCommand::Drain { name } => {
            set(&name, HostState::Draining)?;
            println!("host {name} is draining: it finishes what it holds and gets nothing new");
        }
        HostsCommand::Resume { name } => {
            set(&name, HostState::Active)?;
            println!("host {name} takes jobs again");
        }
        HostsCommand::Revoke { name } => {
            let n = set(&name, HostState::Revoked)?;
            println!(
                "host {name} is revoked: its token is refused; {n} job(s) it held went back \
                 to the queue"
            );
        }
    }
    Ok(())
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let service = crate::app::Service::build(settings).await?;
        service.run(shutdown_signal()).await
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn open_read_only(path: &std::path::Path) -> anyhow::Result<Connection> {
    anyhow::ensure!(path.exists(), "no database at {}", path.display());
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(c)
}

fn open_write(path: &std::path::Path) -> anyhow::Result<Connection> {
    anyhow::ensure!(path.exists(), "no database at {}", path.display());
    let c = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    c.execute_batch("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")?;
    Ok(c)
}

fn dump_grades(conn: &Connection, a: &DumpArgs) -> anyhow::Result<()> {
    let records = grades::select(conn, &(&a.filter).into(), a.policy.counting())?;
    match &a.output {
        Some(p) => {
            let file =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            export::write_csv(file, &records)?;
            eprintln!("wrote {} grade(s) to {}", records.len(), p.display());
        }
        None => export::write_csv(std::io::stdout().lock(), &records)?,
    }
    Ok(())
}

/// Who runs a staff command, for the event log.
fn staff_name() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("staff ({user}, command line)")
}

fn regrade(conn: &Connection, a: &RegradeArgs, max_attempts: i64) -> anyhow::Result<usize> {
    let request = RegradeRequest {
        filter: (&a.filter).into(),
        ids: a.ids.clone(),
        dead_only: a.dead,
        by: staff_name(),
    };
    let tx = conn.unchecked_transaction()?;
    let ids = staff::regrade(&tx, &request, max_attempts, now_ms())?;
    tx.commit()?;
    Ok(ids.len())
}

fn repost(conn: &Connection, a: &RepostArgs, horizon_secs: u64) -> anyhow::Result<usize> {
    let tx = conn.unchecked_transaction()?;
    let horizon_ms = horizon_secs as i64 * 1000;
    let n = staff::repost(
        &tx,
        &(&a.filter).into(),
        a.all,
        &staff_name(),
        horizon_ms,
        now_ms(),
    )?;
    tx.commit()?;
    Ok(n)
}

fn timeline(conn: &Connection, submission: i64) -> anyhow::Result<()> {
    let events = db::events::for_submission(conn, submission)?;
    anyhow::ensure!(!events.is_empty(), "no submission {submission}");
    let mut last = events[0].at_ms;
    for e in &events {
        let job = e.job_id.map(|j| format!("job {j}")).unwrap_or_default();
        println!(
            "{}  {:>+9.3}s  {:<20} {:<8} {}",
            e.at,
            (e.at_ms - last) as f64 / 1000.0,
            e.event,
            job,
            e.detail
        );
        last = e.at_ms;
    }
    Ok(())
}

fn status(conn: &Connection, settings: &Settings) -> anyhow::Result<()> {
    let s = staff::status(conn)?;
    println!("{:<12} {:<8} {:>8}", "job", "state", "count");
    for (kind, state, n) in &s.jobs {
        println!("{:<12} {:<8} {n:>8}", kind.as_str(), state.as_str());
    }
    match s.oldest_waiting {
        Some((id, kind, at)) => println!(
            "oldest waiting: job {id} ({kind}), queued {} ({}s ago)",
            db::format_ms(at),
            (now_ms() - at) / 1000
        ),
        None => println!("nothing waiting"),
    }
    println!(
        "submissions whose grading is dead: {} (otter-service regrade --dead)",
        s.dead_submissions
    );
    for (why, n) in s.dead_reasons.iter().take(5) {
        println!("  {n:>6}  {why}");
    }
    // Jobs keep their history (a dead post job stays dead after a repost): the grades say
    // which posts are dead now, and edX's reasons.
    let dead_posts: i64 = s.dead_posts.iter().map(|(_, n)| n).sum();
    println!("grades whose edX post is dead: {dead_posts} (otter-service repost)");
    for (why, n) in s.dead_posts.iter().take(5) {
        println!("  {n:>6}  {why}");
    }
    // XQueue answers (waiting: graded or grading, answer not yet taken; failed: refused
    // past the horizon, see `timeline`).
    for (queue, state, n) in db::xqueue::counts(conn)? {
        println!("xqueue {queue:<12} {state:<8} {n:>8}");
    }
    if s.broken_autograders.is_empty() {
        println!("broken autograders: none");
    } else {
        println!(
            "broken autograders: {} (their submissions are not charged; fix the zip, then \
             otter-service regrade --dead)",
            s.broken_autograders.len()
        );
        for b in &s.broken_autograders {
            println!(
                "  {}/{}/{} ({}): {}",
                b.course, b.section, b.assignment, b.runner, b.detail
            );
        }
    }
    println!(
        "grades flagged by the trusted evaluator: {} (dump-grades, column integrity_flags)",
        s.flagged_grades
    );
    for f in &s.flagged_recent {
        let reasons: String = f.reasons.chars().take(300).collect();
        println!(
            "  submission {} ({}, {}, {}): {reasons}",
            f.submission_id, f.user, f.assignment, f.status
        );
    }
    if s.audits.is_empty() {
        println!("autograder audits: no test relies on what cannot cross as plain data");
    } else {
        println!(
            "autograder audits: {} assignment(s) have tests that use constructs the trusted \
             evaluator cannot check as plain data (docs/security.md, \"Policies\"):",
            s.audits.len()
        );
        for a in &s.audits {
            println!("  {}/{}/{}:", a.course, a.section, a.assignment);
            for f in &a.findings {
                println!("    {f}");
            }
        }
    }
    let hosts = crate::db::hosts::list(conn)?;
    if !hosts.is_empty() {
        let live: Vec<_> = hosts
            .iter()
            .filter(|h| h.state != crate::db::states::HostState::Revoked)
            .collect();
        println!(
            "grader hosts: {} ({} slots, {} jobs in hand; otter-service hosts list)",
            live.len(),
            live.iter().map(|h| h.slots).sum::<i64>(),
            live.iter().map(|h| h.in_flight).sum::<i64>()
        );
        for h in &live {
            let seen = h.last_seen_at.map_or("never".into(), |t| {
                format!("{}s ago", (now_ms() - t) / 1000)
            });
            println!(
                "  {} ({}): {} slots, {} in hand, last contact {seen}",
                h.name, h.state, h.slots, h.in_flight
            );
        }
    }
    match crate::course::CourseConfig::load(
        &settings.course.config,
        &settings.course.materials_root,
    ) {
        Ok(courses) => {
            let local = settings.grading.workers > 0;
            let needs = |c: &str, s: &str, a: &str| courses.grader_needs(c, s, a);
            for u in crate::db::hosts::unroutable(conn, now_ms(), local, needs)? {
                println!(
                    "no grader can take {} queued job(s) of {}/{}/{} (oldest {}s): they need a \
                     connected host offering {}",
                    u.jobs,
                    u.course,
                    u.section,
                    u.assignment,
                    (now_ms() - u.oldest) / 1000,
                    if u.needs.is_empty() {
                        "anything (none is connected)".to_string()
                    } else {
                        u.needs.join(", ")
                    }
                );
            }
        }
        Err(e) => println!("(which queued jobs no grader can take: the course config: {e})"),
    }
    println!(
        "database size: {:.1} MiB",
        s.database_bytes as f64 / 1048576.0
    );
    Ok(())
}

fn backup(conn: &Connection, output: &std::path::Path) -> anyhow::Result<()> {
    anyhow::ensure!(!output.exists(), "{} already exists", output.display());
    let target = output.to_str().context("output path is not UTF-8")?;
    conn.execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("writing {}", output.display()))?;
    eprintln!("wrote a consistent copy to {}", output.display());
    Ok(())
}
