//! [`Chain`]: an error and every cause under it, each printed once.
//!
//! The project's errors do not repeat their `#[source]` in their own message, so printing
//! only the top error (`{error}` or tracing's `%error`) would lose the causes. Print
//! `Chain(&error)` instead: `top: cause: cause of the cause`. Some third-party errors (e.g.
//! async-nats) do put their source in their own message as well; a cause whose text already
//! ends the line so far is not printed again.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, separated by `": "`.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            if !text.is_empty() && !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            cause = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open {path}")]
    struct Open {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("network n1: connect failed")]
    struct Connect {
        #[source]
        source: Open,
    }

    /// Like async-nats: the message already includes the source.
    #[derive(Debug)]
    struct Wrapper(std::io::Error);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "io error: {}", self.0)
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_printed_once() {
        let error = Connect {
            source: Open {
                path: "/x/creds".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            },
        };
        assert_eq!(
            Chain(&error).to_string(),
            "network n1: connect failed: cannot open /x/creds: no such file"
        );
    }

    #[test]
    fn a_cause_already_in_its_parents_message_is_not_repeated() {
        let error = Wrapper(std::io::Error::other("connection refused"));
        assert_eq!(Chain(&error).to_string(), "io error: connection refused");
    }
}
