//! The command line: parse, call the library, print, exit.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use clauth_helper::app::OneShot;
use clauth_helper::cli::{self, Cli, Command, ProfileCommand, RunArgs};
use clauth_helper::error::{CodedError, ErrorCode, code_of, coded, message_of, to_coded};
use clauth_helper::human::{self, AddOptions};
use clauth_helper::layout::Layout;
use clauth_helper::protocol::{self, LinkModeRequest, Pick, ProfileName};
use clauth_helper::run::{self, Finished, RunOptions};
use clauth_helper::{completions, profile, serve, suggest};

/// The exit status of a command-line mistake, as clap gives it.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let layout = Layout::from_env().map_err(|e| to_coded(&e));
    let wire = layout.as_ref();
    // A protocol verb whose standard input is a terminal has a person in front of it, not a
    // program: it answers at once instead of waiting for JSON nobody is going to type.
    let person = io::stdin().is_terminal();
    match cli.command {
        Command::Acquire | Command::Tick | Command::Release | Command::Capabilities if person => {
            let verb = match cli.command {
                Command::Acquire => "acquire",
                Command::Tick => "tick",
                Command::Release => "release",
                _ => "capabilities",
            };
            eprintln!("{}", human::protocol_hint(verb));
            ExitCode::from(EXIT_USAGE)
        }
        Command::Acquire => oneshot(wire, "acquire"),
        Command::Tick => oneshot(wire, "tick"),
        Command::Release => oneshot(wire, "release"),
        Command::Capabilities => oneshot(wire, "capabilities"),
        Command::Status if person => {
            human(wire, |l| human::status_summary(l, &mut io::stdout().lock()))
        }
        Command::Status => oneshot(wire, "status"),
        Command::Unknown(args) => unknown(wire, &args, person),
        Command::Serve => {
            if person {
                eprintln!(
                    "clauth-helper serve: reading newline-delimited JSON requests from this terminal; its sessions end with it (Ctrl-D)"
                );
            }
            match serve::serve(wire, io::stdin(), io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("clauth-helper serve: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(args) => run_command(wire, args),
        Command::Profile(cmd) => human(wire, |l| profile_command(l, cmd)),
        Command::Completions { shell } => {
            let script = completions::script(shell, &mut Cli::command(), "clauth-helper");
            match script.and_then(|s| Ok(io::stdout().lock().write_all(&s)?)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("clauth-helper completions: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CompleteProfiles { index, words } => complete_profiles(wire, index, &words),
        Command::Gc { json } => human(wire, |l| human::gc(l, json, &mut io::stdout().lock())),
    }
}

fn oneshot(layout: Result<&Layout, &CodedError>, verb: &str) -> ExitCode {
    let mut handler = OneShot::new(layout);
    let (mut input, mut output) = (io::stdin().lock(), io::stdout().lock());
    match protocol::oneshot(&mut handler, verb, &mut input, &mut output) {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// A word that is no command. A program calling a verb this binary does not know (one word,
/// JSON on standard input) gets the protocol's `unknown_verb`; a person (more words, or a
/// terminal) gets a usage error with the command it probably meant.
fn unknown(layout: Result<&Layout, &CodedError>, args: &[String], person: bool) -> ExitCode {
    let word = args.first().map(String::as_str).unwrap_or("");
    let command = Cli::command();
    let names: Vec<&str> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name())
        .collect();
    // Only a plain word is repeated: argv may hold anything, even a pasted secret.
    let plain = !word.is_empty()
        && word.len() <= 32
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let shown = if plain {
        format!("'{word}' is not a command")
    } else {
        "that is not a command".to_owned()
    };
    let tip = match suggest::closest(word, names.iter().copied()) {
        Some(close) => format!("; did you mean '{close}'?"),
        None => String::new(),
    };
    if person || args.len() > 1 {
        eprintln!(
            "error: {shown}{tip}\n\nUsage: clauth-helper <COMMAND>\n\nFor the commands, try 'clauth-helper --help'."
        );
        return ExitCode::from(EXIT_USAGE);
    }
    eprintln!("clauth-helper: {shown}{tip} (see `clauth-helper --help`)");
    oneshot(layout, word)
}

/// The hidden helper of the completion scripts: profile names, one a line, when the word at
/// `index` takes one; exit 1 (and nothing) otherwise, so the script completes it its own way.
fn complete_profiles(
    layout: Result<&Layout, &CodedError>,
    index: usize,
    words: &[String],
) -> ExitCode {
    if !cli::completes_profile(words, index) {
        return ExitCode::FAILURE;
    }
    // Reading the profiles directory takes no lock and creates nothing.
    let names = layout
        .ok()
        .and_then(|l| profile::list(l).ok())
        .unwrap_or_default();
    let mut out = io::stdout().lock();
    for name in names {
        let _ = writeln!(out, "{name}");
    }
    ExitCode::SUCCESS
}

fn name(s: &str) -> anyhow::Result<ProfileName> {
    Ok(ProfileName::parse(s)?)
}

fn run_command(layout: Result<&Layout, &CodedError>, args: RunArgs) -> ExitCode {
    let result = (|| {
        let layout = layout.map_err(Clone::clone)?;
        let link_mode = match args.link_mode.as_deref() {
            None => None,
            Some(m) => Some(LinkModeRequest::parse(m).ok_or_else(|| {
                coded(
                    ErrorCode::InvalidRequest,
                    "--link-mode must be auto, real or fake",
                )
            })?),
        };
        let profile = args.profile.as_deref().map(name).transpose()?;
        let pick = match args.pick {
            false => None,
            true => Some(Pick {
                among: match args.among.is_empty() {
                    true => None,
                    false => Some(
                        args.among
                            .iter()
                            .map(|n| name(n))
                            .collect::<Result<_, _>>()?,
                    ),
                },
                min_headroom: None,
            }),
        };
        run::run(
            layout,
            RunOptions {
                profile,
                pick,
                link_mode,
                command: args.command,
            },
        )
    })();
    match result {
        Ok(Finished::Exited(code)) => ExitCode::from(code.clamp(0, 255) as u8),
        Ok(Finished::NotStarted(code, why)) => {
            eprintln!("clauth-helper run: {why}");
            ExitCode::from(code as u8)
        }
        Err(e) => {
            eprintln!("clauth-helper: error[{}]: {}", code_of(&e), message_of(&e));
            ExitCode::from(run::EXIT_WRAPPER_FAILED as u8)
        }
    }
}

fn human(
    layout: Result<&Layout, &CodedError>,
    act: impl FnOnce(&Layout) -> anyhow::Result<()>,
) -> ExitCode {
    match layout
        .map_err(|e| anyhow::Error::new(e.clone()))
        .and_then(act)
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clauth-helper: error[{}]: {}", code_of(&e), message_of(&e));
            ExitCode::FAILURE
        }
    }
}

fn profile_command(layout: &Layout, cmd: ProfileCommand) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match cmd {
        ProfileCommand::Add(a) => human::profile_add(
            layout,
            AddOptions {
                name: name(&a.name)?,
                from_claude: a.from_claude,
                credentials: a.credentials,
                env: a.env,
                env_file: a.env_file,
                replace: a.replace,
            },
        ),
        ProfileCommand::List { json, usage } => human::profile_list(layout, json, usage, &mut out),
        ProfileCommand::Show { name: n, json } => {
            human::profile_show(layout, &name(&n)?, json, &mut out)
        }
        ProfileCommand::Remove { name: n, yes } => human::profile_remove(layout, &name(&n)?, yes),
        ProfileCommand::Restore { name: n } => human::profile_restore(layout, &name(&n)?),
        ProfileCommand::Rename { old, new } => {
            human::profile_rename(layout, &name(&old)?, &name(&new)?)
        }
        ProfileCommand::SetEnv {
            name: n,
            pairs,
            env_file,
        } => human::profile_set_env(layout, &name(&n)?, &pairs, env_file.as_deref()),
        ProfileCommand::UnsetEnv { name: n, keys } => {
            human::profile_unset_env(layout, &name(&n)?, &keys)
        }
        ProfileCommand::Use {
            name: n,
            save_home_as,
        } => {
            let other = save_home_as.as_deref().map(name).transpose()?;
            human::profile_use(layout, &name(&n)?, other.as_ref())
        }
    }
}
