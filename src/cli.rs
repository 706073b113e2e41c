//! The command line's grammar: every command, argument and `--help` text. `main.rs` parses
//! with it and calls the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "clauth-helper",
    version,
    about = "Run Claude Code under several accounts at once, safely.",
    after_help = "Start here:\n  clauth-helper profile add work --from-claude   # the login ~/.claude has\n  clauth-helper run work                         # Claude Code under it\n  clauth-helper profile list                     # every profile, its account and login\n\nThe protocol verbs (acquire, tick, release, status, capabilities, serve) read JSON on standard\ninput; they are for programs: see protocol/PROTOCOL.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Commands for people first, in the order of `--help`; the protocol's verbs after them.
#[derive(Subcommand)]
pub enum Command {
    /// Run a command (default: claude) under a profile; exits with the command's status.
    #[command(
        after_help = "Arguments after `--` are the command; when the first of them starts with '-', they\nare arguments for claude.\n\nExamples:\n  clauth-helper run work\n  clauth-helper run work -- --continue          # claude --continue\n  clauth-helper run personal -- -p 'summarise the diff'\n  clauth-helper run work --link-mode fake -- claude --resume\n  clauth-helper run work -- sh -c 'echo $CLAUTH_PROFILE'\n  clauth-helper run --pick                       # the profile with the most headroom\n  clauth-helper run --pick --among work,personal -- --continue"
    )]
    Run(RunArgs),
    /// Manage profiles (one per account).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Profiles, sessions and logins: a summary on a terminal, else the protocol's JSON.
    #[command(
        after_help = "On a terminal it prints what `clauth-helper profile list` prints. A program sends a JSON\nrequest on standard input and gets one JSON response (protocol/PROTOCOL.md, 4.5).\n\nExamples:\n  clauth-helper status\n  echo '{\"profile\": \"work\"}' | clauth-helper status"
    )]
    Status,
    /// Reclaim runtimes left without a live session (after a crash), after a final sync.
    #[command(
        after_help = "It also deletes removed profiles kept aside for more than 30 days.\n\nExamples:\n  clauth-helper gc\n  clauth-helper gc --json"
    )]
    Gc {
        /// Print what was reclaimed as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (it completes profile names too).
    #[command(
        after_help = "Examples:\n  clauth-helper completions bash > ~/.local/share/bash-completion/completions/clauth-helper\n  clauth-helper completions zsh > ~/.zfunc/_clauth-helper\n  clauth-helper completions fish > ~/.config/fish/completions/clauth-helper.fish"
    )]
    Completions {
        /// bash, zsh or fish (also: elvish, powershell, without profile names).
        shell: clap_complete::Shell,
    },
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
    /// Protocol: newline-delimited requests on stdin; sessions live as long as this process.
    #[command(
        after_help = "Example:\n  printf '%s\\n' '{\"verb\": \"acquire\", \"id\": 1, \"profile\": \"work\"}' | clauth-helper serve"
    )]
    Serve,
    /// Protocol: the protocol versions, verbs and features this binary supports.
    #[command(after_help = "Example:\n  echo '{}' | clauth-helper capabilities")]
    Capabilities,
    /// What the completion scripts call: the profile names to offer at a word of a command
    /// line, or exit 1 when the word is not a profile's.
    #[command(name = "__complete-profiles", hide = true)]
    CompleteProfiles {
        /// The index of the word being completed in WORDS (the program's name is word 0).
        index: usize,
        /// The words of the command line.
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        words: Vec<String>,
    },
    #[command(external_subcommand)]
    Unknown(Vec<String>),
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Create a profile, from the login in ~/.claude, a credentials file, or none yet.
    #[command(
        after_help = "Examples:\n  clauth-helper profile add work --from-claude\n  clauth-helper profile add personal --credentials - < personal.json\n  clauth-helper profile add gateway --env ANTHROPIC_BASE_URL=https://llm.example.com --env-file gateway.env\n  clauth-helper profile add fresh                  # then /login inside `clauth-helper run fresh`\n  clauth-helper profile add work --replace --credentials new.json"
    )]
    Add(AddArgs),
    /// List profiles: account, plan, login state and live sessions.
    #[command(
        after_help = "Examples:\n  clauth-helper profile list\n  clauth-helper profile list --usage\n  clauth-helper profile list --json"
    )]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Add each account's usage windows and the time to their reset (asks the usage
        /// endpoint at most once a minute per profile).
        #[arg(long)]
        usage: bool,
    },
    /// Show one profile: account, login, usage, env (secrets redacted), runtime and sessions.
    #[command(
        after_help = "Examples:\n  clauth-helper profile show work\n  clauth-helper profile show work --json"
    )]
    Show {
        /// The profile to show.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a profile's login the one plain `claude` uses (moved, never copied).
    #[command(
        after_help = "Examples:\n  clauth-helper profile use personal\n  clauth-helper profile use work --save-home-as old-home"
    )]
    Use {
        /// The profile whose login plain `claude` is to use.
        name: String,
        /// The profile to keep the home's current login in, when no profile owns it yet.
        #[arg(long, value_name = "OTHER")]
        save_home_as: Option<String>,
    },
    /// Set environment variables of a profile, keeping the others (refused during a session).
    #[command(
        name = "set-env",
        after_help = "Examples:\n  clauth-helper profile set-env gateway ANTHROPIC_MODEL=claude-sonnet-4-5\n  clauth-helper profile set-env gateway --env-file gateway.env   # secrets stay out of argv"
    )]
    SetEnv {
        /// The profile to change.
        name: String,
        /// KEY=VALUE pairs to set.
        #[arg(value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Read KEY=VALUE lines (blank lines and `#` comments skipped) from FILE; '-' is
        /// standard input.
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
    },
    /// Remove environment variables from a profile (refused during a session).
    #[command(
        name = "unset-env",
        after_help = "Example:\n  clauth-helper profile unset-env gateway ANTHROPIC_MODEL"
    )]
    UnsetEnv {
        /// The profile to change.
        name: String,
        /// The names of the variables to remove.
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
    /// Rename a profile, with its login and settings (refused during a session).
    #[command(after_help = "Example:\n  clauth-helper profile rename work acme")]
    Rename {
        /// The profile's name now.
        old: String,
        /// Its new name.
        new: String,
    },
    /// Remove a profile (refused during a session); its login is kept aside for 30 days.
    #[command(
        after_help = "On a terminal it asks before removing a profile that holds a login of its own; --yes\ndoes not ask. The profile is moved to the store's removed/ folder, and `profile restore`\nputs it back.\n\nExamples:\n  clauth-helper profile remove old-work\n  clauth-helper profile remove old-work --yes"
    )]
    Remove {
        /// The profile to remove.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Put back the profile most recently removed under a name.
    #[command(after_help = "Example:\n  clauth-helper profile restore old-work")]
    Restore {
        /// The name the profile had.
        name: String,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// The profile to run under (or --pick).
    #[arg(required_unless_present = "pick", conflicts_with = "pick")]
    pub profile: Option<String>,
    /// Run under the profile with the most headroom left in its usage windows.
    #[arg(long)]
    pub pick: bool,
    /// With --pick: choose among these profiles only.
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        requires = "pick"
    )]
    pub among: Vec<String>,
    /// auto (default: symlinks where they work), real or fake.
    #[arg(long, value_name = "MODE")]
    pub link_mode: Option<String>,
    /// The command and its arguments, after `--`; `claude` when omitted or when the first
    /// starts with '-'.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args)]
pub struct AddArgs {
    /// Profile name: 1-64 letters, digits, '-', '_', '.', not starting with '.'.
    pub name: String,
    /// Make this the profile of the login Claude Code keeps in ~/.claude (nothing is copied).
    #[arg(long, conflicts_with = "credentials")]
    pub from_claude: bool,
    /// Read credentials JSON from FILE ('-' for standard input, not a terminal).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Environment for Claude Code under this profile, merged into settings.json's env block.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read KEY=VALUE lines (blank lines and `#` comments skipped) from FILE, so secret values
    /// stay out of argv; '-' is standard input.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Update an existing profile (refused while it has a live session); its env is kept
    /// unless --env or --env-file is given (`profile set-env` changes one variable).
    #[arg(long)]
    pub replace: bool,
}

/// Where a profile name is a word of the command line: after these words, as the first
/// positional argument. The completion helper and its test read this list.
pub const PROFILE_POSITIONS: &[&[&str]] = &[
    &["run"],
    &["profile", "show"],
    &["profile", "remove"],
    &["profile", "use"],
    &["profile", "rename"],
    &["profile", "set-env"],
    &["profile", "unset-env"],
];

/// Options whose value is a profile name.
pub const PROFILE_OPTIONS: &[&str] = &["--save-home-as"];

/// Options (of the commands in [`PROFILE_POSITIONS`]) that take a value as the next word.
const OPTIONS_WITH_VALUES: &[&str] = &["--link-mode", "--save-home-as", "--env-file"];

/// Whether the word at `index` of `words` (the program's name is word 0) is where a profile
/// name goes.
pub fn completes_profile(words: &[String], index: usize) -> bool {
    if index == 0 || index > words.len() {
        return false;
    }
    let before = &words[1..index];
    if before
        .last()
        .is_some_and(|w| PROFILE_OPTIONS.contains(&w.as_str()))
    {
        return true;
    }
    let current = words.get(index).map(String::as_str).unwrap_or("");
    if current.starts_with('-') {
        return false;
    }
    PROFILE_POSITIONS.iter().any(|path| {
        let starts = before.len() >= path.len() && before.iter().zip(*path).all(|(w, p)| w == p);
        if !starts {
            return false;
        }
        // Only options may stand between the command and the profile.
        let mut rest = before[path.len()..].iter();
        while let Some(w) = rest.next() {
            if w == "--" || !w.starts_with('-') {
                return false;
            }
            // The word being completed is this option's value.
            if OPTIONS_WITH_VALUES.contains(&w.as_str()) && rest.next().is_none() {
                return false;
            }
        }
        true
    })
}
