//! Every man page in man/ passes `mandoc -T lint` at warning level, and the pages keep up
//! with the code: every flag of `--help`, every config key and every `/command` is
//! documented. The completion scripts are generated here too.

use std::path::Path;
use std::process::Command;

/// A man page's source with the roff escapes that matter here undone (`\-` is a hyphen,
/// `\(dq` a double quote), so that names can be searched as they are typed.
fn page(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("\\-", "-")
        .replace("\\(dq", "\"")
}

fn lobbycast(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lobbycast"))
        .args(args)
        .output()
        .expect("lobbycast runs")
}

#[test]
fn every_flag_of_help_is_in_lobbycast_1() {
    let out = lobbycast(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let man = page("lobbycast.1");
    let mut flags: Vec<&str> = help
        .split(|c: char| !(c.is_ascii_lowercase() || c == '-'))
        .filter(|w| w.len() > 2 && w.starts_with("--") && !w.starts_with("---"))
        .map(|w| w.trim_end_matches('-'))
        .collect();
    flags.sort_unstable();
    flags.dedup();
    for must in [
        "--pipe",
        "--relay",
        "--config",
        "--completions",
        "--help",
        "--version",
    ] {
        assert!(
            flags.contains(&must),
            "{must} not found in --help: {flags:?}"
        );
    }
    for flag in flags {
        assert!(
            man.contains(flag),
            "{flag} (in --help) is not in man/lobbycast.1"
        );
    }
}

#[test]
fn every_config_key_is_in_lobbycast_conf_5() {
    let man = page("lobbycast.conf.5");
    let keys = lobbycast::config_file::keys();
    assert!(keys.len() > 10, "{keys:?}");
    for key in keys {
        let name = match key.rsplit_once('.') {
            Some((_, leaf)) => leaf.to_owned(),
            None if key == "screen" => "[screen]".to_owned(),
            None => key.clone(),
        };
        // A key is documented where it starts a tagged paragraph: `.BR key " (type)"`.
        let entry = format!(".BR {name} \"");
        assert!(
            man.contains(&entry) || (key == "screen" && man.contains(&name)),
            "config key {key} is not documented in man/lobbycast.conf.5 (no {entry:?})"
        );
    }
}

#[test]
fn the_example_of_lobbycast_conf_5_is_a_valid_file_with_every_key() {
    let man = page("lobbycast.conf.5");
    let examples = &man[man.find(".SH EXAMPLES").expect("EXAMPLES")..];
    let start = examples.find(".EX\n").expect(".EX") + 4;
    let end = examples.find(".EE").expect(".EE");
    let text = &examples[start..end];
    let cfg = lobbycast::config_file::parse(text, Path::new("lobbycast.conf.5"))
        .unwrap_or_else(|e| panic!("{e}"));
    for key in lobbycast::config_file::keys() {
        let leaf = key.rsplit('.').next().unwrap();
        let set = text
            .lines()
            .any(|l| l.starts_with(&format!("{leaf} = ")) || l == format!("[{leaf}]"));
        assert!(set, "the example does not set {key}");
    }
    assert_eq!(cfg.nick.as_deref(), Some("ann"));
}

#[test]
fn every_command_is_in_lobbycast_1() {
    let man = page("lobbycast.1");
    let commands = &man[man.find(".SH COMMANDS").expect("COMMANDS section")..];
    for c in lobbycast::command_line::COMMANDS {
        assert!(
            commands.contains(&format!(".B /{}", c.name)),
            "/{} is not in the COMMANDS section of man/lobbycast.1",
            c.name
        );
    }
}

#[test]
fn completion_scripts_are_printed() {
    for shell in ["bash", "zsh", "fish"] {
        let out = lobbycast(&["--completions", shell]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{shell}: {stderr}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("lobbycast"), "{shell}: {script}");
        assert!(
            script.contains("--config") || script.contains("config"),
            "{shell}"
        );
    }
}

#[test]
fn man_pages_lint_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages: Vec<_> = std::fs::read_dir(&dir)
        .expect("man/ exists")
        .map(|e| e.expect("readable entry").path())
        .collect();
    assert!(!pages.is_empty(), "no man pages in {}", dir.display());
    if Command::new("mandoc").arg("-V").output().is_err() {
        // Only a developer machine may lack mandoc; CI installs it (.ci/run).
        assert!(
            std::env::var_os("CI").is_none(),
            "mandoc is missing in CI: .ci/run should install it"
        );
        eprintln!("skipped: mandoc is not installed");
        return;
    }
    for page in pages {
        let out = Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&page)
            .output()
            .expect("mandoc runs");
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{}: {}{}",
            page.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
