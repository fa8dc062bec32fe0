//! Authentication state of a server: its users, the cache of successful password checks, the
//! budget of slow checks, and the audit events the host logs.
//!
//! A password check is a slow hash on the host's event loop, so it is bounded three ways:
//! a connection is closed after `max_auth_failures` failures; at most `password_checks_per_sec`
//! slow checks run per second across the server (more fail at once with `WRONGPASS`, counted as
//! failures); and a password that passed once is remembered per user as a keyed SipHash-128 of it
//! (key from the engine's secret hash seed, never sent anywhere), so a client that reconnects
//! with the right password costs no slow hash and gets in even while someone floods wrong ones.

use crate::hash_map::HashMap;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use core::hash::Hasher;
use siphasher::sip128::{Hasher128, SipHasher13};
use subtle::ConstantTimeEq;

use super::audit::AuditEvent;
use super::users::{Need, Users, DEFAULT_USER};
use super::ConnId;
use crate::{Error, HashSeed, Instant};

/// Audit events kept for the host to poll; past this many the oldest are dropped (and counted).
const MAX_PENDING_AUDIT: usize = 1024;

/// The reply text of a failed authentication, as Redis words it (stock clients know it).
const WRONGPASS: &str = "invalid username-password pair or user is disabled.";

/// The server's authentication state.
#[derive(Debug, Default)]
pub(crate) struct Auth {
    /// None: no users configured, every connection may do everything (loopback use).
    #[cfg(feature = "users")]
    users: Option<Users>,
    /// Per user, the keyed hash of the last password that passed the slow check.
    verified: HashMap<String, [u8; 16]>,
    cache_key: [u8; 16],
    /// Slow checks run in the current one-second window, and when it started.
    checks_in_window: u64,
    window_start: Option<Instant>,
    /// Slow checks allowed per second (`password_checks_per_sec`).
    budget: u64,
    audit: VecDeque<AuditEvent>,
    pub(crate) audit_dropped: u64,
    pub(crate) failures: u64,
}

/// How a password check ended.
pub(crate) enum Verdict {
    Passed(String),
    Failed(Error),
}

impl Auth {
    /// Creates the state; the cache key comes from the engine's secret hash seed.
    pub(crate) fn new(seed: HashSeed, budget: u64) -> Auth {
        let mut cache_key = seed.to_bytes();
        // Domain separation from the lock-name index, which uses the same seed.
        for (byte, salt) in cache_key.iter_mut().zip(b"fencelock-authkey") {
            *byte ^= salt;
        }
        Auth {
            cache_key,
            budget,
            ..Auth::default()
        }
    }

    /// Replaces the users (None: no authentication); connections keep their user name and
    /// are checked against the new rules from their next command.
    #[cfg(feature = "users")]
    pub(crate) fn set_users(&mut self, users: Option<Users>) {
        self.users = users;
        self.verified.clear();
    }

    /// Returns true when connections must authenticate.
    pub(crate) fn required(&self) -> bool {
        self.users().is_some()
    }

    /// Returns the number of configured users (0 when authentication is off).
    pub(crate) fn user_count(&self) -> usize {
        self.users().map_or(0, Users::len)
    }

    /// Returns the users, if authentication is on (never without the `users` feature).
    fn users(&self) -> Option<&Users> {
        #[cfg(feature = "users")]
        return self.users.as_ref();
        #[cfg(not(feature = "users"))]
        None
    }

    /// Checks what a connection (authenticated as `user`, if any) needs for a command.
    pub(crate) fn check(&self, user: Option<&str>, need: Need<'_>) -> Result<(), Error> {
        let Some(users) = self.users() else {
            return Ok(());
        };
        let Some(user) = user else {
            return Err(noauth());
        };
        match users.get(user) {
            Some(rules) => rules.allows(need),
            None => Err(Error::NoPerm(format!(
                "user {} no longer exists (the users file was reloaded); AUTH again",
                super::args::shown(user.as_bytes())
            ))),
        }
    }

    /// Checks a password with the budget and the cache; `None` for `user` means `default`.
    pub(crate) fn verify(&mut self, now: Instant, user: &[u8], password: &[u8]) -> Verdict {
        // The field, not `users()`: the budget fields are changed below while it is borrowed.
        #[cfg(feature = "users")]
        let users = self.users.as_ref();
        #[cfg(not(feature = "users"))]
        let users: Option<&Users> = None;
        let Some(users) = users else {
            return Verdict::Failed(Error::WrongPass(String::from(WRONGPASS)));
        };
        let name = core::str::from_utf8(user).unwrap_or("");
        let fingerprint = keyed_hash(&self.cache_key, password);
        let known = users.get(name);
        if let (Some(user), Some(cached)) = (known, self.verified.get(name)) {
            if bool::from(cached.ct_eq(&fingerprint)) {
                return Verdict::Passed(String::from(user.name()));
            }
        }
        if !take_check(
            &mut self.window_start,
            &mut self.checks_in_window,
            self.budget,
            now,
        ) {
            return Verdict::Failed(Error::WrongPass(String::from(
                "too many password checks this second on this server; try again shortly",
            )));
        }
        match known {
            Some(user) if user.verify(password) => {
                let name = String::from(user.name());
                self.verified.insert(name.clone(), fingerprint);
                Verdict::Passed(name)
            }
            Some(_) => Verdict::Failed(Error::WrongPass(String::from(WRONGPASS))),
            None => {
                users.dummy_verify(password);
                Verdict::Failed(Error::WrongPass(String::from(WRONGPASS)))
            }
        }
    }

    /// Queues an audit event for the host, dropping the oldest past the bound.
    pub(crate) fn audit(&mut self, event: AuditEvent) {
        if self.audit.len() >= MAX_PENDING_AUDIT {
            self.audit.pop_front();
            self.audit_dropped += 1;
        }
        self.audit.push_back(event);
    }

    pub(crate) fn pending_audit(&self) -> usize {
        self.audit.len()
    }

    pub(crate) fn poll_audit(&mut self) -> Option<AuditEvent> {
        self.audit.pop_front()
    }
}

/// Takes one slow check from the per-second budget; false when it is spent.
fn take_check(
    window_start: &mut Option<Instant>,
    checks: &mut u64,
    budget: u64,
    now: Instant,
) -> bool {
    let start = *window_start.get_or_insert(now);
    if now.ms_since(start) >= 1000 {
        *window_start = Some(now);
        *checks = 0;
    }
    if *checks >= budget {
        return false;
    }
    *checks += 1;
    true
}

/// Returns the `NOAUTH` error, in Redis's words.
pub(crate) fn noauth() -> Error {
    Error::NoAuth(String::from("Authentication required."))
}

/// Returns the user a one-argument `AUTH password` means.
pub(crate) fn default_user() -> &'static [u8] {
    DEFAULT_USER.as_bytes()
}

/// Identifies which connection a failure came from, for the audit line.
pub(crate) fn failure_event(conn: ConnId, user: &[u8], failures: u32, closed: bool) -> AuditEvent {
    AuditEvent::AuthFailed {
        conn,
        user: super::audit::label(user),
        failures,
        closed,
    }
}

fn keyed_hash(key: &[u8; 16], password: &[u8]) -> [u8; 16] {
    let mut hasher = SipHasher13::new_with_key(key);
    hasher.write(password);
    hasher.finish128().as_bytes()
}
