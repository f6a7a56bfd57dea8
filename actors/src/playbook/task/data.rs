//! The `data` task: write or delete `store/key`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::TaskOutcome;
use crate::playbook::input::{to_stored, toml_to_json};
use crate::playbook::spec::TaskSpec;
use crate::playbook::store::{split_store_key, SharedStore};
use crate::playbook::template::Context;

/// Runs one try.
pub async fn run(
    spec: &TaskSpec,
    ctx: &Context,
    stores: &BTreeMap<String, SharedStore>,
) -> TaskOutcome {
    let key = match ctx.render_text(spec.key.as_deref().unwrap_or_default()) {
        Ok(key) => key,
        Err(error) => return TaskOutcome::fail(format!("key: {error}")),
    };
    let Some((store_name, store_key)) = split_store_key(&key) else {
        return TaskOutcome::fail(format!("key {key:?}: expected store/key"));
    };
    let Some(store) = stores.get(store_name) else {
        return TaskOutcome::fail(format!("key {key:?}: unknown data store {store_name:?}"));
    };
    match spec.action.as_deref() {
        Some("delete") => match store.delete(store_key).await {
            Ok(()) => TaskOutcome::ok(format!("deleted {key}"), Value::Null),
            Err(error) => TaskOutcome::fail(format!("delete {key}: {error}")),
        },
        _ => {
            let raw = spec.value.as_ref().map(toml_to_json).unwrap_or(Value::Null);
            let value = match ctx.render_value(&raw) {
                Ok(value) => to_stored(&value),
                Err(error) => return TaskOutcome::fail(format!("value: {error}")),
            };
            match store.write(store_key, &value).await {
                Ok(()) => TaskOutcome::ok(format!("wrote {key} = {value:?}"), Value::from(value)),
                Err(error) => TaskOutcome::fail(format!("write {key}: {error}")),
            }
        }
    }
}
