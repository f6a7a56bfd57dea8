//! The `shell` task: runs a program directly (no `/bin/sh`). A command string is split into
//! words like a shell would split it *before* templates are rendered, and each word is
//! rendered on its own, so a value like `"; rm -rf ~"` arrives as one literal argument.

use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::TaskOutcome;
use crate::playbook::spec::{CommandSpec, TaskSpec};
use crate::playbook::template::{self, Context};

/// The most output kept in the report, per stream (stdout, stderr).
const MAX_OUTPUT: usize = 64 * 1024;

/// Splits a command line into (unrendered) words; templates stay whole inside their word.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
    // Hide each {{ … }} behind a placeholder without spaces or quotes, split, then restore.
    let mut hidden = String::new();
    let mut exprs = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        let triple = rest[start..].starts_with("{{{");
        let close = if triple { "}}}" } else { "}}" };
        let Some(len) = rest[start..].find(close) else {
            return Err("unclosed template expression".into());
        };
        let end = start + len + close.len();
        hidden.push_str(&rest[..start]);
        hidden.push_str(&format!("\u{1}{}\u{1}", exprs.len()));
        exprs.push(rest[start..end].to_string());
        rest = &rest[end..];
    }
    hidden.push_str(rest);
    let words = shell_words::split(&hidden).map_err(|e| format!("cannot split command: {e}"))?;
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words
        .into_iter()
        .map(|word| {
            let mut out = word;
            for (i, expr) in exprs.iter().enumerate() {
                out = out.replace(&format!("\u{1}{i}\u{1}"), expr);
            }
            out
        })
        .collect())
}

/// The rendered argument list.
pub fn render_args(spec: &TaskSpec, ctx: &Context) -> Result<Vec<String>, String> {
    let words = match &spec.command {
        Some(CommandSpec::Line(line)) => split_command(line)?,
        Some(CommandSpec::Args(args)) => args.clone(),
        None => return Err("no command".into()),
    };
    let mut args = words
        .iter()
        .map(|word| ctx.render_text(word).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(nodes) = &spec.nodes {
        let nodes = ctx
            .render_value(&crate::playbook::input::toml_to_json(nodes))
            .map_err(|e| format!("nodes: {e}"))?;
        args.push("--nodes".into());
        args.push(match &nodes {
            Value::Array(items) => items
                .iter()
                .map(template::to_text)
                .collect::<Vec<_>>()
                .join(","),
            other => template::to_text(other),
        });
    }
    Ok(args)
}

/// Runs one try. The command runs in its own process group: a timeout, or a run that is
/// interrupted (its future dropped), kills the whole group, grandchildren included.
pub async fn run(spec: &TaskSpec, ctx: &Context) -> TaskOutcome {
    let args = match render_args(spec, ctx) {
        Ok(args) => args,
        Err(error) => return TaskOutcome::fail(format!("command: {error}")),
    };
    let mut command = Command::new(&args[0]);
    command
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    command.kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        match ctx.render_text(cwd) {
            Ok(cwd) => {
                command.current_dir(cwd);
            }
            Err(error) => return TaskOutcome::fail(format!("cwd: {error}")),
        }
    }
    for (name, value) in &spec.environment {
        match ctx.render_text(value) {
            Ok(value) => {
                command.env(name, value);
            }
            Err(error) => return TaskOutcome::fail(format!("environment.{name}: {error}")),
        }
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return TaskOutcome::fail(format!("cannot run {:?}: {error}", args[0])),
    };
    // Declared after `child`, so it is dropped first: the group dies before the child handle
    // goes.
    let mut group = ProcessGroup::of(&child);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = async {
        let (stdout, stderr, status) = tokio::join!(
            Captured::read(stdout, MAX_OUTPUT),
            Captured::read(stderr, MAX_OUTPUT),
            child.wait()
        );
        (stdout, stderr, status)
    };
    let finished = match spec.timeout {
        Some(limit) => tokio::time::timeout(limit, finished).await.ok(),
        None => Some(finished.await),
    };
    let Some((stdout, stderr, status)) = finished else {
        group.kill();
        // Kills the child itself too (should the group kill have failed) and reaps it;
        // bounded because SIGKILL cannot be ignored.
        let _ = child.kill().await;
        return TaskOutcome::fail(format!(
            "{:?} timed out after {}; its process group was killed",
            args[0],
            humantime::format_duration(spec.timeout.unwrap_or_default())
        ));
    };
    // It ended by itself: whatever it left running in the background is its business.
    group.disarm();
    let status = match status {
        Ok(status) => status,
        Err(error) => return TaskOutcome::fail(format!("{:?}: {error}", args[0])),
    };
    let stdout = match stdout {
        Ok(stdout) => stdout.text("stdout"),
        Err(error) => return TaskOutcome::fail(format!("{:?}: stdout: {error}", args[0])),
    };
    let stderr = match stderr {
        Ok(stderr) => stderr.text("stderr"),
        Err(error) => return TaskOutcome::fail(format!("{:?}: stderr: {error}", args[0])),
    };
    for line in stdout.lines().chain(stderr.lines()) {
        tracing::info!(command = %args[0], "{line}");
    }
    if status.success() {
        TaskOutcome::ok(stdout.trim_end().to_string(), Value::from(stdout))
    } else {
        let mut message = format!("{:?} exited with {}", args[0], status);
        let tail = stderr.trim();
        if !tail.is_empty() {
            let tail: String = tail
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            message.push_str(&format!(": {tail}"));
        }
        TaskOutcome {
            success: false,
            message,
            data: Value::from(stdout),
        }
    }
}

/// The process group of a spawned task (its id is the child's pid). Killed with SIGKILL by
/// [`ProcessGroup::kill`] or on drop unless disarmed.
struct ProcessGroup {
    pgid: Option<Pid>,
}

impl ProcessGroup {
    fn of(child: &tokio::process::Child) -> Self {
        Self {
            pgid: child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        }
    }

    /// Kills every process of the group (once).
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            match killpg(pgid, Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(error) => {
                    tracing::warn!(pgid = pgid.as_raw(), %error, "Cannot kill the task's process group.")
                }
            }
        }
    }

    /// Leaves the group alone from now on.
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Up to `limit` bytes of one output stream; the rest is read and counted, so the child never
/// blocks on a full pipe.
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

impl Captured {
    async fn read<R: AsyncRead + Unpin>(reader: Option<R>, limit: usize) -> std::io::Result<Self> {
        let mut captured = Self {
            kept: Vec::new(),
            dropped: 0,
        };
        let Some(mut reader) = reader else {
            return Ok(captured);
        };
        let mut buffer = [0u8; 8192];
        loop {
            let n = reader.read(&mut buffer).await?;
            if n == 0 {
                return Ok(captured);
            }
            let room = limit.saturating_sub(captured.kept.len()).min(n);
            captured.kept.extend_from_slice(&buffer[..room]);
            captured.dropped = captured.dropped.saturating_add((n - room) as u64);
        }
    }

    /// The kept bytes as text (invalid UTF-8 replaced), at most `MAX_OUTPUT` bytes cut on a
    /// character boundary, with a note when something was cut.
    fn text(self, stream: &str) -> String {
        let mut dropped = self.dropped;
        let mut bytes = self.kept.as_slice();
        if dropped > 0 {
            let whole = complete_utf8_prefix(bytes);
            dropped = dropped.saturating_add((bytes.len() - whole) as u64);
            bytes = &bytes[..whole];
        }
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        let end = floor_char_boundary(&text, MAX_OUTPUT);
        if end < text.len() {
            dropped = dropped.saturating_add((text.len() - end) as u64);
            text.truncate(end);
        }
        if dropped > 0 {
            text.push_str(&format!(
                "\n[{stream} cut after {} bytes: {dropped} more bytes not kept]\n",
                text.len()
            ));
        }
        text
    }
}

/// The length of `bytes` without a UTF-8 sequence left incomplete at its end.
fn complete_utf8_prefix(bytes: &[u8]) -> usize {
    // A sequence is at most 4 bytes: look back at most 3 for its lead byte.
    for back in 1..=bytes.len().min(4) {
        let at = bytes.len() - back;
        let byte = bytes[at];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte
        }
        let needed = match byte {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        return if back < needed { at } else { bytes.len() };
    }
    bytes.len()
}

/// The largest char boundary of `text` at or below `max`.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_stay_inside_their_word() {
        let words =
            split_command("/bin/echo --cluster {{{ inputs.cluster }}} 'a b' x{{ uuid }}y").unwrap();
        assert_eq!(
            words,
            [
                "/bin/echo",
                "--cluster",
                "{{{ inputs.cluster }}}",
                "a b",
                "x{{ uuid }}y"
            ]
        );
    }

    #[test]
    fn a_value_with_shell_syntax_is_one_argument() {
        let mut ctx = Context::new();
        ctx.inputs.insert("v".into(), Value::from("; rm -rf ~/x"));
        let spec: TaskSpec =
            toml::from_str("type = \"shell\"\ncommand = \"echo {{ inputs.v }}\"").unwrap();
        assert_eq!(render_args(&spec, &ctx).unwrap(), ["echo", "; rm -rf ~/x"]);
    }

    fn shell(script: &str) -> TaskSpec {
        let mut spec: TaskSpec =
            toml::from_str("type = \"shell\"\ncommand = [\"sh\", \"-c\"]").unwrap();
        if let Some(CommandSpec::Args(args)) = &mut spec.command {
            args.push(script.to_string());
        }
        spec
    }

    #[tokio::test]
    async fn output_cut_inside_a_multibyte_character_is_cut_before_it() {
        // 65 535 ASCII bytes, then "é" (2 bytes): byte 65 536 is the middle of "é".
        let spec = shell("head -c 65535 /dev/zero | tr '\\0' a; printf '\\303\\251tail'");
        let outcome = run(&spec, &Context::new()).await;
        assert!(outcome.success, "{}", outcome.message);
        let data = outcome.data.as_str().unwrap();
        let (kept, note) = data.split_at(65535);
        assert!(kept.bytes().all(|b| b == b'a'));
        assert_eq!(
            note,
            "\n[stdout cut after 65535 bytes: 6 more bytes not kept]\n"
        );
    }

    #[tokio::test]
    async fn a_chatty_command_is_read_to_the_end_and_its_output_cut() {
        // Far more than a pipe holds: the child would block forever if reading stopped.
        let spec = shell("head -c 3000000 /dev/zero | tr '\\0' x; echo done >&2");
        let outcome = run(&spec, &Context::new()).await;
        assert!(outcome.success, "{}", outcome.message);
        let data = outcome.data.as_str().unwrap();
        assert_eq!(data.len() - data.trim_start_matches('x').len(), MAX_OUTPUT);
        assert!(
            data.ends_with(&format!(
                "\n[stdout cut after {MAX_OUTPUT} bytes: {} more bytes not kept]\n",
                3_000_000 - MAX_OUTPUT
            )),
            "{}",
            &data[MAX_OUTPUT..]
        );
    }

    #[test]
    fn an_incomplete_trailing_sequence_is_left_out() {
        assert_eq!(complete_utf8_prefix(b"ab"), 2);
        assert_eq!(complete_utf8_prefix("aé".as_bytes()), 3);
        assert_eq!(complete_utf8_prefix(&"aé".as_bytes()[..2]), 1);
        assert_eq!(complete_utf8_prefix(&"a😀".as_bytes()[..4]), 1);
        assert_eq!(complete_utf8_prefix("a😀".as_bytes()), 5);
        assert_eq!(complete_utf8_prefix(b""), 0);
    }
}
