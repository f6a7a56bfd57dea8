//! `Option<Duration>` fields written as integer seconds (`timeout: 360`, Choria's form) or as
//! humantime strings (`timeout = "6m"`, choir's form).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Deserializes an optional duration from whole seconds or a humantime string.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(SecondsOrText).map(Some)
}

struct SecondsOrText;

impl Visitor<'_> for SecondsOrText {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whole seconds (360) or a duration such as \"6m\" or \"1m 30s\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("{v}: a duration must not be negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(v)
            .map_err(|_| E::custom(format!("{v}: not a valid number of seconds")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        let text = v.trim();
        if let Ok(secs) = text.parse::<u64>() {
            return Ok(Duration::from_secs(secs));
        }
        humantime::parse_duration(text).map_err(|e| E::custom(format!("{v:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "deserialize")]
        d: Option<Duration>,
    }

    fn parse(text: &str) -> Result<Option<Duration>, toml::de::Error> {
        toml::from_str::<T>(text).map(|t| t.d)
    }

    #[test]
    fn integer_seconds_and_duration_strings_are_both_durations() {
        assert_eq!(parse("d = 360").unwrap(), Some(Duration::from_secs(360)));
        assert_eq!(parse("d = \"20\"").unwrap(), Some(Duration::from_secs(20)));
        assert_eq!(
            parse("d = \"1m 30s\"").unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(parse("d = 1.5").unwrap(), Some(Duration::from_millis(1500)));
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn negative_and_garbage_durations_are_refused() {
        assert!(parse("d = -1").is_err());
        assert!(parse("d = \"soon\"").is_err());
        assert!(parse("d = true").is_err());
    }
}
