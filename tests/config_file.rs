//! `lobbycast` with a bad configuration file: exit status 2 and one line on standard error
//! naming the file, the line, the column and the key; never a panic.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `lobbycast --config FILE` in screen mode (which checks the file, then stops for want
/// of a terminal) and in pipe mode (which checks the file before it opens anything). The
/// default config file of the machine is kept out of it by pointing XDG_CONFIG_HOME at an
/// empty directory.
fn run(config: &Path, extra: &[&str]) -> Output {
    let empty = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_lobbycast"))
        .arg("--config")
        .arg(config)
        .args(extra)
        .env("XDG_CONFIG_HOME", empty.path())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("lobbycast runs")
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Exit status 2, no panic, and every one of `wanted` in standard error.
fn assert_refused(out: &Output, wanted: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    for w in wanted {
        assert!(stderr.contains(w), "{w:?} not in {stderr:?}");
    }
}

#[test]
fn an_unknown_key_is_named_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "# settings\nport = 47111\nnik = \"ann\"\n");
    let at = format!("{}:3:1:", path.display());
    for mode in [&[][..], &["--pipe", "general"], &["--relay", "general"]] {
        assert_refused(&run(&path, mode), &[&at, "nik"]);
    }
}

#[test]
fn a_value_of_the_wrong_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "nick = \"ann\"\n\n[screen]\nmouse = \"yes\"\n");
    let at = format!("{}:4:9:", path.display());
    assert_refused(&run(&path, &[]), &[&at, "screen.mouse"]);
    let path = write(dir.path(), "port = \"47110\"\n");
    let at = format!("{}:1:8:", path.display());
    assert_refused(&run(&path, &["--pipe", "general"]), &[&at, "port"]);
}

#[test]
fn a_missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.toml");
    assert_refused(&run(&path, &[]), &[&path.display().to_string()]);
}

#[test]
fn a_good_file_reaches_screen_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "nick = \"ann\"\nlobbies = [\"lab\"]\n");
    // Without a terminal, screen mode says it needs one: after the file was accepted.
    let data = dir.path().join("data").display().to_string();
    assert_refused(&run(&path, &["--data-dir", &data]), &["needs a terminal"]);
}
