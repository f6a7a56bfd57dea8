//! The run core: prepare (inputs, stores, saved inputs, locks in sorted order, node sets, their
//! ping test and `uses` check),
//! then `pre_book`, the tasks (each wrapped by `pre_task`/`post_task`), `on_success` or
//! `on_fail`, and `post_book`. Locks are released on every path: success, failure, a failed
//! prepare, a lost lock and an interrupt.
//!
//! Decisions: a failing `pre_book` ends the run at once, as in Choria (no tasks, no
//! `on_fail`, no `post_book`); `pre_task`/`post_task` wrap only the main tasks; a lost lock or an interrupt stops everything at once (no more hooks:
//! the critical section is no longer protected); `fail_ok` applies after the last try, whatever
//! `tries` is (Choria ignored it when `tries > 1`, a known bug).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::client::PlaybookClient;
use super::input::{parse_text, to_stored};
use super::lock::LockKeeper;
use super::nodes;
use super::report::{timestamp, Report, TaskTry};
use super::store::{self, SharedStore};
use super::task::{self, TaskOutcome};
use super::template::{uuid_v4, Context, PreviousTask};
use super::validate::{Playbook, Task};

/// Default sleep between tries.
const DEFAULT_TRY_SLEEP: Duration = Duration::from_secs(10);

/// One run of one playbook.
pub struct Runner {
    pb: Arc<Playbook>,
    given: BTreeMap<String, Value>,
    run_id: String,
    stores: BTreeMap<String, SharedStore>,
    fixed: BTreeMap<String, Value>,
    dynamic: BTreeSet<String>,
    node_sets: BTreeMap<String, Vec<String>>,
    client: PlaybookClient,
    previous: Option<PreviousTask>,
    started: Instant,
    report: Report,
}

impl Runner {
    /// A run of `pb` with the inputs given on the command line (strings are parsed by the
    /// input's type).
    pub fn new(pb: Playbook, given: BTreeMap<String, Value>) -> Self {
        let run_id = uuid_v4();
        let report = Report::new(
            run_id.clone(),
            &pb.spec.metadata.name,
            &pb.spec.metadata.version,
        );
        let client = PlaybookClient::new(pb.client.clone());
        Self {
            client,
            pb: Arc::new(pb),
            given,
            run_id,
            stores: BTreeMap::new(),
            fixed: BTreeMap::new(),
            dynamic: BTreeSet::new(),
            node_sets: BTreeMap::new(),
            previous: None,
            started: Instant::now(),
            report,
        }
    }

    /// This run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Runs to the end (or until `cancel` completes) and returns the report.
    pub async fn run(mut self, cancel: impl Future<Output = ()>) -> Report {
        let name = self.pb.name().to_string();
        tracing::info!(playbook = %name, run_id = %self.run_id, "Playbook run starting.");
        self.started = Instant::now();
        let mut keeper = LockKeeper::new();
        let mut lost = keeper.lost();
        let outcome = {
            let book = self.execute(&mut keeper);
            tokio::pin!(book);
            tokio::pin!(cancel);
            tokio::select! {
                outcome = &mut book => outcome,
                reason = lost.wait_for(Option::is_some) => {
                    Err(reason.ok().and_then(|r| r.clone()).unwrap_or_else(|| "a lock was lost".into()))
                }
                () = &mut cancel => Err("interrupted".to_string()),
            }
        };
        keeper.release_all().await;
        self.report.locks = keeper.records();
        self.report.success = outcome.is_ok();
        self.report.error = outcome.err();
        self.report.inputs.fixed = self.fixed.clone();
        self.report.inputs.dynamic = self.dynamic.iter().cloned().collect();
        self.report.nodes = self.node_sets.clone();
        self.report.metrics.end_time = timestamp(SystemTime::now());
        self.report.metrics.run_time = self.started.elapsed().as_secs_f64();
        match &self.report.error {
            None => {
                tracing::info!(playbook = %name, run_id = %self.run_id, "Playbook run succeeded.")
            }
            Some(error) => {
                tracing::error!(playbook = %name, run_id = %self.run_id, %error, "Playbook run failed.")
            }
        }
        self.report
    }

    async fn execute(&mut self, keeper: &mut LockKeeper) -> Result<(), String> {
        self.prepare(keeper).await?;
        let pb = self.pb.clone();
        let hooks = &pb.hooks;
        // As in Choria: a failed pre_book ends the run at once, without on_fail or post_book.
        self.run_list("pre_book", &hooks.pre_book)
            .await
            .map_err(|error| format!("pre_book: {error}"))?;
        let mut failure = None;
        if let Err(error) = self.run_main(&pb.tasks).await {
            failure = Some(error);
        } else if let Err(error) = self.run_list("on_success", &hooks.on_success).await {
            failure = Some(format!("on_success: {error}"));
        }
        if failure.is_some() {
            // Its outcome is reported but does not change the result.
            let _ = self.run_list("on_fail", &hooks.on_fail).await;
        }
        if let Err(error) = self.run_list("post_book", &hooks.post_book).await {
            failure.get_or_insert(format!("post_book: {error}"));
        }
        failure.map_or(Ok(()), Err)
    }

    async fn prepare(&mut self, keeper: &mut LockKeeper) -> Result<(), String> {
        let pb = self.pb.clone();
        // Inputs: every problem at once, before anything runs.
        let mut problems = Vec::new();
        for name in self.given.keys() {
            match pb.inputs.get(name) {
                None => problems.push(format!("unknown input {name:?}")),
                Some(input) if input.spec.dynamic => problems.push(format!(
                    "input {name:?} is dynamic: it is read from its data store only"
                )),
                Some(_) => {}
            }
        }
        for (name, input) in &pb.inputs {
            if let Some(value) = self.given.get(name).filter(|_| !input.spec.dynamic) {
                match input.accept(value.clone()) {
                    Ok(value) => {
                        self.fixed.insert(name.clone(), value);
                    }
                    Err(error) => problems.push(format!("input {name:?}: {error}")),
                }
            } else if input.binding.is_some() {
                self.dynamic.insert(name.clone());
            } else if let Some(default) = &input.default {
                self.fixed.insert(name.clone(), default.clone());
            } else if input.spec.is_required() {
                problems.push(format!("input {name:?} is required (--{name})"));
            }
        }
        if !problems.is_empty() {
            return Err(format!("invalid inputs: {}", problems.join("; ")));
        }
        for (name, config) in &pb.stores {
            let opened = store::open(config)
                .await
                .map_err(|e| format!("data store {name}: {e}"))?;
            self.stores.insert(name.clone(), opened);
        }
        for (name, input) in &pb.inputs {
            if let (true, Some(value), Some((store, key))) =
                (input.spec.save, self.fixed.get(name), &input.binding)
            {
                if self.given.contains_key(name) {
                    self.store(store)?
                        .write(key, &to_stored(value))
                        .await
                        .map_err(|e| format!("saving input {name}: {e}"))?;
                }
            }
        }
        for (store_name, key) in &pb.locks {
            let config = &pb.stores[store_name];
            let store = self.store(store_name)?;
            keeper
                .acquire(store, key, config.timeout, config.ttl)
                .await
                .map_err(|e| e.to_string())?;
        }
        for (name, set) in &pb.nodes {
            let nodes = nodes::resolve(name, set, &self.client).await?;
            self.node_sets.insert(name.clone(), nodes);
        }
        nodes::test_connectivity(&pb, &self.node_sets, &self.client).await?;
        nodes::check_uses(&pb, &self.node_sets, &self.client).await?;
        Ok(())
    }

    fn store(&self, name: &str) -> Result<SharedStore, String> {
        self.stores
            .get(name)
            .cloned()
            .ok_or_else(|| format!("unknown data store {name:?}"))
    }

    /// The template context, dynamic inputs freshly read.
    async fn context(&self) -> Result<Context, String> {
        let mut ctx = Context::new();
        ctx.started = self.started;
        ctx.inputs = self.fixed.clone();
        for name in &self.dynamic {
            let input = &self.pb.inputs[name];
            let Some((store, key)) = &input.binding else {
                continue;
            };
            let read = self.store(store)?.read(key).await;
            let value = match read {
                Ok(Some(text)) => Some(
                    parse_text(input.spec.kind, &text)
                        .and_then(|v| input.accept(v))
                        .map_err(|e| format!("input {name:?} from {store}/{key}: {e}"))?,
                ),
                Ok(None) => None,
                Err(error) => {
                    tracing::warn!(input = %name, %error, "Data store read failed; using the default.");
                    None
                }
            };
            if let Some(value) = value.or_else(|| input.default.clone()) {
                ctx.inputs.insert(name.clone(), value);
            }
        }
        let meta = &self.pb.spec.metadata;
        for (key, value) in [
            ("name", Value::from(meta.name.clone())),
            ("version", Value::from(meta.version.clone())),
            ("author", Value::from(meta.author.clone())),
            ("description", Value::from(meta.description.clone())),
            ("tags", Value::from(meta.tags.clone())),
        ] {
            ctx.metadata.insert(key.to_string(), value);
        }
        ctx.nodes = self.node_sets.clone();
        ctx.previous = self.previous.clone();
        Ok(ctx)
    }

    /// Runs a list; the first failure stops it.
    async fn run_list(&mut self, set: &str, tasks: &[Task]) -> Result<(), String> {
        for (index, task) in tasks.iter().enumerate() {
            self.run_task(set, index, task).await?;
        }
        Ok(())
    }

    /// Runs the main tasks, each wrapped by pre_task and post_task.
    async fn run_main(&mut self, tasks: &[Task]) -> Result<(), String> {
        let pb = self.pb.clone();
        for (index, task) in tasks.iter().enumerate() {
            self.run_list("pre_task", &pb.hooks.pre_task)
                .await
                .map_err(|e| format!("tasks[{index}]: pre_task: {e}"))?;
            self.run_task("tasks", index, task).await?;
            self.run_list("post_task", &pb.hooks.post_task)
                .await
                .map_err(|e| format!("tasks[{index}]: post_task: {e}"))?;
        }
        Ok(())
    }

    /// Runs one task with its tries; the error is the last try's message.
    async fn run_task(&mut self, set: &str, index: usize, task: &Task) -> Result<(), String> {
        let spec = &task.spec;
        let tries = spec.tries.unwrap_or(1).max(1);
        if let Some(pause) = spec.pre_sleep {
            tokio::time::sleep(pause).await;
        }
        let task_start = Instant::now();
        let mut last = TaskOutcome::fail("not run");
        let mut description = String::new();
        for attempt in 1..=tries {
            if attempt > 1 {
                tokio::time::sleep(spec.try_sleep.unwrap_or(DEFAULT_TRY_SLEEP)).await;
            }
            let started_at = SystemTime::now();
            let start = Instant::now();
            last = match self.context().await {
                Ok(ctx) => {
                    description = match &spec.description {
                        Some(text) => ctx.render_text(text).unwrap_or_else(|_| text.clone()),
                        None => format!("{} task", task.kind.as_str()),
                    };
                    task::execute(task, &ctx, &self.stores, &self.client).await
                }
                Err(error) => TaskOutcome::fail(error),
            };
            tracing::info!(
                set,
                index,
                attempt,
                success = last.success,
                "{description}: {}",
                last.message.lines().next().unwrap_or_default()
            );
            self.report.record(TaskTry {
                set: set.to_string(),
                index,
                kind: task.kind.as_str().to_string(),
                description: description.clone(),
                attempt,
                start_time: timestamp(started_at),
                end_time: timestamp(SystemTime::now()),
                run_time: start.elapsed().as_secs_f64(),
                success: last.success,
                message: last.message.clone(),
                data: last.data.clone(),
            });
            if last.success {
                break;
            }
        }
        let success = last.success || spec.fail_ok;
        self.previous = Some(PreviousTask {
            success,
            description: description.clone(),
            message: last.message.clone(),
            data: last.data.clone(),
            runtime: task_start.elapsed().as_secs_f64(),
        });
        if success {
            Ok(())
        } else {
            Err(format!("{set}[{index}] {description}: {}", last.message))
        }
    }
}
