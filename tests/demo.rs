//! The demo, as README's first command runs it.

/// `nhid-sim demo` needs nothing but the binary: within 30 s it shows an injected attack, the
/// incident it opened with the alert it raised, and the dry-run revocation, read back from the
/// in-process cluster.
#[test]
fn demo_shows_live_alerts_and_actions_within_30_seconds() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nhid-sim"))
        .args(["demo", "--duration", "30", "--http-listen", "127.0.0.1:0"])
        .output()
        .expect("nhid-sim demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    for marker in [
        "metrics: http://127.0.0.1:",
        "ATTACK",
        "INCIDENT",
        "opened on",
        "ALERT",
        "ACTION revoke_credential [dry_run]",
        "stopped:",
    ] {
        assert!(stdout.contains(marker), "no {marker:?} in the demo's output:\n{stdout}");
    }
    assert!(!stdout.contains('\x1b'), "no colors when the output is not a terminal");
}
