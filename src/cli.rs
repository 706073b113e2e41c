//! The command line's grammar: every command, argument and `--help` text. `main.rs` parses
//! with it and calls the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "clauth-helper",
    version,
    about = "Run Claude Code under several accounts at once, safely."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
pub enum ProfileCommand {
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
    /// Make a profile's login the one plain `claude` uses (moved, never copied).
    #[command(
        after_help = "Examples:\n  clauth-helper profile use personal\n  clauth-helper profile use work --save-home-as old-home"
    )]
    Use {
        name: String,
        /// The profile to keep the home's current login in, when no profile owns it yet.
        #[arg(long, value_name = "OTHER")]
        save_home_as: Option<String>,
    },
    /// Remove a profile (refused while it has a live session).
    #[command(after_help = "Example:\n  clauth-helper profile remove old-work")]
    Remove { name: String },
}

#[derive(Args)]
pub struct RunArgs {
    /// The profile to run under.
    pub profile: String,
    /// auto (default: symlinks where they work), real or fake.
    #[arg(long, value_name = "MODE")]
    pub link_mode: Option<String>,
    /// The command and its arguments, after `--`; `claude` when omitted.
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
    /// Read credentials JSON from FILE ('-' for standard input).
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
    /// unless --env or --env-file is given.
    #[arg(long)]
    pub replace: bool,
}
