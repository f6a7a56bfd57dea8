//! [`ServerPool`]: the servers a fleet's wire daemons may connect to.
//!
//! It starts with the configured servers and grows with the `connect_urls` the servers
//! announce in their `INFO` (the other members of their cluster), as a NATS client's server
//! pool does. Each daemon holds an index into it: it connects to its own server first, and
//! moves to the next one when its server enters lame-duck mode or cannot be reached.

use std::sync::Arc;

use parking_lot::RwLock;

/// Every `host:port` known to a fleet, in the order learnt; never shrinks.
#[derive(Debug, Default)]
pub(super) struct ServerPool {
    addresses: RwLock<Vec<Arc<str>>>,
}

/// More servers than any cluster has: `connect_urls` beyond it are ignored.
const MAX_SERVERS: usize = 1024;

impl ServerPool {
    /// A pool of `addresses` (duplicates dropped).
    pub(super) fn new(addresses: impl IntoIterator<Item = String>) -> Self {
        let pool = Self::default();
        pool.learn(addresses);
        pool
    }

    /// Adds the addresses not known yet; returns how many were new.
    pub(super) fn learn(&self, addresses: impl IntoIterator<Item = String>) -> usize {
        let mut added = 0;
        for address in addresses {
            if self.index_of(&address).is_some() {
                continue;
            }
            let mut known = self.addresses.write();
            if known.len() >= MAX_SERVERS || known.iter().any(|a| **a == *address) {
                continue;
            }
            known.push(Arc::from(address));
            added += 1;
        }
        added
    }

    /// Where `address` is in the pool.
    pub(super) fn index_of(&self, address: &str) -> Option<usize> {
        self.addresses.read().iter().position(|a| **a == *address)
    }

    /// The address at `index` (wrapping), `None` when the pool is empty.
    pub(super) fn get(&self, index: usize) -> Option<Arc<str>> {
        let known = self.addresses.read();
        if known.is_empty() {
            return None;
        }
        Some(known[index % known.len()].clone())
    }

    /// The index of the server after `index` (wrapping): where a daemon goes when it leaves
    /// the server at `index`. The same index when the pool has a single server.
    pub(super) fn next(&self, index: usize) -> usize {
        let len = self.len().max(1);
        (index % len + 1) % len
    }

    /// A server other than the one at `index`, chosen by `pick` (any number: a random one
    /// spreads a drained server's daemons over the rest); `index` when it is the only one.
    pub(super) fn other(&self, index: usize, pick: usize) -> usize {
        let len = self.len();
        if len <= 1 {
            return index;
        }
        (index % len + 1 + pick % (len - 1)) % len
    }

    /// How many servers are known.
    pub(super) fn len(&self) -> usize {
        self.addresses.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_new_servers_once_and_moves_round_the_pool() {
        let pool = ServerPool::new(["a:1".to_owned(), "b:2".to_owned(), "a:1".to_owned()]);
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.learn(["b:2".to_owned(), "c:3".to_owned()]), 1);
        assert_eq!(pool.learn(["c:3".to_owned()]), 0);
        assert_eq!(pool.index_of("c:3"), Some(2));
        assert_eq!(pool.get(2).as_deref(), Some("c:3"));
        assert_eq!(pool.next(0), 1);
        assert_eq!(pool.next(2), 0);
        assert_eq!(pool.get(5).as_deref(), Some("c:3"));
        for pick in 0..10 {
            assert_ne!(pool.other(1, pick), 1);
        }
        assert_eq!(pool.other(1, 0), 2);
        assert_eq!(pool.other(1, 1), 0);
        let single = ServerPool::new(["a:1".to_owned()]);
        assert_eq!(single.other(0, 7), 0);
        assert_eq!(single.next(0), 0);
        assert_eq!(ServerPool::default().get(0), None);
    }
}
