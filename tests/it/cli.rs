//! The command line explains itself: examples in every --help, shell completions.

use crate::support::*;

#[test]
fn every_subcommand_help_has_an_example() {
    let f = Fixture::new();
    let subcommands: &[&[&str]] = &[
        &["acquire"],
        &["tick"],
        &["release"],
        &["status"],
        &["capabilities"],
        &["serve"],
        &["run"],
        &["gc"],
        &["completions"],
        &["profile", "add"],
        &["profile", "list"],
        &["profile", "show"],
        &["profile", "remove"],
        &["profile", "restore"],
        &["profile", "rename"],
        &["profile", "set-env"],
        &["profile", "unset-env"],
        &["profile", "use"],
    ];
    for args in subcommands {
        let mut all = args.to_vec();
        all.push("--help");
        let out = f.run(&all, b"");
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Example"),
            "{args:?} --help has no example:\n{text}"
        );
        assert!(text.contains("clauth-helper "), "{args:?}");
    }
}

#[test]
fn top_level_help_lists_the_commands_for_people_before_the_protocol_verbs() {
    let f = Fixture::new();
    let out = f.run(&["--help"], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    let at = |word: &str| {
        text.find(&format!("\n  {word} "))
            .unwrap_or_else(|| panic!("{word} is not listed:\n{text}"))
    };
    for person in ["run", "profile", "status", "gc", "completions"] {
        for verb in ["acquire", "tick", "release", "serve", "capabilities"] {
            assert!(at(person) < at(verb), "{person} after {verb}:\n{text}");
        }
    }
    assert!(
        !text.contains("__complete"),
        "the completion helper is hidden:\n{text}"
    );
}

#[test]
fn every_argument_of_the_profile_commands_is_described() {
    let f = Fixture::new();
    for sub in [
        "show",
        "use",
        "remove",
        "rename",
        "set-env",
        "unset-env",
        "restore",
    ] {
        let out = f.run(&["profile", sub, "--help"], b"");
        let text = String::from_utf8_lossy(&out.stdout);
        let args = text
            .split("Arguments:")
            .nth(1)
            .and_then(|rest| rest.split("Options:").next())
            .unwrap_or_else(|| panic!("{sub}:\n{text}"));
        for line in args.lines().filter(|l| l.trim_start().starts_with('<')) {
            let described = line.trim().split_once("  ").map(|(_, d)| d.trim());
            assert!(
                described.is_some_and(|d| !d.is_empty()),
                "profile {sub}: {line:?} has no description"
            );
        }
    }
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    let f = Fixture::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = f.run(&["completions", shell], b"");
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("clauth-helper") && text.contains("profile") && text.contains("acquire"),
            "{shell}:\n{text}"
        );
    }
    let out = f.run(&["completions", "tcsh"], b"");
    assert!(!out.status.success());
}
