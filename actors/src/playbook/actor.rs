//! `PlaybookRunActor`: the actix shell around one [`Runner`].

use actix::prelude::*;
use tokio::sync::oneshot;

use super::report::Report;
use super::run::Runner;

/// Runs one playbook once.
pub struct PlaybookRunActor {
    runner: Option<Runner>,
}

impl PlaybookRunActor {
    /// An actor that will run `runner` when asked.
    pub fn new(runner: Runner) -> Self {
        Self {
            runner: Some(runner),
        }
    }
}

impl Actor for PlaybookRunActor {
    type Context = Context<Self>;
}

/// Command: run the playbook; the answer is its report. Sending `()` on the paired sender
/// (e.g. on Ctrl-C) interrupts the run, which still releases its locks.
#[derive(Debug, Message)]
#[rtype(result = "Report")]
pub struct RunPlaybook {
    /// Interrupt signal; a dropped sender means "never".
    pub cancel: oneshot::Receiver<()>,
}

impl Handler<RunPlaybook> for PlaybookRunActor {
    type Result = ResponseActFuture<Self, Report>;

    fn handle(&mut self, msg: RunPlaybook, _: &mut Self::Context) -> Self::Result {
        let runner = self.runner.take();
        let cancel = async move {
            if msg.cancel.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        Box::pin(
            async move {
                match runner {
                    Some(runner) => runner.run(cancel).await,
                    None => {
                        let mut report = Report::new(String::new(), "", "");
                        report.error = Some("this run already ran".into());
                        report
                    }
                }
            }
            .into_actor(self)
            .map(|report, _actor, ctx| {
                ctx.stop();
                report
            }),
        )
    }
}
