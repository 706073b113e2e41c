//! The commands made for people: what they read from files and standard input, and what they
//! print. Secrets stay out of every line: credentials are summarised, secret-looking env values
//! redacted.

use std::collections::BTreeMap;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::app;
use crate::error::{ErrorCode, coded};
use crate::ids::now_ms;
use crate::layout::Layout;
use crate::profile::{self, CredentialSource};
use crate::protocol::{
    AccountInfo, CredentialsReport, ProfileName, SessionInfo, UsageError, UsageReport,
};
use crate::usage::{time::parse_rfc3339, windows_of};

/// What `profile add` was given.
pub struct AddOptions {
    pub name: ProfileName,
    pub from_claude: bool,
    /// A credentials file, `-` for standard input.
    pub credentials: Option<PathBuf>,
    /// `KEY=VALUE` pairs from the command line.
    pub env: Vec<String>,
    /// A file of `KEY=VALUE` lines, `-` for standard input.
    pub env_file: Option<PathBuf>,
    pub replace: bool,
}

/// Reads a file the user named, or standard input for `-`; a terminal there is refused at
/// once with `code` (a person would wait for a prompt that never comes), saying to pipe it.
fn read_input(path: &Path, code: ErrorCode, what: &str, example: &str) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        if io::stdin().is_terminal() {
            return Err(coded(
                code,
                format!(
                    "'-' reads {what} from standard input, which is a terminal; give a file or pipe it in: `{example}`"
                ),
            ));
        }
        let mut bytes = Vec::new();
        io::stdin().read_to_end(&mut bytes)?;
        Ok(bytes)
    } else {
        std::fs::read(path).map_err(|e| coded(code, format!("cannot read {}: {e}", path.display())))
    }
}

/// The env from `--env` pairs and `--env-file` lines (blank lines and `#` comments skipped). A
/// value may be a secret: no message repeats one.
fn env_of(
    pairs: &[String],
    env_file: Option<&Path>,
    example: &str,
) -> Result<BTreeMap<String, String>> {
    let mut lines: Vec<String> = pairs.to_vec();
    if let Some(path) = env_file {
        let bytes = read_input(path, ErrorCode::InvalidRequest, "KEY=VALUE lines", example)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            coded(
                ErrorCode::InvalidRequest,
                format!("{} is not UTF-8 text", path.display()),
            )
        })?;
        lines.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    let mut env = BTreeMap::new();
    for pair in &lines {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            coded(
                ErrorCode::InvalidRequest,
                "variables are given as KEY=VALUE, and one of them has no '='",
            )
        })?;
        env.insert(k.to_owned(), v.to_owned());
    }
    Ok(env)
}

/// `profile add`.
pub fn profile_add(layout: &Layout, opts: AddOptions) -> Result<()> {
    let example = format!(
        "clauth-helper profile add {} --env-file - < vars.env",
        opts.name
    );
    let env = env_of(&opts.env, opts.env_file.as_deref(), &example)?;
    let source = if opts.from_claude {
        CredentialSource::FromClaude
    } else if let Some(path) = &opts.credentials {
        CredentialSource::Bytes(read_input(
            path,
            ErrorCode::InvalidCredentials,
            "the credentials JSON",
            &format!(
                "clauth-helper profile add {} --credentials - < credentials.json",
                opts.name
            ),
        )?)
    } else {
        CredentialSource::None
    };
    let aside = app::add_profile(layout, &opts.name, source, env, opts.replace)?;
    let status = app::profile_status(layout, &opts.name)?;
    let config = profile::load_config(layout, &opts.name)?;
    let login = Login::of(&status.credentials, &config.env, now_ms());
    eprintln!(
        "profile {} {}; login: {}{}",
        opts.name,
        if opts.replace { "saved" } else { "added" },
        login.sentence(&opts.name),
        if status.home {
            " (the home login: it stays in the claude home, where plain claude uses it)"
        } else {
            ""
        }
    );
    if let Some(path) = aside {
        eprintln!(
            "the login it replaced is kept in {}; restore it with `clauth-helper profile add {} --replace --credentials {}`",
            path.display(),
            opts.name,
            path.display()
        );
    }
    Ok(())
}

/// `profile use`.
pub fn profile_use(
    layout: &Layout,
    name: &ProfileName,
    save_home_as: Option<&ProfileName>,
) -> Result<()> {
    let used = app::use_profile(layout, name, save_home_as)?;
    if used.already {
        eprintln!("profile {name} is already the home profile");
        return Ok(());
    }
    if let Some(other) = used.saved_home_as {
        eprintln!("the home's previous login is now profile {other}");
    }
    eprintln!("profile {name} is now the home profile: plain `claude` runs as its account");
    Ok(())
}

/// `profile set-env`.
pub fn profile_set_env(
    layout: &Layout,
    name: &ProfileName,
    pairs: &[String],
    env_file: Option<&Path>,
) -> Result<()> {
    let example = format!("clauth-helper profile set-env {name} --env-file - < vars.env");
    let set = env_of(pairs, env_file, &example)?;
    if set.is_empty() {
        return Err(coded(
            ErrorCode::InvalidRequest,
            format!(
                "nothing to set; give KEY=VALUE pairs or --env-file: `clauth-helper profile set-env {name} KEY=VALUE`"
            ),
        ));
    }
    let change = app::change_env(layout, name, set, &[])?;
    eprintln!(
        "profile {name}: set {} (from its next session on)",
        change.changed.join(", ")
    );
    Ok(())
}

/// `profile unset-env`.
pub fn profile_unset_env(layout: &Layout, name: &ProfileName, keys: &[String]) -> Result<()> {
    let change = app::change_env(layout, name, BTreeMap::new(), keys)?;
    if !change.changed.is_empty() {
        eprintln!(
            "profile {name}: removed {} (from its next session on)",
            change.changed.join(", ")
        );
    }
    if !change.absent.is_empty() {
        eprintln!(
            "profile {name} does not set {}; nothing to remove there",
            change.absent.join(", ")
        );
    }
    Ok(())
}

/// `profile rename`.
pub fn profile_rename(layout: &Layout, old: &ProfileName, new: &ProfileName) -> Result<()> {
    app::rename_profile(layout, old, new)?;
    eprintln!("profile {old} is now {new}");
    Ok(())
}

/// `profile list`, and `status` on a terminal; with `usage`, each account's windows too.
pub fn profile_list(layout: &Layout, json: bool, usage: bool, out: &mut impl Write) -> Result<()> {
    let status = match usage {
        true => app::status_with_usage(layout, None)?,
        false => app::status(layout, None)?,
    };
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&status.profiles)?)?;
        return Ok(());
    }
    if status.profiles.is_empty() {
        eprintln!(
            "no profiles yet; add one with `clauth-helper profile add NAME --from-claude` (the login in ~/.claude)"
        );
        return Ok(());
    }
    let now = now_ms();
    let mut rows = vec![vec![
        String::new(),
        "PROFILE".to_owned(),
        "ACCOUNT".to_owned(),
        "PLAN".to_owned(),
        "LOGIN".to_owned(),
        "SESSIONS".to_owned(),
    ]];
    if usage {
        rows[0].push("USAGE".to_owned());
    }
    for p in &status.profiles {
        // A damaged profile.json is `profile show`'s to report; the list still lists.
        let env = profile::load_config(layout, &p.name)
            .map(|c| c.env)
            .unwrap_or_default();
        let login = Login::of(&p.credentials, &env, now);
        let mut row = vec![
            if p.home { "*" } else { "" }.to_owned(),
            p.name.clone(),
            account_text(p.account.as_ref()).unwrap_or_else(|| "-".into()),
            login.plan().unwrap_or("-").to_owned(),
            login.cell(),
            p.sessions.len().to_string(),
        ];
        if let Some(report) = &p.usage {
            row.push(usage_text(report, now));
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == row.len() - 1 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    if status.profiles.iter().any(|p| p.home) {
        writeln!(out, "* the home profile: plain `claude` uses its login")?;
    }
    for p in &status.profiles {
        for w in &p.warnings {
            writeln!(out, "warning: {}: {}", p.name, w.message)?;
        }
    }
    Ok(())
}

/// `status` when standard input is a terminal: a person asked, not a program.
pub fn status_summary(layout: &Layout, out: &mut impl Write) -> Result<()> {
    profile_list(layout, false, false, out)?;
    eprintln!(
        "(this is `clauth-helper profile list`; programs send JSON: `echo '{{}}' | clauth-helper status`)"
    );
    Ok(())
}

/// `profile show`.
pub fn profile_show(
    layout: &Layout,
    name: &ProfileName,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let status = app::status_with_usage(layout, Some(name))?
        .profiles
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("profile {name} vanished"))?;
    let config = profile::load_config(layout, name)?;
    let env: BTreeMap<&String, &str> = config
        .env
        .iter()
        .map(|(k, v)| (k, shown_value(k, v)))
        .collect();
    if json {
        let mut value = serde_json::to_value(&status)?;
        value["env"] = serde_json::to_value(&env)?;
        value["dir"] = serde_json::to_value(layout.profile_dir(name))?;
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let now = now_ms();
    let login = Login::of(&status.credentials, &config.env, now);
    writeln!(
        out,
        "profile:     {name}{}",
        if status.home {
            " (the home profile: plain `claude` uses its login)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "account:     {}",
        account_text(status.account.as_ref())
            .unwrap_or_else(|| "not known yet (a session records it)".into())
    )?;
    if let Some(plan) = login.plan() {
        writeln!(out, "plan:        {plan}")?;
    }
    writeln!(out, "login:       {}", login.sentence(name))?;
    if let Some(report) = &status.usage {
        writeln!(out, "usage:       {}", usage_text(report, now))?;
    }
    if status.home {
        writeln!(out, "kept in:     {}", layout.claude_home.display())?;
    }
    writeln!(out, "directory:   {}", layout.profile_dir(name).display())?;
    for (k, v) in &env {
        writeln!(out, "env:         {k}={v}")?;
    }
    for w in &status.warnings {
        writeln!(out, "warning:     {}", w.message)?;
    }
    match &status.runtime {
        Some(rt) => writeln!(
            out,
            "runtime:     {} ({} mode{})",
            rt.config_dir.display(),
            rt.link_mode.as_str(),
            if rt.orphaned {
                "; left by a crash: `clauth-helper gc` reclaims it"
            } else {
                ""
            }
        )?,
        None => writeln!(out, "runtime:     none")?,
    }
    match status.sessions.len() {
        0 => writeln!(out, "sessions:    none")?,
        n => {
            writeln!(out, "sessions:    {n}")?;
            for s in &status.sessions {
                writeln!(out, "  {}  {}", s.session, session_text(s, now))?;
            }
        }
    }
    Ok(())
}

/// `profile remove`. On a terminal, a profile whose login exists nowhere else is removed only
/// when the person says so (`yes` skips the question).
pub fn profile_remove(layout: &Layout, name: &ProfileName, yes: bool) -> Result<()> {
    if !yes && io::stdin().is_terminal() {
        let status = app::profile_status(layout, name)?;
        if status.credentials.present && !status.home {
            let account = account_text(status.account.as_ref())
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            eprint!(
                "profile {name} holds a login{account} that exists nowhere else. Remove it? It is kept aside for 30 days. [y/N] "
            );
            io::stderr().flush()?;
            let mut answer = String::new();
            io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
                return Err(coded(
                    ErrorCode::InvalidRequest,
                    format!(
                        "profile {name} was not removed (pass --yes to remove it without asking)"
                    ),
                ));
            }
        }
    }
    let removed = app::remove_profile(layout, name)?;
    eprintln!("profile {name} removed");
    if removed.home {
        eprintln!("its login stays in the claude home, where plain claude uses it");
    }
    let what = match removed.had_login {
        true => "its login and settings are",
        false => "its settings are",
    };
    eprintln!(
        "{what} kept in {} for 30 days; `clauth-helper profile restore {name}` puts them back",
        removed.kept.display()
    );
    Ok(())
}

/// `profile restore`.
pub fn profile_restore(layout: &Layout, name: &ProfileName) -> Result<()> {
    let restored = app::restore_profile(layout, name)?;
    eprintln!(
        "profile {name} restored from {}{}",
        restored.from.display(),
        if restored.had_login {
            ", with its login"
        } else {
            "; it has no login of its own"
        }
    );
    Ok(())
}

/// `gc`: a sentence for a person (stdout a terminal), JSON for a program or with `json`.
pub fn gc(layout: &Layout, json: bool, out: &mut impl Write) -> Result<()> {
    let collected = app::gc(layout)?;
    if json || !io::stdout().is_terminal() {
        writeln!(out, "{}", serde_json::to_string_pretty(&collected)?)?;
    } else {
        writeln!(out, "{}", gc_sentence(&collected))?;
    }
    match collected.runtimes_failed.len() {
        0 => Ok(()),
        n => Err(anyhow::anyhow!(
            "{n} runtime(s) could not be reclaimed; the others were: {}",
            collected.runtimes_failed.join("; ")
        )),
    }
}

fn gc_sentence(c: &app::Collected) -> String {
    let mut parts = Vec::new();
    match c.runtimes_removed.len() {
        0 => {}
        1 => parts.push(format!(
            "reclaimed the runtime of {} (after saving what it held)",
            c.runtimes_removed[0]
        )),
        n => parts.push(format!(
            "reclaimed {n} runtimes ({}) after saving what they held",
            c.runtimes_removed.join(", ")
        )),
    }
    match c.sessions_pruned {
        0 => {}
        1 => parts.push("pruned 1 dead session".to_owned()),
        n => parts.push(format!("pruned {n} dead sessions")),
    }
    match c.removed_deleted.len() {
        0 => {}
        n => parts.push(format!(
            "deleted {n} removed profile(s) kept aside for over 30 days"
        )),
    }
    if parts.is_empty() {
        return "Nothing to reclaim: no runtime is left without a live session.".to_owned();
    }
    let mut sentence = parts.join("; ");
    if let Some(first) = sentence.get(..1) {
        sentence = first.to_uppercase() + &sentence[1..];
    }
    sentence + "."
}

/// What a person sees of an env value: itself, or `<redacted>` when it may be a secret.
fn shown_value<'a>(key: &str, value: &'a str) -> &'a str {
    if profile::is_secret(key, value) {
        "<redacted>"
    } else {
        value
    }
}

fn account_text(account: Option<&AccountInfo>) -> Option<String> {
    let a = account?;
    match (&a.email, &a.organization) {
        (Some(e), Some(o)) => Some(format!("{e} ({o})")),
        (Some(e), None) => Some(e.clone()),
        (None, Some(o)) => Some(o.clone()),
        (None, None) => None,
    }
}

fn session_text(s: &SessionInfo, now: i64) -> String {
    let mut text = format!("started {} ago", span(now - s.created_at));
    if s.held {
        text.push_str(", held by a clauth-helper run or serve process");
    } else if let Some(pid) = s.owner_pid {
        text.push_str(&format!(", until process {pid} ends"));
    }
    match s.lease_expires_at {
        Some(t) if t > now => text.push_str(&format!(", lease ends in {}", span(t - now))),
        Some(_) => text.push_str(", lease ended"),
        None if !s.held && s.owner_pid.is_none() => text.push_str(", until released"),
        None => {}
    }
    text
}

/// How a profile's sessions authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Login {
    /// Its env sends a token to its own `ANTHROPIC_BASE_URL`: the gateway authenticates.
    Gateway {
        var: &'static str,
        base_url: String,
    },
    /// Its env holds a key or token Claude Code uses before any stored login.
    FromEnv {
        var: &'static str,
    },
    /// A stored login whose access token is valid (until the epoch ms given, when known).
    Valid {
        plan: Option<String>,
        until: Option<i64>,
    },
    /// A stored login whose access token has expired; the refresh token renews it.
    Expired {
        plan: Option<String>,
        at: i64,
    },
    None,
}

/// The env variables that authenticate Claude Code before any stored login, in its order.
const ENV_LOGINS: &[&str] = &[
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_API_KEY",
];

impl Login {
    fn of(c: &CredentialsReport, env: &BTreeMap<String, String>, now: i64) -> Login {
        if let Some(var) = ENV_LOGINS.iter().find(|v| env.contains_key(**v)) {
            return match env.get("ANTHROPIC_BASE_URL") {
                Some(url) => Login::Gateway {
                    var,
                    base_url: shown_value("ANTHROPIC_BASE_URL", url).to_owned(),
                },
                None => Login::FromEnv { var },
            };
        }
        if !c.present {
            return Login::None;
        }
        let plan = c.subscription_type.clone();
        match c.expires_at {
            Some(at) if at <= now => Login::Expired { plan, at },
            until => Login::Valid { plan, until },
        }
    }

    fn plan(&self) -> Option<&str> {
        match self {
            Login::Valid { plan, .. } | Login::Expired { plan, .. } => plan.as_deref(),
            _ => None,
        }
    }

    /// The table's cell.
    fn cell(&self) -> String {
        match self {
            Login::Gateway { .. } => "gateway".into(),
            Login::FromEnv { .. } => "from env".into(),
            Login::Valid { until: Some(t), .. } => format!("valid for {}", span(t - now_ms())),
            Login::Valid { until: None, .. } => "valid".into(),
            Login::Expired { at, .. } => format!("expired {} ago", span(now_ms() - at)),
            Login::None => "none".into(),
        }
    }

    /// A sentence for `profile show` and `profile add`.
    fn sentence(&self, name: &ProfileName) -> String {
        let now = now_ms();
        match self {
            Login::Gateway { var, base_url } => {
                format!("authenticates through its gateway {base_url} ({var} in its env)")
            }
            Login::FromEnv { var } => format!("authenticates with {var} from its env"),
            Login::Valid { until: Some(t), .. } => format!(
                "logged in; the access token is valid for {}, until {} (sessions refresh it)",
                span(t - now),
                utc(*t)
            ),
            Login::Valid { until: None, .. } => "logged in".into(),
            Login::Expired { at, .. } => format!(
                "logged in; the access token expired {} ago, at {} (the next session refreshes it)",
                span(now - at),
                utc(*at)
            ),
            Login::None => {
                format!("none yet (log in with /login inside `clauth-helper run {name}`)")
            }
        }
    }
}

/// A length of time for people: `45 s`, `12 min`, `3 h`, `5 d`.
fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// A profile's usage for people: each window as a percentage with the time to its reset, or
/// why there are no figures.
fn usage_text(report: &UsageReport, now: i64) -> String {
    let Some(usage) = &report.usage else {
        return match report.usage_error {
            Some(UsageError::NoLogin) => "none (no login)".to_owned(),
            Some(UsageError::ApiKey) => "none (an API key or token)".to_owned(),
            Some(UsageError::Gateway) => "none (a gateway or another provider)".to_owned(),
            Some(UsageError::NoProfileScope) => "none (a login for inference only)".to_owned(),
            Some(UsageError::TokenExpired) => {
                "unknown (token expired; the next session refreshes it)".to_owned()
            }
            Some(UsageError::Unauthorized) => "unknown (the server refused the login)".to_owned(),
            Some(UsageError::RateLimited) => "unknown (asked too often; later)".to_owned(),
            Some(UsageError::Unreachable) => "unknown (the server could not be reached)".to_owned(),
            Some(code) => format!("unknown ({})", code.as_str()),
            None => "unknown".to_owned(),
        };
    };
    let mut parts: Vec<String> = windows_of(usage)
        .into_iter()
        .map(|(name, w)| {
            let label = match name {
                "five_hour" => "5-hour",
                "seven_day" => "7-day",
                other => other,
            };
            let percent = (w.utilization * 10.0).round() / 10.0;
            match w.resets_at.as_deref().and_then(parse_rfc3339) {
                Some(at) if at > now => {
                    format!("{label} {percent}% (resets in {})", span(at - now))
                }
                Some(_) => format!("{label} {percent}% (reset since)"),
                None => format!("{label} {percent}%"),
            }
        })
        .collect();
    if parts.is_empty() {
        parts.push("no windows reported".to_owned());
    }
    let mut text = parts.join(", ");
    if usage.stale {
        text.push_str(&format!("; as of {} ago", span(now - usage.fetched_at)));
    }
    text
}

/// Epoch milliseconds as `2030-01-01 00:00 UTC`.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// The one-line answer of a protocol verb whose standard input is a terminal: it reads JSON,
/// which a person is not about to type.
pub fn protocol_hint(verb: &str) -> String {
    let example = match verb {
        "acquire" => "echo '{\"profile\": \"work\"}' | clauth-helper acquire",
        "tick" => "echo '{\"session\": \"s-...\"}' | clauth-helper tick",
        "release" => "echo '{\"session\": \"s-...\"}' | clauth-helper release",
        _ => "echo '{}' | clauth-helper capabilities",
    };
    format!(
        "clauth-helper {verb} is a protocol verb: it reads one JSON request on standard input, which is a terminal here. Programs send it: `{example}`. To start Claude Code yourself: `clauth-helper run PROFILE`; to see profiles: `clauth-helper profile list`."
    )
}

#[cfg(test)]
mod tests {
    use super::{UsageError, UsageReport, span, usage_text, utc};
    use crate::protocol::{Usage, UsageWindow};
    use crate::usage::time::parse_rfc3339;

    #[test]
    fn usage_reads_as_percentages_with_the_time_to_reset() {
        let now = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let window = |utilization, resets_at: Option<&str>| UsageWindow {
            utilization,
            resets_at: resets_at.map(str::to_owned),
        };
        let usage = Usage {
            five_hour: Some(window(30.25, Some("2030-01-01T02:13:00Z"))),
            seven_day: Some(window(50.0, Some("2030-01-04T04:00:00Z"))),
            other: [("seven_day_opus".to_owned(), window(0.0, None))].into(),
            extra_usage: None,
            fetched_at: now - 300_000,
            stale: true,
        };
        assert_eq!(
            usage_text(&UsageReport::of(usage), now),
            "5-hour 30.3% (resets in 2 h), 7-day 50% (resets in 3 d), seven_day_opus 0%; as of 5 min ago"
        );
        assert_eq!(
            usage_text(&UsageReport::error(UsageError::NoLogin), now),
            "none (no login)"
        );
    }

    #[test]
    fn times_read_as_people_write_them() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_893_456_000_000), "2030-01-01 00:00 UTC");
        assert_eq!(utc(951_825_600_000), "2000-02-29 12:00 UTC");
        assert_eq!(span(45_000), "45 s");
        assert_eq!(span(12 * 60_000), "12 min");
        assert_eq!(span(3 * 3_600_000 + 5), "3 h");
        assert_eq!(span(5 * 86_400_000), "5 d");
    }
}
