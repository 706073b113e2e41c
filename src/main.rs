//! The command line: parse, call the library, print, exit.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use clauth_helper::error::{CodedError, ErrorCode, code_of, coded, message_of};
use clauth_helper::helper;
use clauth_helper::layout::Layout;
use clauth_helper::profile::{self, CredentialSource};
use clauth_helper::runtime::{self, LinkModeRequest};
use clauth_helper::{run, serve};

#[derive(Parser)]
#[command(
    name = "clauth-helper",
    version,
    about = "Run Claude Code under several accounts at once, safely."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Protocol: start a session of a profile (JSON request on stdin, response on stdout).
    #[command(
        after_help = "Example:\n  echo '{\"profile\": \"work\", \"owner_pid\": 4242}' | clauth-helper acquire"
    )]
    Acquire,
    /// Protocol: save refreshed credentials and sync files for a session.
    #[command(
        after_help = "Example:\n  echo '{\"session\": \"s-3f67a8a0cc9cb163b4043643\"}' | clauth-helper tick"
    )]
    Tick,
    /// Protocol: end a session; the last one tears the runtime down.
    #[command(
        after_help = "Example:\n  echo '{\"session\": \"s-3f67a8a0cc9cb163b4043643\"}' | clauth-helper release"
    )]
    Release,
    /// Protocol: profiles, live sessions, runtimes and credential expiry (never tokens).
    #[command(after_help = "Example:\n  echo '{\"profile\": \"work\"}' | clauth-helper status")]
    Status,
    /// Protocol: newline-delimited requests on stdin; sessions live as long as this process.
    #[command(
        after_help = "Example:\n  printf '%s\\n' '{\"verb\": \"acquire\", \"id\": 1, \"profile\": \"work\"}' | clauth-helper serve"
    )]
    Serve,
    /// Run a command (default: claude) under a profile; exits with the command's status.
    #[command(
        after_help = "Examples:\n  clauth-helper run work\n  clauth-helper run personal -- claude --continue\n  clauth-helper run work --link-mode fake -- claude -p 'summarise the diff'"
    )]
    Run(RunArgs),
    /// Protocol: the protocol versions, verbs and features this binary supports.
    #[command(after_help = "Example:\n  echo '{}' | clauth-helper capabilities")]
    Capabilities,
    /// Manage profiles (one per account).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Reclaim runtimes left without a live session (after a crash), after a final sync.
    #[command(after_help = "Example:\n  clauth-helper gc")]
    Gc,
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  clauth-helper completions bash > ~/.local/share/bash-completion/completions/clauth-helper\n  clauth-helper completions zsh > ~/.zfunc/_clauth-helper\n  clauth-helper completions fish > ~/.config/fish/completions/clauth-helper.fish"
    )]
    Completions {
        /// bash, zsh or fish (also: elvish, powershell).
        shell: clap_complete::Shell,
    },
    #[command(external_subcommand)]
    Unknown(Vec<String>),
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Create a profile.
    #[command(
        after_help = "Examples:\n  clauth-helper profile add work --from-claude\n  clauth-helper profile add personal --credentials - < personal.json\n  clauth-helper profile add gateway --env ANTHROPIC_BASE_URL=https://llm.example.com\n  clauth-helper profile add work --replace --credentials new.json"
    )]
    Add(AddArgs),
    /// List profiles.
    #[command(
        after_help = "Examples:\n  clauth-helper profile list\n  clauth-helper profile list --json"
    )]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one profile (credentials are summarised, never printed).
    #[command(
        after_help = "Examples:\n  clauth-helper profile show work\n  clauth-helper profile show work --json"
    )]
    Show {
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a profile (refused while it has a live session).
    #[command(after_help = "Example:\n  clauth-helper profile remove old-work")]
    Remove { name: String },
}

#[derive(Args)]
struct RunArgs {
    /// The profile to run under.
    profile: String,
    /// auto (default: symlinks where they work), real or fake.
    #[arg(long, value_name = "MODE")]
    link_mode: Option<String>,
    /// The command and its arguments, after `--`; `claude` when omitted.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<std::ffi::OsString>,
}

#[derive(Args)]
struct AddArgs {
    /// Profile name: 1-64 letters, digits, '-', '_', '.', not starting with '.'.
    name: String,
    /// Copy the credentials Claude Code saved in ~/.claude/.credentials.json.
    #[arg(long, conflicts_with = "credentials")]
    from_claude: bool,
    /// Read credentials JSON from FILE ('-' for standard input).
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Environment for Claude Code under this profile, merged into settings.json's env block.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read KEY=VALUE lines (blank lines and `#` comments skipped) from FILE, so secret values
    /// stay out of argv; '-' is standard input.
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// Update an existing profile (refused while it has a live session); its env is kept
    /// unless --env or --env-file is given.
    #[arg(long)]
    replace: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let layout = Layout::from_env();
    match cli.command {
        Command::Acquire => oneshot(&layout, "acquire"),
        Command::Tick => oneshot(&layout, "tick"),
        Command::Release => oneshot(&layout, "release"),
        Command::Status => oneshot(&layout, "status"),
        Command::Capabilities => oneshot(&layout, "capabilities"),
        Command::Unknown(args) => {
            let verb = args.first().map(String::as_str).unwrap_or("");
            eprintln!("clauth-helper: not a command; see `clauth-helper --help`");
            oneshot(&layout, verb)
        }
        Command::Serve => match serve::serve(
            wire(&layout).as_ref().map(|l| *l),
            io::stdin(),
            io::stdout(),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("clauth-helper serve: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => run_command(layout, args),
        Command::Profile(cmd) => human(layout.and_then(|l| profile_command(&l, cmd))),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "clauth-helper",
                &mut io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Gc => human(layout.and_then(|l| {
            let collected = runtime::gc(&l)?;
            println!("{}", serde_json::to_string_pretty(&collected)?);
            Ok(())
        })),
    }
}

/// The layout as the protocol sees it: a failure to build it is answered with its code.
fn wire(layout: &anyhow::Result<Layout>) -> Result<&Layout, CodedError> {
    layout.as_ref().map_err(helper::to_coded)
}

fn oneshot(layout: &anyhow::Result<Layout>, verb: &str) -> ExitCode {
    let ok = helper::oneshot(
        wire(layout).as_ref().map(|l| *l),
        verb,
        &mut io::stdin().lock(),
        &mut io::stdout().lock(),
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_command(layout: anyhow::Result<Layout>, args: RunArgs) -> ExitCode {
    let result = layout.and_then(|layout| {
        let link_mode = match args.link_mode.as_deref() {
            None => None,
            Some(m) => Some(LinkModeRequest::parse(m).ok_or_else(|| {
                coded(
                    ErrorCode::InvalidRequest,
                    "--link-mode must be auto, real or fake",
                )
            })?),
        };
        run::run(
            &layout,
            run::RunOptions {
                profile: args.profile,
                link_mode,
                command: args.command,
            },
        )
    });
    match result {
        Ok(run::Outcome::Exited(code)) => ExitCode::from(code.clamp(0, 255) as u8),
        Ok(run::Outcome::NotStarted(code, why)) => {
            eprintln!("clauth-helper run: {why}");
            ExitCode::from(code as u8)
        }
        Err(e) => {
            eprintln!("clauth-helper: error[{}]: {}", code_of(&e), message_of(&e));
            ExitCode::from(run::EXIT_WRAPPER_FAILED as u8)
        }
    }
}

fn human(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clauth-helper: error[{}]: {}", code_of(&e), message_of(&e));
            ExitCode::FAILURE
        }
    }
}

fn profile_command(layout: &Layout, cmd: ProfileCommand) -> anyhow::Result<()> {
    match cmd {
        ProfileCommand::Add(args) => {
            let mut env = BTreeMap::new();
            let mut pairs = args.env.clone();
            if let Some(path) = &args.env_file {
                let text = if path.as_os_str() == "-" {
                    let mut text = String::new();
                    io::stdin().read_to_string(&mut text)?;
                    text
                } else {
                    std::fs::read_to_string(path).map_err(|e| {
                        coded(
                            ErrorCode::InvalidRequest,
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?
                };
                pairs.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                );
            }
            for pair in &pairs {
                // The value may be a secret: the message does not repeat the argument.
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    coded(
                        ErrorCode::InvalidRequest,
                        "--env takes KEY=VALUE, and one of them has no '='",
                    )
                })?;
                env.insert(k.to_owned(), v.to_owned());
            }
            let source = if args.from_claude {
                CredentialSource::FromClaude
            } else if let Some(path) = &args.credentials {
                let mut bytes = Vec::new();
                if path.as_os_str() == "-" {
                    io::stdin().read_to_end(&mut bytes)?;
                } else {
                    bytes = std::fs::read(path).map_err(|e| {
                        coded(
                            ErrorCode::InvalidCredentials,
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?;
                }
                CredentialSource::Bytes(bytes)
            } else {
                CredentialSource::None
            };
            runtime::add_profile(layout, &args.name, source, env, args.replace)?;
            let status = runtime::profile_status_of(layout, &args.name)?;
            eprintln!(
                "profile {} {}; credentials: {}",
                args.name,
                if args.replace { "saved" } else { "added" },
                describe_credentials(&status.credentials)
            );
            Ok(())
        }
        ProfileCommand::List { json } => {
            let status = runtime::status(layout, None)?;
            let mut out = io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&status.profiles)?)?;
            } else if status.profiles.is_empty() {
                eprintln!(
                    "no profiles yet; add one with `clauth-helper profile add NAME --from-claude`"
                );
            } else {
                for p in &status.profiles {
                    writeln!(
                        out,
                        "{:<24} {:<3} session(s)  credentials: {}",
                        p.name,
                        p.sessions.len(),
                        describe_credentials(&p.credentials)
                    )?;
                }
            }
            Ok(())
        }
        ProfileCommand::Show { name, json } => {
            let status = runtime::profile_status_of(layout, &name)?;
            let config = profile::load_config(layout, &name)?;
            let env: BTreeMap<&String, &str> = config
                .env
                .iter()
                .map(|(k, v)| {
                    (
                        k,
                        if profile::is_secret_key(k) {
                            "<redacted>"
                        } else {
                            v.as_str()
                        },
                    )
                })
                .collect();
            let mut out = io::stdout().lock();
            if json {
                let mut value = serde_json::to_value(&status)?;
                value["env"] = serde_json::to_value(&env)?;
                value["dir"] = serde_json::to_value(layout.profile_dir(&name))?;
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                writeln!(out, "profile:     {name}")?;
                writeln!(out, "directory:   {}", layout.profile_dir(&name).display())?;
                writeln!(
                    out,
                    "credentials: {}",
                    describe_credentials(&status.credentials)
                )?;
                for (k, v) in &env {
                    writeln!(out, "env:         {k}={v}")?;
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
            }
            Ok(())
        }
        ProfileCommand::Remove { name } => {
            runtime::remove_profile(layout, &name)?;
            eprintln!("profile {name} removed");
            Ok(())
        }
    }
}

fn describe_credentials(c: &clauth_helper::credentials::Report) -> String {
    if !c.present {
        return "none (log in inside a session)".into();
    }
    let sub = c.subscription_type.as_deref().unwrap_or("unknown plan");
    match c.expires_at {
        Some(ms) => format!("{sub}, access token expires at {ms} (epoch ms)"),
        None => sub.to_owned(),
    }
}
