//! Collecting every problem of a file a user wrote (a node config, a playbook), each naming
//! its key and value, so that validation reports them all at once.

use std::fmt;

/// One problem found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `networks.region.urls[0]` or `tasks[1].command`.
    pub key: String,
    /// The offending value as written, when there is one.
    pub value: Option<String>,
    /// What is wrong, lowercase.
    pub message: String,
    /// The line of the key in the file, when the file's parser tells.
    pub line: Option<usize>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} = {:?}: {}", self.key, value, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// The problems found so far; validation keeps going after the first.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// Records a problem with `key` = `value`.
    pub fn value(
        &mut self,
        key: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) {
        self.0.push(Problem {
            key: key.into(),
            value: Some(value.to_string()),
            message: message.into(),
            line: None,
        });
    }

    /// Records a problem with `key` that has no single value to show.
    pub fn key(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            value: None,
            message: message.into(),
            line: None,
        });
    }

    /// Records problems found earlier.
    pub fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        self.0.extend(problems);
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in the order found.
    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}
