//! Time and TTL rules: `time` is Unix seconds, `ttl` >= 30 (default 60), and a request is only
//! accepted inside `now ± ttl`.

use super::ProtocolError;
use std::time::{SystemTime, UNIX_EPOCH};

/// Default request TTL in seconds.
pub const DEFAULT_TTL: i64 = 60;
/// Minimum request TTL in seconds (schema `minimum`, enforced by Go on create and receive).
pub const MIN_TTL: i64 = 30;

/// The current time as Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Checks the validity window of a request like Go's `ValidateTTL`: accepted iff
/// `now - ttl < time < now + ttl` (future-dated requests are rejected too).
///
/// Returns [`ProtocolError::Expired`] otherwise. Arithmetic is overflow-safe.
pub fn check_ttl_window(
    requestid: &str,
    time: i64,
    ttl: i64,
    now: i64,
) -> Result<(), ProtocolError> {
    let (time_w, ttl_w, now_w) = (i128::from(time), i128::from(ttl), i128::from(now));
    if now_w - ttl_w < time_w && time_w < now_w + ttl_w {
        Ok(())
    } else {
        Err(ProtocolError::Expired {
            requestid: requestid.to_owned(),
            time,
            ttl,
            now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window() {
        let now = 1_700_000_000;
        assert!(check_ttl_window("r", now, 60, now).is_ok());
        assert!(check_ttl_window("r", now - 59, 60, now).is_ok());
        assert!(check_ttl_window("r", now + 59, 60, now).is_ok());
        assert!(matches!(
            check_ttl_window("r", now - 60, 60, now),
            Err(ProtocolError::Expired { .. })
        ));
        assert!(matches!(
            check_ttl_window("r", now + 60, 60, now),
            Err(ProtocolError::Expired { .. })
        ));
        assert!(check_ttl_window("r", i64::MIN, i64::MAX, i64::MAX).is_err());
    }

    #[test]
    fn now_is_plausible() {
        assert!(unix_now() > 1_600_000_000);
    }
}
