//! `otter-service platforms ...`: staff register, list and revoke platforms, and manage
//! their webhooks. The token and the signing secret are printed once: only the token's
//! hash is kept, and the secret is kept to sign with.

use anyhow::Context;
use clap::Subcommand;
use rusqlite::Connection;

use crate::db::now_ms;
use crate::db::platforms::{self, NewPlatform};
use crate::settings::Settings;

use super::guard::AddressPolicy;

#[derive(Debug, Subcommand)]
pub enum PlatformsCommand {
    /// Register a platform; print its API token and webhook signing secret (once).
    Add {
        /// 1 to 64 letters, digits, '-', '_', '.' or '@'. Its users are
        /// `platform:<name>:<user id>`.
        name: String,
        /// The courses it may submit to (comma-separated course names of the course config).
        #[arg(long, value_delimiter = ',', required = true)]
        courses: Vec<String>,
        /// The priority classes it may ask for, its default first: `normal` (a student's)
        /// and/or `low` (claimed only when no student's job is due). Default: normal.
        #[arg(long, value_delimiter = ',', default_value = "normal")]
        priorities: Vec<String>,
        /// Where its completion webhooks go (https://...). Default: none (it polls).
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Every platform: courses, webhook, submissions and deliveries by state.
    List,
    /// Refuse its token from now on (its submissions are still graded and reported).
    Revoke { name: String },
    /// Set its webhook URL (or clear it with --none); also re-enables an endpoint that
    /// answered 410 Gone, and sends what waited meanwhile.
    SetWebhook {
        name: String,
        url: Option<String>,
        #[arg(long, conflicts_with = "url")]
        none: bool,
    },
    /// Make a new signing secret and print it; the old one keeps signing beside it for
    /// --overlap-hours (a delivery then carries both signatures) while the receiver
    /// switches.
    RotateSecret {
        name: String,
        #[arg(long, default_value_t = 24)]
        overlap_hours: u64,
    },
    /// Queue its failed (given up) deliveries again.
    Redeliver { name: String },
}

/// Open (creating and migrating if needed) the service's database for a platforms command.
fn open(settings: &Settings) -> anyhow::Result<Connection> {
    let path = &settings.database.path;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut c = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    c.execute_batch("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")?;
    crate::db::migrations_apply(&mut c)?;
    Ok(c)
}

fn check_webhook(settings: &Settings, url: &str) -> anyhow::Result<()> {
    let policy = AddressPolicy::new(&settings.platforms.webhook_allow_networks)
        .map_err(anyhow::Error::msg)?;
    policy.check_url(url).map_err(anyhow::Error::msg)?;
    Ok(())
}

pub fn run(settings: &Settings, command: PlatformsCommand) -> anyhow::Result<()> {
    let conn = open(settings)?;
    let missing = |name: &str| anyhow::anyhow!("no platform named {name:?}");
    match command {
        PlatformsCommand::Add {
            name,
            courses,
            priorities,
            webhook,
        } => {
            super::valid_name("platform name", &name).map_err(anyhow::Error::msg)?;
            for p in &priorities {
                anyhow::ensure!(
                    super::priority_class(p).is_some(),
                    "unknown priority class {p:?} (normal or low)"
                );
            }
            let courses: Vec<String> = courses.into_iter().filter(|c| !c.is_empty()).collect();
            anyhow::ensure!(!courses.is_empty(), "--courses names no course");
            if let Some(url) = &webhook {
                check_webhook(settings, url)?;
            }
            let (token, sha) = super::new_token();
            let secret = super::new_secret();
            platforms::add(
                &conn,
                &NewPlatform {
                    name: &name,
                    token_sha256: &sha,
                    courses: &courses,
                    priorities: &priorities,
                    webhook_url: webhook.as_deref(),
                    webhook_secret: &secret,
                },
                now_ms(),
            )?;
            eprintln!(
                "platform {name} added (courses {}). Its API token, shown only now \
                 (Authorization: Bearer <token>), then its webhook signing secret:",
                courses.join(", ")
            );
            println!("{token}");
            println!("{secret}");
        }
        PlatformsCommand::List => {
            println!(
                "{:<16} {:<8} {:<20} {:<10} {:>7} {:>7} {:>9} {:>6}  webhook",
                "platform",
                "state",
                "courses",
                "priorities",
                "subs",
                "pending",
                "delivered",
                "failed"
            );
            for p in platforms::list(&conn)? {
                let webhook = match (&p.webhook_url, &p.webhook_disabled) {
                    (None, _) => "-".to_string(),
                    (Some(u), None) => u.clone(),
                    (Some(u), Some(why)) => format!("{u} (disabled: {why})"),
                };
                println!(
                    "{:<16} {:<8} {:<20} {:<10} {:>7} {:>7} {:>9} {:>6}  {}",
                    p.name,
                    if p.revoked { "revoked" } else { "active" },
                    p.courses.join(","),
                    p.priorities.join(","),
                    p.submissions,
                    p.pending,
                    p.delivered,
                    p.failed,
                    webhook
                );
            }
        }
        PlatformsCommand::Revoke { name } => {
            if !platforms::revoke(&conn, &name, now_ms())? {
                return Err(missing(&name));
            }
            println!("platform {name} is revoked: its token is refused from now on");
        }
        PlatformsCommand::SetWebhook { name, url, none } => {
            anyhow::ensure!(
                url.is_some() || none,
                "give the webhook URL, or --none to send no webhooks"
            );
            if let Some(u) = &url {
                check_webhook(settings, u)?;
            }
            if !platforms::set_webhook(&conn, &name, url.as_deref())? {
                return Err(missing(&name));
            }
            match url {
                Some(u) => println!("platform {name}'s webhooks go to {u}"),
                None => println!("platform {name} gets no webhooks"),
            }
        }
        PlatformsCommand::RotateSecret {
            name,
            overlap_hours,
        } => {
            let secret = super::new_secret();
            let until = now_ms() + overlap_hours as i64 * 3_600_000;
            if !platforms::rotate_secret(&conn, &name, &secret, until)? {
                return Err(missing(&name));
            }
            eprintln!(
                "platform {name}'s new signing secret (the old one signs beside it for \
                 {overlap_hours} h):"
            );
            println!("{secret}");
        }
        PlatformsCommand::Redeliver { name } => {
            let n = platforms::redeliver(&conn, &name, now_ms())?;
            println!("{n} failed delivery(ies) of platform {name} queued again");
        }
    }
    Ok(())
}
