//! The commands made for people: what they read from files and standard input, and what they
//! print. Secrets stay out of every line: credentials are summarised, secret-looking env values
//! redacted.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::app;
use crate::error::{ErrorCode, coded};
use crate::layout::Layout;
use crate::profile::{self, CredentialSource};
use crate::protocol::{CredentialsReport, ProfileName};

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

fn read_input(path: &Path, code: ErrorCode) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        io::stdin().read_to_end(&mut bytes)?;
        Ok(bytes)
    } else {
        std::fs::read(path).map_err(|e| coded(code, format!("cannot read {}: {e}", path.display())))
    }
}

/// The profile's env from `--env` pairs and `--env-file` lines (blank lines and `#` comments
/// skipped). A value may be a secret: no message repeats one.
fn env_of(pairs: &[String], env_file: Option<&Path>) -> Result<BTreeMap<String, String>> {
    let mut lines: Vec<String> = pairs.to_vec();
    if let Some(path) = env_file {
        let bytes = read_input(path, ErrorCode::InvalidRequest)?;
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
                "--env takes KEY=VALUE, and one of them has no '='",
            )
        })?;
        env.insert(k.to_owned(), v.to_owned());
    }
    Ok(env)
}

/// `profile add`.
pub fn profile_add(layout: &Layout, opts: AddOptions) -> Result<()> {
    let env = env_of(&opts.env, opts.env_file.as_deref())?;
    let source = if opts.from_claude {
        CredentialSource::FromClaude
    } else if let Some(path) = &opts.credentials {
        CredentialSource::Bytes(read_input(path, ErrorCode::InvalidCredentials)?)
    } else {
        CredentialSource::None
    };
    let aside = app::add_profile(layout, &opts.name, source, env, opts.replace)?;
    let status = app::profile_status(layout, &opts.name)?;
    eprintln!(
        "profile {} {}; credentials: {}{}",
        opts.name,
        if opts.replace { "saved" } else { "added" },
        describe_credentials(&status.credentials),
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

/// `profile list`.
pub fn profile_list(layout: &Layout, json: bool, out: &mut impl Write) -> Result<()> {
    let status = app::status(layout, None)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&status.profiles)?)?;
    } else if status.profiles.is_empty() {
        eprintln!("no profiles yet; add one with `clauth-helper profile add NAME --from-claude`");
    } else {
        for p in &status.profiles {
            writeln!(
                out,
                "{:<24} {:<3} session(s)  credentials: {}{}",
                p.name,
                p.sessions.len(),
                describe_credentials(&p.credentials),
                if p.home { "  (home)" } else { "" }
            )?;
            for w in &p.warnings {
                writeln!(out, "  warning: {}", w.message)?;
            }
        }
    }
    Ok(())
}

/// `profile show`.
pub fn profile_show(
    layout: &Layout,
    name: &ProfileName,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let status = app::profile_status(layout, name)?;
    let config = profile::load_config(layout, name)?;
    let env: BTreeMap<&String, &str> = config
        .env
        .iter()
        .map(|(k, v)| {
            let shown = if profile::is_secret(k, v) {
                "<redacted>"
            } else {
                v.as_str()
            };
            (k, shown)
        })
        .collect();
    if json {
        let mut value = serde_json::to_value(&status)?;
        value["env"] = serde_json::to_value(&env)?;
        value["dir"] = serde_json::to_value(layout.profile_dir(name))?;
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "profile:     {name}{}",
        if status.home { " (home profile)" } else { "" }
    )?;
    writeln!(out, "directory:   {}", layout.profile_dir(name).display())?;
    writeln!(
        out,
        "credentials: {}",
        describe_credentials(&status.credentials)
    )?;
    for (k, v) in &env {
        writeln!(out, "env:         {k}={v}")?;
    }
    for w in &status.warnings {
        writeln!(out, "warning:     {}", w.message)?;
    }
    match &status.runtime {
        Some(rt) => writeln!(
            out,
            "runtime:     {} ({} mode)",
            rt.config_dir.display(),
            rt.link_mode.as_str()
        )?,
        None => writeln!(out, "runtime:     none")?,
    }
    writeln!(out, "sessions:    {}", status.sessions.len())?;
    for s in &status.sessions {
        writeln!(
            out,
            "  {} (owner pid {:?}, held {})",
            s.session, s.owner_pid, s.held
        )?;
    }
    Ok(())
}

/// `profile remove`.
pub fn profile_remove(layout: &Layout, name: &ProfileName) -> Result<()> {
    let home = app::profile_status(layout, name)?.home;
    app::remove_profile(layout, name)?;
    eprintln!("profile {name} removed");
    if home {
        eprintln!("its login stays in the claude home, where plain claude uses it");
    }
    Ok(())
}

/// `gc`.
pub fn gc(layout: &Layout, out: &mut impl Write) -> Result<()> {
    let collected = app::gc(layout)?;
    writeln!(out, "{}", serde_json::to_string_pretty(&collected)?)?;
    match collected.runtimes_failed.len() {
        0 => Ok(()),
        n => Err(anyhow::anyhow!(
            "{n} runtime(s) could not be reclaimed; the others were: {}",
            collected.runtimes_failed.join("; ")
        )),
    }
}

fn describe_credentials(c: &CredentialsReport) -> String {
    if !c.present {
        return "none (log in inside a session)".into();
    }
    let sub = c.subscription_type.as_deref().unwrap_or("unknown plan");
    match c.expires_at {
        Some(ms) => format!("{sub}, access token expires at {ms} (epoch ms)"),
        None => sub.to_owned(),
    }
}
