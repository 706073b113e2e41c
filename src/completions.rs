//! Shell completion scripts: clap's, with profile names completed where a command takes one.
//! The names come from the binary itself at completion time (`clauth-helper
//! __complete-profiles INDEX WORDS...`), so a new profile completes without a new script.

use anyhow::{Result, bail};
use clap_complete::Shell;

/// The name of the hidden command the scripts call.
pub const HELPER: &str = "__complete-profiles";

/// The completion script for `shell`, for the program `bin`.
pub fn script(shell: Shell, cmd: &mut clap::Command, bin: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_complete::generate(shell, cmd, bin, &mut out);
    let text = String::from_utf8(out)?;
    let text = match shell {
        Shell::Bash => bash(&text, bin)?,
        Shell::Zsh => zsh(&text, bin)?,
        Shell::Fish => fish(&text, bin),
        _ => text,
    };
    Ok(text.into_bytes())
}

/// Bash: a function that asks the helper first and falls back to clap's.
fn bash(text: &str, bin: &str) -> Result<String> {
    let generated = format!("_{}", bin.replace('-', "__"));
    if !text.contains(&format!("{generated}() {{")) {
        bail!("the generated bash script has no function {generated}");
    }
    // clap_complete 4.6 names the cases of subcommands of a program with '-' in its name
    // `clauth__subcmd__helper__...` but sets `clauth__helper__...`: no subcommand of a
    // subcommand would complete. One spelling for both.
    let text = text.replace(
        &format!("{}__", bin.replace('-', "__subcmd__")),
        &format!("{}__", bin.replace('-', "__")),
    );
    let ours = format!("{generated}_profiles");
    Ok(format!(
        r#"{text}
# Profile names, from {bin} itself; everything else from the function above.
{ours}() {{
    local names
    if names=$({bin} {HELPER} "$COMP_CWORD" "${{COMP_WORDS[@]}}" 2>/dev/null); then
        COMPREPLY=( $(compgen -W "$names" -- "${{COMP_WORDS[COMP_CWORD]}}") )
        return 0
    fi
    {generated} "$@"
}}
if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F {ours} -o nosort -o bashdefault -o default {bin}
else
    complete -F {ours} -o bashdefault -o default {bin}
fi
"#
    ))
}

/// Zsh: clap's main function is renamed, and ours, under its name, asks the helper first.
fn zsh(text: &str, bin: &str) -> Result<String> {
    let main = format!("\n_{bin}() {{\n");
    let tail = format!("\nif [ \"$funcstack[1]\" = \"_{bin}\" ]; then");
    if !text.contains(&main) || !text.contains(&tail) {
        bail!("the generated zsh script is not of the expected shape");
    }
    let ours = format!(
        r#"
# Profile names, from {bin} itself; everything else from _{bin}_static.
_{bin}() {{
    local names
    names="$({bin} {HELPER} $((CURRENT - 1)) "${{words[@]}}" 2>/dev/null)"
    if [[ $? -eq 0 ]]; then
        local -a profiles
        profiles=(${{(f)names}})
        compadd -a profiles
        return
    fi
    _{bin}_static "$@"
}}
"#
    );
    Ok(text
        .replacen(&main, &format!("\n_{bin}_static() {{\n"), 1)
        .replacen(&tail, &format!("{ours}{tail}"), 1))
}

/// Fish: one more completion, offered where the helper answers.
fn fish(text: &str, bin: &str) -> String {
    let call = format!(
        "{bin} {HELPER} (count (commandline -opc)) (commandline -opc) (commandline -ct) 2>/dev/null"
    );
    format!(
        "{text}\n# Profile names, from {bin} itself.\ncomplete -c {bin} -n '{call} >/dev/null' -f -a '({call})'\n"
    )
}
