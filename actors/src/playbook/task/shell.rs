//! The `shell` task: runs a program directly (no `/bin/sh`). A command string is split into
//! words like a shell would split it *before* templates are rendered, and each word is
//! rendered on its own, so a value like `"; rm -rf ~"` arrives as one literal argument.

use std::process::Stdio;

use serde_json::Value;
use tokio::process::Command;

use super::TaskOutcome;
use crate::playbook::spec::{CommandSpec, TaskSpec};
use crate::playbook::template::{self, Context};

/// The most output kept in the report.
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

/// Runs one try.
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
        .stderr(Stdio::piped());
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
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return TaskOutcome::fail(format!("cannot run {:?}: {error}", args[0])),
    };
    let output = child.wait_with_output();
    let output = match spec.timeout {
        Some(limit) => match tokio::time::timeout(limit, output).await {
            Ok(output) => output,
            Err(_) => {
                return TaskOutcome::fail(format!(
                    "{:?} timed out after {}",
                    args[0],
                    humantime::format_duration(limit)
                ))
            }
        },
        None => output.await,
    };
    let output = match output {
        Ok(output) => output,
        Err(error) => return TaskOutcome::fail(format!("{:?}: {error}", args[0])),
    };
    let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    stdout.truncate(MAX_OUTPUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stdout.lines().chain(stderr.lines()) {
        tracing::info!(command = %args[0], "{line}");
    }
    if output.status.success() {
        TaskOutcome::ok(stdout.trim_end().to_string(), Value::from(stdout))
    } else {
        let mut message = format!("{:?} exited with {}", args[0], output.status);
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
}
