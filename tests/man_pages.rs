//! Every man page in man/ passes `mandoc -T lint` at warning level.

use std::path::Path;
use std::process::Command;

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
