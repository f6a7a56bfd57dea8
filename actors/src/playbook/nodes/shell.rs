//! `shell` node sets: a command (run without a shell, as shell tasks are) that prints one node
//! per line. Every line must be a host name; all bad lines are named at once.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The script's time limit unless the set gives `timeout` (Choria's 10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `name` is a host name: dot-separated labels of letters, digits and `-`, none
/// empty or starting or ending with `-`.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The nodes in a script's output: one per line, blank lines skipped; every line that is not
/// a host name is named with its line number.
pub fn parse_output(stdout: &str) -> Result<Vec<String>, String> {
    let mut nodes = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in stdout.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if valid_host_name(line) {
            nodes.push(line.to_string());
        } else {
            bad.push(format!("line {}: {line:?}", i + 1));
        }
    }
    if bad.is_empty() {
        Ok(nodes)
    } else {
        Err(format!(
            "not valid host names: {}",
            bad.into_iter().collect::<Vec<_>>().join(", ")
        ))
    }
}

/// Runs `script` in its own process group (the whole group killed after `timeout`) and
/// returns its nodes.
pub async fn run(script: &str, timeout: Duration) -> Result<Vec<String>, String> {
    let words = crate::playbook::task::shell::split_command(script)?;
    let Some((program, args)) = words.split_first() else {
        return Err("empty script".into());
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let group = child.id().and_then(|id| i32::try_from(id).ok());
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return Err(format!("{program}: {error}")),
        Err(_) => {
            // The child was dropped (and killed) with the future; whatever it started in its
            // process group goes too.
            if let Some(pgid) = group {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            return Err(format!(
                "{program}: killed after {} with its process group",
                humantime::format_duration(timeout)
            ));
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{program}: {}{}",
            output.status,
            stderr
                .lines()
                .next()
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        ));
    }
    parse_output(&String::from_utf8_lossy(&output.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_dot_separated_labels() {
        for good in ["web1", "web-1.example.net", "a", "1.2.3.4", "x.y"] {
            assert!(valid_host_name(good), "{good}");
        }
        for bad in [
            "", "web 1", "-web", "web-", "a..b", "a.", "web_1", "wéb", "a;b",
        ] {
            assert!(!valid_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_bad_line_is_named_with_its_number() {
        assert_eq!(parse_output("a\n\n b \n").unwrap(), ["a", "b"]);
        let error = parse_output("ok1\nnot ok\nok2\n-bad\n").unwrap_err();
        assert!(
            error.contains("line 2: \"not ok\"") && error.contains("line 4: \"-bad\""),
            "{error}"
        );
    }
}
