//! The Choria Stream Replicator's v2 YAML config (`stream-replicator replicate --config F`)
//! turned into the equivalent choir TOML.
//!
//! The SR's top-level `name` becomes the node's name and every replicator gets
//! `compat = "choria"` node-wide, so copies, advisories, heartbeats and metric labels look as
//! the SR made them. Each `streams[]` entry becomes a `[replicators.X]`; its URLs become
//! `[networks.X]` (shared when two streams use the same servers, credentials and TLS). Every key
//! without an equivalent is named in a `# not imported:` comment saying why, and listed by
//! [`Imported::unmapped`].

use std::collections::BTreeMap;
use std::path::Path;

use choir_actors::playbook::yaml::LineIndex;
use serde::de::IgnoredAny;
use serde::Deserialize;
use toml::Value;

use super::ImportError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SrConfig {
    name: Option<String>,
    #[serde(default)]
    streams: Vec<SrStream>,
    state_store: Option<String>,
    tls: Option<SrTls>,
    choria: Option<IgnoredAny>,
    monitor_port: Option<u16>,
    profiling: Option<bool>,
    logfile: Option<String>,
    loglevel: Option<String>,
    heartbeats: Option<SrHeartbeats>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct SrTls {
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SrHeartbeats {
    interval: Option<String>,
    url: Option<String>,
    leader_election: Option<bool>,
    tls: Option<SrTls>,
    choria: Option<IgnoredAny>,
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    subjects: Vec<SrHeartbeatSubject>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SrHeartbeatSubject {
    subject: String,
    interval: Option<String>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SrAdvisoryConfig {
    subject: String,
    reliable: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SrStream {
    stream: Option<String>,
    name: Option<String>,
    target_stream: Option<String>,
    source_url: Option<String>,
    target_url: Option<String>,
    tls: Option<SrTls>,
    source_tls: Option<SrTls>,
    target_tls: Option<SrTls>,
    choria: Option<IgnoredAny>,
    source_choria: Option<IgnoredAny>,
    target_choria: Option<IgnoredAny>,
    filter_subject: Option<String>,
    target_subject_prefix: Option<String>,
    target_subject_remove: Option<String>,
    start_sequence: Option<u64>,
    start_time: Option<String>,
    start_delta: Option<String>,
    start_at_end: Option<bool>,
    max_age: Option<String>,
    target_initiated: Option<bool>,
    no_target_create: Option<bool>,
    ephemeral: Option<bool>,
    inspect_field: Option<String>,
    inspect_header: Option<String>,
    inspect_subject_token: Option<i64>,
    inspect_force_field: Option<String>,
    inspect_duration: Option<String>,
    warn_duration: Option<String>,
    size_trigger: Option<u64>,
    advisory: Option<SrAdvisoryConfig>,
    leader_election_name: Option<String>,
}

/// The result of an import.
#[derive(Debug)]
pub struct Imported {
    /// The choir config (TOML, with `# not imported:` comments).
    pub toml: String,
    /// `key: why` for every SR key that has no choir equivalent.
    pub unmapped: Vec<String>,
}

/// Why the heartbeats' `leader_election` is not imported when their replicator has no HA.
const NO_HA: &str = "choir's heartbeats come from their replicator's leader; the replicator they go with has no leader_election_name, so it has no [replicators.X.ha] to follow";

/// Reads and imports the SR config at `path`.
pub fn import(path: &Path) -> Result<Imported, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    import_str(path, &text)
}

/// Imports SR config `text`; `path` names the file in messages.
pub fn import_str(path: &Path, text: &str) -> Result<Imported, ImportError> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let mut key = String::new();
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, SrConfig>(de).map_err(|error| {
            key = error.path().to_string();
            error.into_inner()
        })
    });
    let config = parsed.map_err(|error| {
        let error = error.without_snippet();
        let line = error
            .location()
            .map(|l| l.line())
            .filter(|l| *l > 0)
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        let mut message = error.to_string();
        if let Some(at) = message.find(" at line ") {
            message.truncate(at);
        }
        ImportError::Parse {
            path: path.to_owned(),
            line,
            key: if key == "." || key.is_empty() {
                "(top level)".into()
            } else {
                key.clone()
            },
            message: message.trim().to_owned(),
        }
    })?;
    let lines = LineIndex::new(text);
    let mut mapper = Mapper::default();
    mapper.map(&config);
    if mapper.problems.is_empty() {
        Ok(Imported {
            toml: mapper.render(path, &config),
            unmapped: mapper.unmapped_lines(),
        })
    } else {
        Err(ImportError::Invalid {
            path: path.to_owned(),
            problems: mapper
                .problems
                .iter()
                .map(|(key, message)| {
                    let line = lines
                        .line_of(key)
                        .map(|l| format!(":{l}"))
                        .unwrap_or_default();
                    format!("{line}: {key}: {message}")
                })
                .collect(),
        })
    }
}

/// One `[networks.X]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Network {
    urls: Vec<String>,
    user: Option<String>,
    password: Option<String>,
    credentials: Option<String>,
    connect_timeout: Option<String>,
    tls: Option<SrTls>,
}

/// One `[replicators.X]`: keys in order, comments, advisories.
#[derive(Debug, Default)]
struct Replicator {
    name: String,
    target_network: String,
    keys: Vec<(String, Value)>,
    notes: Vec<String>,
    advisories: Option<(String, bool)>,
    /// The SR's `leader_election_name`, for the commented-out `[replicators.X.ha]` table.
    ha_note: Option<String>,
}

#[derive(Debug, Default)]
struct Mapper {
    networks: Vec<(String, Network)>,
    replicators: Vec<Replicator>,
    unmapped: Vec<(String, String)>,
    problems: Vec<(String, String)>,
}

/// A name choir accepts: letters, digits, `-` and `_` (others become `_`).
fn choir_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "sr".to_owned()
    } else {
        name
    }
}

impl Mapper {
    fn unmapped(&mut self, key: impl Into<String>, why: impl Into<String>) {
        self.unmapped.push((key.into(), why.into()));
    }

    fn problem(&mut self, key: impl Into<String>, why: impl Into<String>) {
        self.problems.push((key.into(), why.into()));
    }

    fn unmapped_lines(&self) -> Vec<String> {
        self.unmapped
            .iter()
            .map(|(key, why)| format!("{key}: {why}"))
            .collect()
    }

    /// A Go/SR duration (`10s`, `1h30m`, `2d`, `1w`, `1M`, `1Y`) as a humantime string.
    fn duration(&mut self, key: &str, raw: &str) -> Option<String> {
        let converted = raw.trim().replace('Y', "y");
        match humantime::parse_duration(&converted) {
            Ok(_) => Some(converted),
            Err(e) => {
                self.problem(key, format!("{raw:?} is not a duration: {e}"));
                None
            }
        }
    }

    fn map(&mut self, config: &SrConfig) {
        if config.name.as_deref().is_none_or(str::is_empty) {
            self.problem(
                "name",
                "required: the replicator's name (choir's node name)",
            );
        }
        if config.streams.is_empty() {
            self.problem("streams", "no streams to replicate");
        }
        if config.choria.is_some() {
            self.unmapped(
                "choria",
                "Choria JWT/seed authentication is not supported; use a .creds file (credentials=) or TLS",
            );
        }
        if config.profiling == Some(true) {
            self.unmapped("profiling", "choir serves no /debug/pprof");
        }
        if config.logfile.is_some() {
            self.unmapped(
                "logfile",
                "choir logs to stderr; redirect it or use the service manager's journal",
            );
        }
        if config.loglevel.is_some() {
            self.unmapped("loglevel", "set RUST_LOG (e.g. RUST_LOG=debug) instead");
        }
        let mut names: Vec<String> = Vec::new();
        for (i, stream) in config.streams.iter().enumerate() {
            let replicator = self.map_stream(i, stream, config, &mut names);
            if let Some(replicator) = replicator {
                self.replicators.push(replicator);
            }
        }
        if let Some(hb) = &config.heartbeats {
            self.map_heartbeats(hb, config);
        }
    }

    fn network(&mut self, key: &str, raw: &str, tls: Option<&SrTls>, side: &str) -> Option<String> {
        let mut network = Network {
            tls: tls.cloned(),
            ..Network::default()
        };
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let with_scheme = if part.contains("://") {
                part.to_owned()
            } else {
                format!("nats://{part}")
            };
            let mut url = match url::Url::parse(&with_scheme) {
                Ok(url) => url,
                Err(e) => {
                    self.problem(key, format!("{part:?} is not a URL: {e}"));
                    return None;
                }
            };
            if !url.username().is_empty() {
                network.user = Some(url.username().to_owned());
                network.password = url.password().map(str::to_owned);
            }
            for (param, value) in url.query_pairs() {
                match param.as_ref() {
                    "credentials" => network.credentials = Some(value.into_owned()),
                    "connect_timeout" => {
                        network.connect_timeout =
                            self.duration(&format!("{key}?connect_timeout"), &value)
                    }
                    "jwt" | "nkey" => self.unmapped(
                        format!("{key}?{param}"),
                        "separate JWT and nkey files: join them into one .creds file (nsc generate creds) and pass credentials=",
                    ),
                    "tls_handshake_first" => self.unmapped(
                        format!("{key}?tls_handshake_first"),
                        "choir's client does the NATS handshake before TLS",
                    ),
                    "insecure" => self.unmapped(
                        format!("{key}?insecure"),
                        "choir always verifies servers; give the CA in tls.ca",
                    ),
                    other => self.unmapped(format!("{key}?{other}"), "unknown URL option"),
                }
            }
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            network.urls.push(url.to_string());
        }
        if network.urls.is_empty() {
            self.problem(key, "no server URL");
            return None;
        }
        if network.user.is_some() && network.credentials.is_some() {
            self.unmapped(
                format!("{key} user:password"),
                "choir takes one authentication method; credentials= wins",
            );
            network.user = None;
            network.password = None;
        }
        if let Some((name, _)) = self.networks.iter().find(|(_, n)| *n == network) {
            return Some(name.clone());
        }
        let count = self
            .networks
            .iter()
            .filter(|(n, _)| n.starts_with(side))
            .count();
        let name = if count == 0 {
            side.to_owned()
        } else {
            format!("{side}{}", count + 1)
        };
        self.networks.push((name.clone(), network));
        Some(name)
    }

    fn map_stream(
        &mut self,
        i: usize,
        s: &SrStream,
        config: &SrConfig,
        names: &mut Vec<String>,
    ) -> Option<Replicator> {
        let key = |k: &str| format!("streams[{i}].{k}");
        let Some(stream) = s.stream.clone().filter(|x| !x.is_empty()) else {
            self.problem(key("stream"), "required: the source stream");
            return None;
        };
        // The SR's per-stream name, case kept: it is the `worker` label and the name in
        // `Choria-SR-Source` that an ordered replicator resumes from.
        let base = choir_name(s.name.as_deref().unwrap_or(&stream));
        let mut name = base.clone();
        let mut n = 1;
        while names.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        names.push(name.clone());
        let mut r = Replicator {
            name: name.clone(),
            ..Replicator::default()
        };
        let source_tls = s
            .source_tls
            .as_ref()
            .or(s.tls.as_ref())
            .or(config.tls.as_ref());
        let target_tls = s
            .target_tls
            .as_ref()
            .or(s.tls.as_ref())
            .or(config.tls.as_ref());
        let source = match &s.source_url {
            Some(url) => self.network(&key("source_url"), url, source_tls, "source"),
            None => {
                self.problem(key("source_url"), "required");
                None
            }
        };
        let target = match &s.target_url {
            Some(url) => self.network(&key("target_url"), url, target_tls, "target"),
            None => {
                self.problem(key("target_url"), "required");
                None
            }
        };
        let (Some(source), Some(target)) = (source, target) else {
            return None;
        };
        r.target_network = target.clone();
        let string = |v: &str| Value::String(v.to_owned());
        r.keys.push(("source".into(), string(&source)));
        r.keys.push(("target".into(), string(&target)));
        r.keys.push(("stream".into(), string(&stream)));
        if s.name.is_some() && s.name.as_deref() != Some(name.as_str()) {
            r.notes.push(format!(
                "the SR's name {:?} became {name:?} (choir names use letters, digits, '-' and '_')",
                s.name.as_deref().unwrap_or_default()
            ));
        }
        for (k, v) in [
            ("target_stream", &s.target_stream),
            ("filter_subject", &s.filter_subject),
            ("target_subject_prefix", &s.target_subject_prefix),
            ("target_subject_remove", &s.target_subject_remove),
        ] {
            if let Some(v) = v {
                r.keys.push((k.into(), string(v)));
            }
        }
        if s.no_target_create == Some(true) {
            r.keys.push(("create_target".into(), Value::Boolean(false)));
        }
        let starts = [
            s.start_sequence.is_some(),
            s.start_time.is_some(),
            s.start_delta.is_some(),
            s.start_at_end == Some(true),
        ];
        if starts.iter().filter(|x| **x).count() > 1 {
            self.problem(
                key("start_sequence"),
                "give only one of start_sequence, start_time, start_delta, start_at_end",
            );
        } else if let Some(seq) = s.start_sequence {
            r.keys.push((
                "start".into(),
                Value::Integer(i64::try_from(seq).unwrap_or(i64::MAX)),
            ));
        } else if let Some(time) = &s.start_time {
            if humantime::parse_rfc3339_weak(time).is_err() {
                self.problem(
                    key("start_time"),
                    format!("{time:?} is not an RFC 3339 time"),
                );
            } else {
                r.keys.push(("start".into(), string(time)));
            }
        } else if let Some(delta) = &s.start_delta {
            if let Some(d) = self.duration(&key("start_delta"), delta) {
                r.keys.push(("start".into(), Value::String(d)));
            }
        } else if s.start_at_end == Some(true) {
            r.keys.push(("start".into(), string("new")));
        }
        if let Some(max_age) = &s.max_age {
            if let Some(d) = self.duration(&key("max_age"), max_age) {
                r.keys.push(("max_age".into(), Value::String(d)));
            }
        }
        if s.target_initiated == Some(true) {
            self.unmapped(
                key("target_initiated"),
                "choir has no push mode; its ordered mode pipelines a window of copies, which is what target_initiated was for (latency), and keeps headers and sampling",
            );
        }
        if s.ephemeral == Some(true) {
            self.unmapped(
                key("ephemeral"),
                "choir always resumes from a durable consumer; to copy the whole stream again, start a replicator with a new name and start = \"all\"",
            );
        }
        for (k, set) in [
            ("choria", s.choria.is_some()),
            ("source_choria", s.source_choria.is_some()),
            ("target_choria", s.target_choria.is_some()),
        ] {
            if set {
                self.unmapped(
                    key(k),
                    "Choria JWT/seed authentication is not supported; use a .creds file (credentials=) or TLS",
                );
            }
        }
        // The SR counts subject tokens from 1 and takes -1 for the whole subject; choir counts
        // from 0 and takes negative numbers from the end.
        let token = match s.inspect_subject_token {
            Some(t) if t > 0 => Some(format!("subject:{}", t - 1)),
            Some(-1) => {
                self.unmapped(
                    key("inspect_subject_token"),
                    "-1 (the whole subject) has no choir equivalent: this replicator is not sampled",
                );
                None
            }
            Some(t) => {
                self.problem(
                    key("inspect_subject_token"),
                    format!("{t}: tokens count from 1 (or -1 for the whole subject)"),
                );
                None
            }
            None => None,
        };
        let inspects = [
            s.inspect_field.clone(),
            s.inspect_header.as_ref().map(|h| format!("header:{h}")),
            token,
        ];
        let set: Vec<String> = inspects.into_iter().flatten().collect();
        if set.len() > 1 {
            self.problem(
                key("inspect_field"),
                "give only one of inspect_field, inspect_header, inspect_subject_token",
            );
        }
        if let Some(inspect) = set.first() {
            if let Some(field) = &s.inspect_field {
                if field.contains(['#', '|', '*', '?', '@', '\\']) {
                    self.problem(
                        key("inspect_field"),
                        format!(
                            "{field:?}: choir takes a dotted JSON path (a.b.c), not gjson queries"
                        ),
                    );
                }
            }
            r.keys.push(("inspect".into(), string(inspect)));
            let Some(age) = s
                .inspect_duration
                .as_ref()
                .and_then(|d| self.duration(&key("inspect_duration"), d))
            else {
                self.problem(
                    key("inspect_duration"),
                    "required with inspect_* (the sampling period)",
                );
                return None;
            };
            r.keys.push(("age".into(), Value::String(age.clone())));
            let age_d = humantime::parse_duration(&age).unwrap_or_default();
            match s
                .warn_duration
                .as_ref()
                .and_then(|d| self.duration(&key("warn_duration"), d))
            {
                Some(warn) if humantime::parse_duration(&warn).unwrap_or_default() >= age_d => {
                    r.keys.push(("sender_timeout".into(), Value::String(warn)));
                }
                Some(warn) => r.notes.push(format!(
                    "warn_duration {warn} is below inspect_duration; choir's sender_timeout must be at least age, so it keeps its default (1.5 x age)"
                )),
                None => r.notes.push(
                    "the SR warns after inspect_duration / 2; choir's sender_timeout defaults to 1.5 x age (it must be at least age)".into(),
                ),
            }
            r.notes.push(
                "the SR forgets a sender after inspect_duration; choir after sender_expire (default 2 x sender_timeout)".into(),
            );
            if let Some(size) = s.size_trigger.filter(|n| *n > 0) {
                r.keys.push((
                    "size_trigger".into(),
                    Value::Integer(i64::try_from(size).unwrap_or(i64::MAX)),
                ));
            }
            if let Some(force) = &s.inspect_force_field {
                r.keys.push(("force_field".into(), string(force)));
                r.notes.push(
                    "force_field copies when the field is true; the SR copied when it was present at all".into(),
                );
            }
            if let Some(advisory) = &s.advisory {
                r.advisories = Some((advisory.subject.clone(), advisory.reliable.unwrap_or(false)));
            }
        } else {
            for (k, set) in [
                ("inspect_duration", s.inspect_duration.is_some()),
                ("warn_duration", s.warn_duration.is_some()),
                ("size_trigger", s.size_trigger.is_some()),
                ("inspect_force_field", s.inspect_force_field.is_some()),
                ("advisory", s.advisory.is_some()),
            ] {
                if set {
                    self.unmapped(key(k), "only meaningful with inspect_field, inspect_header or inspect_subject_token");
                }
            }
        }
        if let Some(election) = &s.leader_election_name {
            r.ha_note = Some(election.clone());
        }
        Some(r)
    }

    fn map_heartbeats(&mut self, hb: &SrHeartbeats, config: &SrConfig) {
        let Some(url) = &hb.url else {
            self.unmapped("heartbeats", "no url: nowhere to publish");
            return;
        };
        let tls = hb.tls.as_ref().or(config.tls.as_ref());
        let Some(network) = self.network("heartbeats.url", url, tls, "target") else {
            return;
        };
        let Some(at) = self
            .replicators
            .iter()
            .position(|r| r.target_network == network)
        else {
            self.unmapped(
                "heartbeats",
                "choir publishes heartbeats per replicator to its target network, and no stream targets heartbeats.url",
            );
            return;
        };
        if hb.leader_election == Some(true)
            && self.replicators.get(at).is_none_or(|r| r.ha_note.is_none())
        {
            self.unmapped("heartbeats.leader_election", NO_HA);
        }
        if hb.choria.is_some() {
            self.unmapped(
                "heartbeats.choria",
                "Choria JWT/seed authentication is not supported",
            );
        }
        if hb.headers.is_some() {
            self.unmapped(
                "heartbeats.headers",
                "choir sends Choria-SR-Originator and Choria-SR-Subject only",
            );
        }
        for (i, subject) in hb.subjects.iter().enumerate() {
            if i > 0 {
                self.unmapped(
                    format!("heartbeats.subjects[{i}]"),
                    "choir publishes one heartbeat subject per replicator; add this one to another replicator by hand",
                );
                continue;
            }
            if subject.headers.is_some() {
                self.unmapped(
                    format!("heartbeats.subjects[{i}].headers"),
                    "choir sends Choria-SR-Originator and Choria-SR-Subject only",
                );
            }
            let interval = subject
                .interval
                .as_ref()
                .or(hb.interval.as_ref())
                .map_or_else(
                    || Some("10s".to_owned()),
                    |d| self.duration(&format!("heartbeats.subjects[{i}].interval"), d),
                );
            if let (Some(interval), Some(r)) = (interval, self.replicators.get_mut(at)) {
                r.keys.push(("heartbeat".into(), Value::String(interval)));
                r.keys.push((
                    "heartbeat_subject".into(),
                    Value::String(subject.subject.clone()),
                ));
            }
        }
        if hb.subjects.is_empty() {
            self.unmapped("heartbeats", "no subjects");
        }
    }

    fn render(&self, path: &Path, config: &SrConfig) -> String {
        let mut out = String::new();
        let mut line = |s: &str| {
            out.push_str(s);
            out.push('\n');
        };
        line(&format!(
            "# Imported from {} (Choria Stream Replicator v2) by `choir import stream-replicator`.",
            path.display()
        ));
        line("# Keys without a choir equivalent are listed as `# not imported:` comments.");
        for (key, why) in &self.unmapped {
            line(&format!("# not imported: {key}: {why}"));
        }
        line("");
        line("[node]");
        let sr_name = config.name.clone().unwrap_or_default();
        let node_name = choir_name(&sr_name);
        if node_name != sr_name {
            line(&format!(
                "# the SR's name {sr_name:?} became {node_name:?}: choir names use letters, digits, '-' and '_'"
            ));
        }
        line(&format!("name = {}", Value::String(node_name)));
        if let Some(state) = &config.state_store {
            line("# choir keeps trackers in <state_dir>/replicators/<name>.tracker; the SR's <stream>_<name>.json files are not read");
            line(&format!("state_dir = {}", Value::String(state.clone())));
        }
        match config.monitor_port {
            Some(port) => line(&format!("monitor = \"0.0.0.0:{port}\"")),
            None => line("monitor = \"off\""),
        }
        line("# the SR's header, advisories, heartbeats and metric names, besides choir's own");
        line("compat = \"choria\"");
        for (name, n) in &self.networks {
            line("");
            line(&format!("[networks.{name}]"));
            let urls: Vec<Value> = n.urls.iter().cloned().map(Value::String).collect();
            line(&format!("urls = {}", Value::Array(urls)));
            for (k, v) in [
                ("credentials", &n.credentials),
                ("user", &n.user),
                ("password", &n.password),
                ("connect_timeout", &n.connect_timeout),
            ] {
                if let Some(v) = v {
                    line(&format!("{k} = {}", Value::String(v.clone())));
                }
            }
            if let Some(tls) = &n.tls {
                line(&format!("[networks.{name}.tls]"));
                for (k, v) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
                    if let Some(v) = v {
                        line(&format!("{k} = {}", Value::String(v.clone())));
                    }
                }
            }
        }
        for r in &self.replicators {
            line("");
            line(&format!("[replicators.{}]", r.name));
            for note in &r.notes {
                line(&format!("# {note}"));
            }
            for (k, v) in &r.keys {
                line(&format!("{k} = {v}"));
            }
            if let Some((subject, reliable)) = &r.advisories {
                line(&format!("[replicators.{}.advisories]", r.name));
                line("# with compat = \"choria\" advisories go to the source network, as the SR's");
                line(&format!("subject = {}", Value::String(subject.clone())));
                line(&format!("reliable = {reliable}"));
            }
            if let Some(election) = &r.ha_note {
                line(&format!(
                    "# The SR elected a leader for {election:?} in KV bucket CHORIA_LEADER_ELECTION; choir does too, key SR_<name>_<stream>."
                ));
                line(&format!("[replicators.{}.ha]", r.name));
                line("bucket = \"CHORIA_LEADER_ELECTION\"");
                line("ttl = \"10s\"              # the SR's --ttl flag (not in its YAML); choir's default is 5s");
                line("# identity = \"<host>\"    # unique per node; default: the host name");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_servers_and_move_options_to_keys() {
        let mut m = Mapper::default();
        let name = m
            .network(
                "k",
                "nats://u:p@a:4222,b:4223?connect_timeout=5s",
                None,
                "source",
            )
            .unwrap();
        assert_eq!(name, "source");
        let n = &m.networks[0].1;
        assert_eq!(n.urls, ["nats://a:4222", "nats://b:4223"]);
        assert_eq!(n.user.as_deref(), Some("u"));
        assert_eq!(n.connect_timeout.as_deref(), Some("5s"));
        // The same servers again: the same network.
        assert_eq!(
            m.network(
                "k2",
                "nats://u:p@a:4222,b:4223?connect_timeout=5s",
                None,
                "target"
            )
            .unwrap(),
            "source"
        );
        assert_eq!(
            m.network(
                "k3",
                "nats://c:4222?credentials=/x.creds&insecure=true",
                None,
                "source"
            )
            .unwrap(),
            "source2"
        );
        assert_eq!(m.networks[1].1.credentials.as_deref(), Some("/x.creds"));
        assert_eq!(m.unmapped.len(), 1, "{:?}", m.unmapped);
        assert!(m.problems.is_empty());
    }

    #[test]
    fn sr_durations_become_humantime() {
        let mut m = Mapper::default();
        assert_eq!(m.duration("k", "1h30m").as_deref(), Some("1h30m"));
        assert_eq!(m.duration("k", "1Y").as_deref(), Some("1y"));
        assert_eq!(m.duration("k", "2w").as_deref(), Some("2w"));
        assert_eq!(m.duration("k", "soon"), None);
        assert_eq!(m.problems.len(), 1);
    }

    #[test]
    fn bad_yaml_names_the_file_line_and_key() {
        let text =
            "name: x\nstreams:\n  - stream: S\n    source_url: nats://a:1\n    size_triger: 10\n";
        let err = import_str(Path::new("sr.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sr.yaml:5: streams[0]"), "{err}");
        assert!(err.contains("size_triger"), "{err}");
        let err = import_str(Path::new("sr.yaml"), "name: x\nstreams:\n  - name: a\n    source_url: nats://a:1\n    target_url: nats://b:1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sr.yaml:3: streams[0].stream: required"),
            "{err}"
        );
    }
}
