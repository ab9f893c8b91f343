//! Command line: `serve` and the staff commands (`dump-grades`, `regrade`, `repost`,
//! `status`, `backup`). Staff commands open the database directly; SQLite's WAL lets them
//! read while the server writes, and their writes wait briefly for the server's.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rusqlite::{Connection, OpenFlags, params};

use crate::db::{self, grades, now_ms, submissions};
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
    /// Write a consistent copy of the database while the service runs.
    Backup {
        /// Where to write the copy (must not exist).
        #[arg(long, short)]
        output: PathBuf,
    },
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
        Command::Status => status(&open_read_only(&path)?),
        Command::Backup { output } => backup(&open_read_only(&path)?, &output),
    }
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
    let f = &a.filter;
    let mut records = grades::all(
        conn,
        f.course.as_deref(),
        f.section.as_deref(),
        f.assignment.as_deref(),
    )?;
    if let Some(u) = &f.user {
        records.retain(|r| &r.user == u);
    }
    let records = export::select(records, a.policy);
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

const FILTER_SQL: &str = "(?1 IS NULL OR s.course = ?1) AND (?2 IS NULL OR s.section = ?2)
     AND (?3 IS NULL OR s.assignment = ?3) AND (?4 IS NULL OR s.user = ?4)";

fn regrade(conn: &Connection, a: &RegradeArgs, max_attempts: i64) -> anyhow::Result<usize> {
    let f = &a.filter;
    let sql = format!(
        "SELECT s.id FROM submissions s WHERE {FILTER_SQL} AND (?5 = 0 OR s.state = 'dead')
           AND s.state NOT IN ('queued', 'grading') ORDER BY s.id"
    );
    let mut ids: Vec<i64> = conn
        .prepare(&sql)?
        .query_map(
            params![f.course, f.section, f.assignment, f.user, a.dead],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    if !a.ids.is_empty() {
        ids.retain(|id| a.ids.contains(id));
    }
    let tx = conn.unchecked_transaction()?;
    let now = now_ms();
    for id in &ids {
        submissions::enqueue_grade(&tx, *id, max_attempts, now)?;
        db::events::record(&tx, now, Some(*id), None, "regrade_requested", "staff")?;
    }
    tx.commit()?;
    Ok(ids.len())
}

fn repost(conn: &Connection, a: &RepostArgs, horizon_secs: u64) -> anyhow::Result<usize> {
    let f = &a.filter;
    let sql = format!(
        "SELECT g.id, g.submission_id FROM grades g JOIN submissions s ON s.id = g.submission_id
         WHERE {FILTER_SQL} AND (g.post_state = 'dead' OR (?5 AND g.post_state = 'posted'))
           AND g.id = (SELECT MAX(g2.id) FROM grades g2 WHERE g2.submission_id = g.submission_id)"
    );
    let rows: Vec<(i64, i64)> = conn
        .prepare(&sql)?
        .query_map(
            params![f.course, f.section, f.assignment, f.user, a.all],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    let tx = conn.unchecked_transaction()?;
    let now = now_ms();
    for (grade_id, submission_id) in &rows {
        grades::set_post_state(
            &tx,
            *grade_id,
            "pending",
            Some("queued again by staff"),
            None,
        )?;
        let job = crate::queue::NewJob {
            kind: crate::queue::JobKind::PostScore,
            submission_id: *submission_id,
            grade_id: Some(*grade_id),
            max_attempts: i64::MAX,
            give_up_at: Some(now + horizon_secs as i64 * 1000),
        };
        crate::queue::enqueue(&tx, &job, now)?;
    }
    tx.commit()?;
    Ok(rows.len())
}

fn status(conn: &Connection) -> anyhow::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    println!("{:<12} {:<8} {:>8}", "job", "state", "count");
    for row in rows {
        let (kind, state, n) = row?;
        println!("{kind:<12} {state:<8} {n:>8}");
    }
    let oldest: Option<(i64, String, i64)> = conn
        .query_row(
            "SELECT id, kind, created_at FROM jobs WHERE state = 'queued' ORDER BY created_at LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ok();
    match oldest {
        Some((id, kind, at)) => println!(
            "oldest waiting: job {id} ({kind}), queued {} ({}s ago)",
            db::format_ms(at),
            (now_ms() - at) / 1000
        ),
        None => println!("nothing waiting"),
    }
    let dead: i64 = conn.query_row(
        "SELECT COUNT(*) FROM submissions WHERE state = 'dead'",
        [],
        |r| r.get(0),
    )?;
    println!("submissions whose grading is dead: {dead} (otter-service regrade --dead)");
    // Jobs keep their history (a dead post job stays dead after a repost): the grades say
    // which posts are dead now, and edX's reasons.
    let mut reasons = conn.prepare(
        "SELECT COALESCE(post_detail, ''), COUNT(*) FROM grades WHERE post_state = 'dead'
         GROUP BY post_detail ORDER BY COUNT(*) DESC, post_detail",
    )?;
    let reasons: Vec<(String, i64)> = reasons
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let dead_posts: i64 = reasons.iter().map(|(_, n)| n).sum();
    println!("grades whose edX post is dead: {dead_posts} (otter-service repost)");
    for (why, n) in reasons.iter().take(5) {
        println!("  {n:>6}  {why}");
    }
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
