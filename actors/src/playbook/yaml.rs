//! The YAML front-end: Choria's layout (`- shell: {...}` task entries, top-level `name`,
//! `version`, …) read with `serde-saphyr` and mapped onto the one model, [`PlaybookSpec`], which
//! TOML files also parse into; both then go through the same validation.
//!
//! [`LineIndex`] remembers the line of every key and list item so that validation problems,
//! which name model keys (`tasks[1].command`), can name the YAML line too.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::spec::{
    ClientSpec, HooksSpec, InputSpec, Metadata, NodeSetSpec, PlaybookSpec, StoreSpec, TaskSpec,
};
use super::PlaybookError;
use crate::problems::{Problem, Problems};

/// A whole playbook in Choria's YAML layout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlPlaybook {
    #[serde(rename = "$schema", default)]
    schema: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    loglevel: Option<String>,
    #[serde(default)]
    run_as: Option<String>,
    #[serde(default)]
    on_fail: Option<String>,
    /// Accepted and never used, as in Choria.
    #[serde(default)]
    macros: Option<IgnoredAny>,
    #[serde(default)]
    inputs: BTreeMap<String, InputSpec>,
    #[serde(default)]
    data_stores: BTreeMap<String, StoreSpec>,
    #[serde(default)]
    locks: Vec<String>,
    #[serde(default)]
    nodes: BTreeMap<String, NodeSetSpec>,
    #[serde(default)]
    uses: BTreeMap<String, String>,
    #[serde(default)]
    tasks: Vec<YamlTask>,
    #[serde(default)]
    hooks: YamlHooks,
    #[serde(default)]
    client: Option<ClientSpec>,
}

/// `- TYPE: { properties }`: one key, the task type.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
struct YamlTask(BTreeMap<String, TaskSpec>);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlHooks {
    #[serde(default)]
    pre_book: Vec<YamlTask>,
    #[serde(default)]
    pre_task: Vec<YamlTask>,
    #[serde(default)]
    post_task: Vec<YamlTask>,
    #[serde(default)]
    on_success: Vec<YamlTask>,
    #[serde(default)]
    on_fail: Vec<YamlTask>,
    #[serde(default)]
    post_book: Vec<YamlTask>,
}

/// Whether `path` names a YAML file (`.yaml` or `.yml`).
pub fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Parses YAML `text` into the model; shape problems of task entries are returned to be
/// reported with validation's.
pub fn parse(path: &Path, text: &str) -> Result<(PlaybookSpec, Vec<Problem>), PlaybookError> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let mut key = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, YamlPlaybook>(de).map_err(|error| {
            key = error.path().to_string();
            error.into_inner()
        })
    });
    let yaml = parsed.map_err(|error| parse_error(path, key, &error))?;
    let mut problems = Problems::default();
    let tasks = map_tasks("tasks", yaml.tasks, &mut problems);
    let hooks = HooksSpec {
        pre_book: map_tasks("hooks.pre_book", yaml.hooks.pre_book, &mut problems),
        pre_task: map_tasks("hooks.pre_task", yaml.hooks.pre_task, &mut problems),
        post_task: map_tasks("hooks.post_task", yaml.hooks.post_task, &mut problems),
        on_success: map_tasks("hooks.on_success", yaml.hooks.on_success, &mut problems),
        on_fail: map_tasks("hooks.on_fail", yaml.hooks.on_fail, &mut problems),
        post_book: map_tasks("hooks.post_book", yaml.hooks.post_book, &mut problems),
    };
    let spec = PlaybookSpec {
        schema: yaml.schema,
        metadata: yaml.metadata.unwrap_or_default(),
        name: yaml.name,
        version: yaml.version,
        author: yaml.author,
        description: yaml.description,
        tags: yaml.tags,
        loglevel: yaml.loglevel,
        run_as: yaml.run_as,
        on_fail: yaml.on_fail,
        inputs: yaml.inputs,
        data_stores: yaml.data_stores,
        locks: yaml.locks,
        nodes: yaml.nodes,
        uses: yaml.uses,
        tasks,
        hooks,
        client: yaml.client,
    };
    let _ = yaml.macros;
    Ok((spec, problems.into_vec()))
}

fn parse_error(path: &Path, key: String, error: &serde_saphyr::Error) -> PlaybookError {
    let error = error.without_snippet();
    let line = error
        .location()
        .map(|l| l.line())
        .filter(|l| *l > 0)
        .map(|l| format!(":{l}"))
        .unwrap_or_default();
    let mut message = error.to_string();
    // The parser appends its own position; the line is already in the prefix.
    if let Some(at) = message.find(" at line ") {
        message.truncate(at);
    }
    PlaybookError::Parse {
        path: path.to_path_buf(),
        line,
        key: if key == "." || key.is_empty() {
            "(top level)".into()
        } else {
            key
        },
        message: message.trim().to_string(),
    }
}

fn map_tasks(list: &str, tasks: Vec<YamlTask>, problems: &mut Problems) -> Vec<TaskSpec> {
    let mut out = Vec::new();
    for (i, YamlTask(entry)) in tasks.into_iter().enumerate() {
        let key = format!("{list}[{i}]");
        if entry.len() != 1 {
            let types: Vec<&str> = entry.keys().map(String::as_str).collect();
            problems.value(
                &key,
                types.join(", "),
                "a task is one key, its type, e.g. `- shell: { command: ... }`",
            );
        }
        for (kind, mut task) in entry {
            if !task.kind.is_empty() && task.kind != kind {
                problems.value(
                    format!("{key}.type"),
                    &task.kind,
                    format!("contradicts the task's key {kind:?}"),
                );
            }
            task.kind = kind;
            out.push(task);
        }
    }
    out
}

/// The line of every key and list item of a YAML document, by dotted path
/// (`tasks[1].shell.command`, `inputs.cluster.type`).
#[derive(Debug, Default)]
pub struct LineIndex {
    lines: BTreeMap<String, usize>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

impl LineIndex {
    /// Indexes `text`; a syntax error ends the index where it is.
    pub fn new(text: &str) -> Self {
        use serde_saphyr::granit_parser::{Event, Parser};
        let mut index = Self::default();
        let mut stack: Vec<Frame> = Vec::new();
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else { break };
            let line = span.start.line();
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map { path, key }) = stack.last_mut() {
                        if key.is_none() {
                            let full = join(path, &value);
                            index.lines.entry(full).or_insert(line);
                            *key = Some(value.into_owned());
                            continue;
                        }
                    }
                    index.item(&stack, line);
                    advance(&mut stack);
                }
                Event::Alias(_) => {
                    index.item(&stack, line);
                    advance(&mut stack);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    index.item(&stack, line);
                    let path = child_path(&stack);
                    stack.push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map { path, key: None }
                    } else {
                        Frame::Seq { path, index: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    advance(&mut stack);
                }
                _ => {}
            }
        }
        index
    }

    fn item(&mut self, stack: &[Frame], line: usize) {
        if let Some(Frame::Seq { .. }) = stack.last() {
            self.lines.entry(child_path(stack)).or_insert(line);
        }
    }

    /// The line of a model key: tasks' keys are looked up under their type key
    /// (`tasks[1].command` → `tasks[1].shell.command`), top-level metadata under
    /// `metadata.` or not; a missing key gives the line of its nearest parent.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        let mut candidates = Vec::new();
        if let Some(with_type) = self.with_task_type(key) {
            candidates.push(with_type);
        }
        candidates.push(key.to_string());
        if let Some(rest) = key.strip_prefix("metadata.") {
            candidates.insert(0, rest.to_string());
        }
        for candidate in &candidates {
            let mut path = candidate.as_str();
            loop {
                if let Some(line) = self.lines.get(path) {
                    return Some(*line);
                }
                match path.rfind(['.', '[']) {
                    Some(cut) if cut > 0 => path = &path[..cut],
                    _ => break,
                }
            }
        }
        None
    }

    /// `tasks[1].command` → `tasks[1].shell.command`, the task entry's one key inserted.
    fn with_task_type(&self, key: &str) -> Option<String> {
        let close = key.find(']')?;
        let (entry, rest) = key.split_at(close + 1);
        let list = entry.split('[').next()?;
        if list != "tasks" && !list.starts_with("hooks.") {
            return None;
        }
        let prefix = format!("{entry}.");
        let kind = self
            .lines
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .find(|k| !k.contains(['.', '[']))?;
        Some(format!("{entry}.{kind}{rest}"))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn child_path(stack: &[Frame]) -> String {
    match stack.last() {
        None => String::new(),
        Some(Frame::Map { path, key }) => join(path, key.as_deref().unwrap_or("?")),
        Some(Frame::Seq { path, index }) => format!("{path}[{index}]"),
    }
}

fn advance(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { key, .. }) => *key = None,
        Some(Frame::Seq { index, .. }) => *index += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: x\ninputs:\n  cluster:\n    type: String\ntasks:\n  - shell:\n      command: ls\n  - data:\n      key: a/b\nlocks:\n  - one\n  - two\n";

    #[test]
    fn line_index_finds_keys_items_and_task_properties() {
        let index = LineIndex::new(TEXT);
        assert_eq!(index.line_of("name"), Some(1));
        assert_eq!(index.line_of("metadata.name"), Some(1));
        assert_eq!(index.line_of("inputs.cluster.type"), Some(4));
        assert_eq!(index.line_of("tasks[0].command"), Some(7));
        assert_eq!(index.line_of("tasks[1].key"), Some(9));
        assert_eq!(index.line_of("tasks[1].value"), Some(8));
        assert_eq!(index.line_of("locks[1]"), Some(12));
        assert_eq!(index.line_of("nope"), None);
    }

    #[test]
    fn task_entries_take_their_type_from_their_key() {
        let (spec, problems) = parse(Path::new("t.yaml"), TEXT).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(spec.tasks[0].kind, "shell");
        assert_eq!(spec.tasks[1].kind, "data");
        assert_eq!(spec.name.as_deref(), Some("x"));
    }

    #[test]
    fn an_unknown_key_names_the_line_and_the_key() {
        let text = "name: x\ntasks:\n  - shell:\n      command: ls\n      bogus: 1\n";
        let error = parse(Path::new("t.yaml"), text).unwrap_err().to_string();
        assert!(error.starts_with("t.yaml:5: tasks[0].shell"), "{error}");
        assert!(error.contains("bogus"), "{error}");
    }

    #[test]
    fn an_mcollective_task_is_an_rpc_task_with_agent_dot_action_split() {
        let text = "name: x\nversion: '1'\nauthor: a\ndescription: d\ntasks:\n  - mcollective:\n      action: rpcutil.ping\n      nodes: [a, b]\n      batch_size: 1\n      batch_sleep_time: 2\n      silent: true\n      post: [summarize]\n  - webhook:\n      uri: http://127.0.0.1:1/x\n      data: {a: 1}\n";
        let pb = crate::playbook::parse(Path::new("t.yaml"), text).unwrap();
        let task = &pb.tasks[0];
        assert_eq!(task.kind, crate::playbook::model::TaskKind::Rpc);
        assert_eq!(task.spec.agent.as_deref(), Some("rpcutil"));
        assert_eq!(task.spec.action.as_deref(), Some("ping"));
        assert_eq!(
            task.spec.batch_sleep_time,
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(
            pb.tasks[1].spec.url.as_deref(),
            Some("http://127.0.0.1:1/x")
        );
        assert!(pb.tasks[1].spec.body.is_some());
        let bad = text.replace("[summarize]", "[tabulate]");
        let error = crate::playbook::parse(Path::new("t.yaml"), &bad).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("line 12: tasks[0].post[0] = \"tabulate\""),
            "{error}"
        );
    }

    #[test]
    fn bad_yaml_syntax_is_an_error_not_a_panic() {
        for text in [
            "tasks: [",
            "a: b: c",
            "\t- x",
            "*alias",
            "{{{{",
            "name: [1, 2",
        ] {
            assert!(parse(Path::new("t.yaml"), text).is_err(), "{text:?}");
        }
    }
}
