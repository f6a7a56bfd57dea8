//! How many open files a fleet needs, checked before anything starts.
//!
//! A dedicated daemon holds one socket; a process also needs files for itself (the monitor,
//! logs, the audit file, epoll, the runtime). A fleet that cannot fit fails at once with a
//! message that says so, instead of dying half-started with `EMFILE`.

use super::ConnectionMode;

/// Files kept free for the process itself.
pub const RESERVED_FDS: u64 = 256;

/// Ephemeral ports one client address can use towards one server port on Linux by default
/// (32768–60999).
pub const DEFAULT_EPHEMERAL_PORTS: u64 = 28_232;

/// The open files a fleet needs against what the process may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// Files the fleet needs, the reserve included.
    pub needed: u64,
    /// The process's open-file limit (soft, after raising it to the hard limit).
    pub limit: u64,
}

/// Checks that `instances` daemons fit under `limit` open files; the error is the message to
/// show.
pub fn check_fd_budget(
    instances: usize,
    mode: ConnectionMode,
    shared_connections: usize,
    limit: u64,
) -> Result<FdBudget, String> {
    let sockets = match mode {
        ConnectionMode::Dedicated => instances,
        ConnectionMode::Shared => shared_connections.min(instances),
    };
    let needed = u64::try_from(sockets)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVED_FDS);
    if needed <= limit {
        return Ok(FdBudget { needed, limit });
    }
    let fit = limit.saturating_sub(RESERVED_FDS);
    Err(match mode {
        ConnectionMode::Dedicated => format!(
            "{instances} emulated daemons need {needed} open files (one NATS connection each plus \
             {RESERVED_FDS} for the process) but this process may hold at most {limit} \
             (RLIMIT_NOFILE hard limit); run at most {fit} daemons per process: split the fleet \
             over several emulator processes, e.g. 50 000 daemons as 3 processes of 16 667 \
             against a 3-node nats-server cluster (README, section Emulator), or use \
             --connections shared (less realistic: the broker sees fewer connections)"
        ),
        ConnectionMode::Shared => format!(
            "{sockets} shared connections need {needed} open files but this process may hold at \
             most {limit} (RLIMIT_NOFILE hard limit); use fewer shared connections"
        ),
    })
}

/// A warning when more daemons would connect to one server than one client address has
/// ephemeral ports for (`ports` = size of `net.ipv4.ip_local_port_range`).
pub fn ephemeral_port_warning(instances: usize, servers: usize, ports: u64) -> Option<String> {
    let per_server = u64::try_from(instances.div_ceil(servers.max(1))).unwrap_or(u64::MAX);
    (per_server > ports).then(|| {
        format!(
            "{per_server} daemons per server exceed the {ports} ephemeral ports one address has \
             towards one server port; give more --server addresses (a nats-server cluster)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedicated_fleet_must_fit() {
        assert_eq!(
            check_fd_budget(10_000, ConnectionMode::Dedicated, 4, 20_000),
            Ok(FdBudget {
                needed: 10_256,
                limit: 20_000
            })
        );
        let err = check_fd_budget(50_000, ConnectionMode::Dedicated, 4, 20_000).unwrap_err();
        assert!(
            err.contains("50000 emulated daemons need 50256 open files"),
            "{err}"
        );
        assert!(err.contains("at most 20000"), "{err}");
        assert!(err.contains("3 processes"), "{err}");
        assert!(err.contains("19744"), "{err}");
    }

    #[test]
    fn shared_fleet_counts_connections() {
        assert!(check_fd_budget(50_000, ConnectionMode::Shared, 8, 20_000).is_ok());
        assert!(check_fd_budget(5, ConnectionMode::Shared, 30_000, 1_000).is_ok());
        assert!(check_fd_budget(50_000, ConnectionMode::Shared, 30_000, 20_000).is_err());
    }

    #[test]
    fn ports() {
        assert!(ephemeral_port_warning(50_000, 1, DEFAULT_EPHEMERAL_PORTS).is_some());
        assert!(ephemeral_port_warning(50_000, 3, DEFAULT_EPHEMERAL_PORTS).is_none());
        assert!(ephemeral_port_warning(10, 0, DEFAULT_EPHEMERAL_PORTS).is_none());
    }
}
