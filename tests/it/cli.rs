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
