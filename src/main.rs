//! The command line: parse, call the library, print, exit.

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use clauth_helper::app::OneShot;
use clauth_helper::cli::{Cli, Command, ProfileCommand, RunArgs};
use clauth_helper::error::{CodedError, ErrorCode, code_of, coded, message_of, to_coded};
use clauth_helper::human::{self, AddOptions};
use clauth_helper::layout::Layout;
use clauth_helper::protocol::{self, LinkModeRequest, ProfileName};
use clauth_helper::run::{self, Finished, RunOptions};
use clauth_helper::serve;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let layout = Layout::from_env().map_err(|e| to_coded(&e));
    let wire = layout.as_ref();
    match cli.command {
        Command::Acquire => oneshot(wire, "acquire"),
        Command::Tick => oneshot(wire, "tick"),
        Command::Release => oneshot(wire, "release"),
        Command::Status => oneshot(wire, "status"),
        Command::Capabilities => oneshot(wire, "capabilities"),
        Command::Unknown(args) => {
            eprintln!("clauth-helper: not a command; see `clauth-helper --help`");
            oneshot(wire, args.first().map(String::as_str).unwrap_or(""))
        }
        Command::Serve => match serve::serve(wire, io::stdin(), io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("clauth-helper serve: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => run_command(wire, args),
        Command::Profile(cmd) => human(wire, |l| profile_command(l, cmd)),
        Command::Completions { shell } => {
            let mut cli = Cli::command();
            clap_complete::generate(shell, &mut cli, "clauth-helper", &mut io::stdout());
            ExitCode::SUCCESS
        }
        Command::Gc => human(wire, |l| human::gc(l, &mut io::stdout().lock())),
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
        let (profile, command) = (name(&args.profile)?, args.command);
        run::run(
            layout,
            RunOptions {
                profile,
                link_mode,
                command,
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
        ProfileCommand::List { json } => human::profile_list(layout, json, &mut out),
        ProfileCommand::Show { name: n, json } => {
            human::profile_show(layout, &name(&n)?, json, &mut out)
        }
        ProfileCommand::Remove { name: n } => human::profile_remove(layout, &name(&n)?),
        ProfileCommand::Use {
            name: n,
            save_home_as,
        } => {
            let other = save_home_as.as_deref().map(name).transpose()?;
            human::profile_use(layout, &name(&n)?, other.as_ref())
        }
    }
}
