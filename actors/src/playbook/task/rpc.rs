//! The `rpc` task: parsed and validated; running it needs the choir client, which is not built
//! yet, so every try fails with a clear error.

use super::TaskOutcome;
use crate::playbook::spec::TaskSpec;
use crate::playbook::template::Context;

/// The error every rpc try reports until the client exists.
pub const NOT_BUILT: &str = "rpc tasks need the choir client (not built yet)";

/// Fails with [`NOT_BUILT`].
pub async fn run(spec: &TaskSpec, _ctx: &Context) -> TaskOutcome {
    let agent = spec.agent.as_deref().unwrap_or_default();
    let action = spec.action.as_deref().unwrap_or_default();
    TaskOutcome::fail(format!("{agent}#{action}: {NOT_BUILT}"))
}
