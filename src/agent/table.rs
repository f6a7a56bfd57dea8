//! [`ProcessTable`]: which processes an agent runs (plain Rust, generic over the child handle
//! so that it is unit-tested without processes). At most one of each [`Kind`]; a start
//! reserves its slot first, so a second start while the first is still coming up is refused
//! instead of racing it.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use super::request::Refusal;

/// What an agent starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `choir emulate`.
    Emulator,
    /// `nats-server`.
    Nats,
}

impl Kind {
    /// The process's name in messages, logs and file names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Emulator => "emulator",
            Kind::Nats => "nats-server",
        }
    }
}

/// A running process.
#[derive(Debug)]
pub struct Running<C> {
    /// Its pid.
    pub pid: u32,
    /// When it started.
    pub started: Instant,
    /// What it was started with (reported by `status`).
    pub details: Value,
    /// Its handle.
    pub child: C,
}

#[derive(Debug)]
enum Slot<C> {
    Starting,
    Stopping,
    Running(Running<C>),
}

/// The processes of one agent.
#[derive(Debug)]
pub struct ProcessTable<C> {
    slots: BTreeMap<Kind, Slot<C>>,
}

impl<C> Default for ProcessTable<C> {
    fn default() -> Self {
        Self {
            slots: BTreeMap::new(),
        }
    }
}

impl<C> ProcessTable<C> {
    /// Reserves `kind`'s slot for a start; refused (status 1) when one runs or is starting.
    pub fn reserve(&mut self, kind: Kind) -> Result<(), Refusal> {
        match self.slots.get(&kind) {
            None => {
                self.slots.insert(kind, Slot::Starting);
                Ok(())
            }
            Some(slot) => Err(Refusal::aborted(busy(kind, slot))),
        }
    }

    /// The reserved start of `kind` failed: frees the slot.
    pub fn abandon(&mut self, kind: Kind) {
        if matches!(self.slots.get(&kind), Some(Slot::Starting)) {
            self.slots.remove(&kind);
        }
    }

    /// The reserved start of `kind` succeeded.
    pub fn started(&mut self, kind: Kind, running: Running<C>) {
        self.slots.insert(kind, Slot::Running(running));
    }

    /// Takes `kind`'s running process out for a stop (its slot stays busy until
    /// [`ProcessTable::stopped`]); refused (status 1) when nothing of that kind runs.
    pub fn take(&mut self, kind: Kind) -> Result<Running<C>, Refusal> {
        match self.slots.remove(&kind) {
            Some(Slot::Running(running)) => {
                self.slots.insert(kind, Slot::Stopping);
                Ok(running)
            }
            Some(other) => {
                let message = busy(kind, &other);
                self.slots.insert(kind, other);
                Err(Refusal::aborted(message))
            }
            None => Err(Refusal::aborted(format!("no {} is running", kind.name()))),
        }
    }

    /// The stop of `kind` is over.
    pub fn stopped(&mut self, kind: Kind) {
        if matches!(self.slots.get(&kind), Some(Slot::Stopping)) {
            self.slots.remove(&kind);
        }
    }

    /// `kind`'s running process.
    pub fn get_mut(&mut self, kind: Kind) -> Option<&mut Running<C>> {
        match self.slots.get_mut(&kind) {
            Some(Slot::Running(running)) => Some(running),
            _ => None,
        }
    }

    /// Removes `kind`'s running process (it exited by itself).
    pub fn remove(&mut self, kind: Kind) -> Option<Running<C>> {
        match self.slots.remove(&kind) {
            Some(Slot::Running(running)) => Some(running),
            Some(other) => {
                self.slots.insert(kind, other);
                None
            }
            None => None,
        }
    }

    /// Every running process, taken out for the agent's shutdown.
    pub fn take_all(&mut self) -> Vec<(Kind, Running<C>)> {
        let kinds: Vec<Kind> = self.slots.keys().copied().collect();
        kinds
            .into_iter()
            .filter_map(|k| self.take(k).ok().map(|r| (k, r)))
            .collect()
    }
}

fn busy<C>(kind: Kind, slot: &Slot<C>) -> String {
    match slot {
        Slot::Starting => format!("{} is already starting", kind.name()),
        Slot::Stopping => format!("{} is stopping", kind.name()),
        Slot::Running(r) => format!("{} is already running (pid {})", kind.name(), r.pid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use choir_actors::protocol::STATUS_ABORTED;

    fn running(pid: u32) -> Running<()> {
        Running {
            pid,
            started: Instant::now(),
            details: Value::Null,
            child: (),
        }
    }

    #[test]
    fn one_process_of_each_kind() {
        let mut t = ProcessTable::default();
        t.reserve(Kind::Nats).unwrap();
        let twice = t.reserve(Kind::Nats).unwrap_err();
        assert_eq!(twice.code, STATUS_ABORTED);
        assert_eq!(twice.message, "nats-server is already starting");
        t.reserve(Kind::Emulator).unwrap();
        t.started(Kind::Nats, running(7));
        assert_eq!(
            t.reserve(Kind::Nats).unwrap_err().message,
            "nats-server is already running (pid 7)"
        );
        t.abandon(Kind::Emulator);
        t.reserve(Kind::Emulator).unwrap();
    }

    #[test]
    fn stop_takes_the_process_and_frees_the_slot_when_done() {
        let mut t: ProcessTable<()> = ProcessTable::default();
        let none = t.take(Kind::Emulator).unwrap_err();
        assert_eq!(none.code, STATUS_ABORTED);
        assert_eq!(none.message, "no emulator is running");
        t.reserve(Kind::Emulator).unwrap();
        assert_eq!(
            t.take(Kind::Emulator).unwrap_err().message,
            "emulator is already starting"
        );
        t.started(Kind::Emulator, running(9));
        assert_eq!(t.take(Kind::Emulator).unwrap().pid, 9);
        assert_eq!(
            t.reserve(Kind::Emulator).unwrap_err().message,
            "emulator is stopping"
        );
        t.stopped(Kind::Emulator);
        t.reserve(Kind::Emulator).unwrap();
    }

    #[test]
    fn shutdown_takes_every_running_process() {
        let mut t = ProcessTable::default();
        t.started(Kind::Nats, running(1));
        t.started(Kind::Emulator, running(2));
        let all: Vec<u32> = t.take_all().into_iter().map(|(_, r)| r.pid).collect();
        assert_eq!(all, [2, 1]);
        assert!(t.get_mut(Kind::Nats).is_none());
    }
}
