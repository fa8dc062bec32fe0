//! Request rules that need no configuration, checked alike by the engine and the client, so a
//! client refuses a bad request with the very error the server would send.

use crate::Error;

/// Refuses an empty lock name.
pub(crate) fn name_not_empty(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::bad("lock name is empty"));
    }
    Ok(())
}

/// Refuses a TTL of 0.
pub(crate) fn ttl_not_zero(ttl_ms: u64) -> Result<(), Error> {
    if ttl_ms == 0 {
        return Err(Error::bad("ttl must be at least 1 ms"));
    }
    Ok(())
}

/// Refuses a steal that would also wait.
pub(crate) fn steal_without_wait(steal: bool, wait_ms: u64) -> Result<(), Error> {
    if steal && wait_ms > 0 {
        return Err(Error::bad(
            "steal takes the lock at once; it cannot be combined with wait",
        ));
    }
    Ok(())
}
