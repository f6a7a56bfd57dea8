//! [`PingCount`]: the NATS client's keep-alive rule for one emulated daemon's connection.
//!
//! Every ping interval the client sends `PING` and counts it outstanding; any `PONG` clears
//! the count. When a tick finds more than [`MAX_PINGS_OUT`] pings still unanswered, the
//! connection is stale (half-open: the server or the path to it is gone without a FIN) and
//! the daemon reconnects. These are the defaults of the NATS clients (nats.go `PingInterval`
//! 2 minutes, `MaxPingsOut` 2).

use std::time::Duration;

/// Default time between two `PING`s of an idle daemon (as the NATS clients).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(120);

/// Pings that may be unanswered before the connection counts as stale.
pub const MAX_PINGS_OUT: u32 = 2;

/// What the daemon does at a ping tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Send a `PING`.
    Ping,
    /// Give the connection up: this many pings went unanswered.
    Stale(u32),
}

/// Outstanding pings of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PingCount {
    outstanding: u32,
}

impl PingCount {
    /// The ping timer fired.
    pub fn tick(&mut self) -> Tick {
        self.outstanding = self.outstanding.saturating_add(1);
        if self.outstanding > MAX_PINGS_OUT {
            Tick::Stale(self.outstanding - 1)
        } else {
            Tick::Ping
        }
    }

    /// A `PONG` arrived: the server is there.
    pub fn pong(&mut self) {
        self.outstanding = 0;
    }

    /// Pings sent and not answered yet.
    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_server_is_stale_after_max_pings_out() {
        let mut pings = PingCount::default();
        assert_eq!(pings.tick(), Tick::Ping);
        assert_eq!(pings.tick(), Tick::Ping);
        assert_eq!(pings.outstanding(), 2);
        assert_eq!(pings.tick(), Tick::Stale(MAX_PINGS_OUT));
    }

    #[test]
    fn a_pong_clears_the_outstanding_pings() {
        let mut pings = PingCount::default();
        for _ in 0..10 {
            assert_eq!(pings.tick(), Tick::Ping);
            assert_eq!(pings.tick(), Tick::Ping);
            pings.pong();
            assert_eq!(pings.outstanding(), 0);
        }
    }
}
