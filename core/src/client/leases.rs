//! Leases a client took: their conservative local deadlines, the renewal schedule of those
//! kept alive, and the rules that declare one lost.

use alloc::string::String;
use alloc::vec::Vec;
use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use super::ConnId;
use crate::{Error, Instant, Token};

/// Why a lease is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// The server refused a renewal, release or verify of it (`STALE`, `EXPIRED`, ...).
    Refused(Error),
    /// Its local deadline passed before a renewal was confirmed.
    Lapsed,
    /// The server pushed that it expired.
    Expired,
    /// The server pushed that it was stolen by the lease with `by_token`.
    Stolen {
        /// The token of the lease that took the lock.
        by_token: Token,
    },
    /// It was EPHEMERAL and the connection that took it closed.
    ConnectionClosed,
}

impl LostReason {
    /// Returns a sentence for logs and exceptions.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            LostReason::Refused(error) => alloc::format!("the server refused it: {error}"),
            LostReason::Lapsed => {
                String::from("its lease time ran out before a renewal was confirmed")
            }
            LostReason::Expired => String::from("server push: expired"),
            LostReason::Stolen { by_token } => {
                alloc::format!("server push: stolen by token {by_token}")
            }
            LostReason::ConnectionClosed => {
                String::from("it was EPHEMERAL and the connection that took it closed")
            }
        }
    }
}

/// What the client knows of a tracked lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseStatus {
    /// The conservative local deadline: the server's lease does not end before it.
    pub deadline: Instant,
    /// Milliseconds until `deadline`.
    pub ms_left: u64,
    /// The TTL it is renewed with.
    pub ttl_ms: u64,
    /// Whether the client renews it.
    pub kept_alive: bool,
}

#[derive(Debug)]
struct Tracked {
    name: String,
    ttl_ms: u64,
    deadline: Instant,
    keep_alive: bool,
    next_renewal: Instant,
    /// A renewal is in flight.
    renewing: bool,
    /// The connection that took it, for an EPHEMERAL lease.
    ephemeral_conn: Option<ConnId>,
    /// The last renewal sent and not yet confirmed: when, and the deadline it sets if the
    /// server runs it (a shorter TTL shortens the lease).
    unconfirmed: Option<(Instant, Instant)>,
}

impl Tracked {
    /// Records a renewal sent at `sent_at` with `ttl_ms`: once the server runs it the lease
    /// may end as early as `sent_at + ttl_ms`, before its reply comes.
    fn renewal_sent(&mut self, sent_at: Instant, ttl_ms: u64) {
        let cap = sent_at.plus_ms(ttl_ms);
        self.deadline = self.deadline.min(cap);
        self.unconfirmed = Some((sent_at, cap));
    }
}

impl Tracked {
    /// A third of the TTL: two renewals can fail before the lease runs out.
    fn interval_ms(&self) -> u64 {
        (self.ttl_ms / 3).max(1)
    }
}

/// The tracked leases, by token (tokens are unique across all locks). Lists drawn from the
/// map are sorted by token, so runs are reproducible whatever the hash order.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    by_token: HashMap<Token, Tracked>,
}

impl Leases {
    pub(crate) fn track(
        &mut self,
        name: String,
        token: Token,
        ttl_ms: u64,
        sent_at: Instant,
        ephemeral_conn: Option<ConnId>,
    ) {
        let mut lease = Tracked {
            name,
            ttl_ms,
            deadline: sent_at.plus_ms(ttl_ms),
            keep_alive: false,
            next_renewal: sent_at,
            renewing: false,
            ephemeral_conn,
            unconfirmed: None,
        };
        lease.next_renewal = sent_at.plus_ms(lease.interval_ms());
        self.by_token.insert(token, lease);
    }

    pub(crate) fn keep_alive(&mut self, name: &str, token: Token) -> bool {
        match self.get_mut(name, token) {
            Some(lease) => {
                lease.keep_alive = true;
                true
            }
            None => false,
        }
    }

    pub(crate) fn forget(&mut self, name: &str, token: Token) {
        self.remove(name, token);
    }

    /// Removes a lease; returns whether it was tracked.
    pub(crate) fn remove(&mut self, name: &str, token: Token) -> bool {
        match self.by_token.entry(token) {
            Entry::Occupied(lease) if lease.get().name == name => {
                lease.remove();
                true
            }
            _ => false,
        }
    }

    pub(crate) fn status(&self, now: Instant, name: &str, token: Token) -> Option<LeaseStatus> {
        let lease = self
            .by_token
            .get(&token)
            .filter(|lease| lease.name == name)?;
        Some(LeaseStatus {
            deadline: lease.deadline,
            ms_left: lease.deadline.ms_since(now),
            ttl_ms: lease.ttl_ms,
            kept_alive: lease.keep_alive,
        })
    }

    /// Records a renewal asked for by the user at `sent_at`: with a shorter TTL it ends the
    /// lease earlier as soon as the server runs it, so the deadline cannot stay later.
    pub(crate) fn renewal_sent(&mut self, name: &str, token: Token, sent_at: Instant, ttl_ms: u64) {
        if let Some(lease) = self.get_mut(name, token) {
            lease.renewal_sent(sent_at, ttl_ms);
        }
    }

    /// Records a confirmed renewal sent at `sent_at` that left the lease `ms_left`.
    pub(crate) fn renewed(&mut self, name: &str, token: Token, sent_at: Instant, ms_left: u64) {
        if let Some(lease) = self.get_mut(name, token) {
            let mut deadline = sent_at.plus_ms(ms_left);
            match lease.unconfirmed {
                // A later renewal is still in flight: it may shorten what this one confirmed.
                Some((later, cap)) if later > sent_at => deadline = deadline.min(cap),
                _ => lease.unconfirmed = None,
            }
            lease.deadline = deadline;
            lease.next_renewal = sent_at.plus_ms(lease.interval_ms());
            lease.renewing = false;
        }
    }

    /// Records a renewal whose connection failed: retried sooner while the lease may still be
    /// live; lost once its deadline passed.
    pub(crate) fn renewal_failed(
        &mut self,
        now: Instant,
        name: &str,
        token: Token,
    ) -> Option<LostReason> {
        let lease = self.get_mut(name, token)?;
        lease.renewing = false;
        if now >= lease.deadline {
            return Some(LostReason::Lapsed);
        }
        let left = lease.deadline.ms_since(now);
        lease.next_renewal = now.plus_ms((left / 4).min(lease.interval_ms()).max(50));
        None
    }

    /// Returns the kept-alive leases whose renewal is due, marking them as renewing.
    pub(crate) fn due_renewals(&mut self, now: Instant) -> Vec<(String, Token, u64)> {
        let mut due: Vec<(String, Token, u64)> = self
            .by_token
            .iter_mut()
            .filter(|(_, lease)| lease.keep_alive && !lease.renewing && lease.next_renewal <= now)
            .map(|(&token, lease)| {
                lease.renewing = true;
                // After a user renewal with a longer TTL, this one may shorten the lease.
                lease.renewal_sent(now, lease.ttl_ms);
                (lease.name.clone(), token, lease.ttl_ms)
            })
            .collect();
        crate::order::sort_by_numbers(&mut due, |&(_, token, _)| (token, 0));
        due
    }

    /// Removes and returns the leases whose local deadline passed.
    pub(crate) fn lapsed(&mut self, now: Instant) -> Vec<(String, Token, LostReason)> {
        let mut tokens: Vec<Token> = self
            .by_token
            .iter()
            .filter(|(_, lease)| lease.deadline <= now)
            .map(|(&token, _)| token)
            .collect();
        crate::order::sort_by_numbers(&mut tokens, |&token| (token, 0));
        tokens
            .into_iter()
            .filter_map(|token| {
                let lease = self.by_token.remove(&token)?;
                Some((lease.name, token, LostReason::Lapsed))
            })
            .collect()
    }

    /// Returns the EPHEMERAL leases taken on `conn`.
    pub(crate) fn ephemeral_on(&self, conn: ConnId) -> Vec<(String, Token)> {
        let mut leases: Vec<(String, Token)> = self
            .by_token
            .iter()
            .filter(|(_, lease)| lease.ephemeral_conn == Some(conn))
            .map(|(&token, lease)| (lease.name.clone(), token))
            .collect();
        crate::order::sort_by_numbers(&mut leases, |&(_, token)| (token, 0));
        leases
    }

    pub(crate) fn stop_renewing(&mut self) {
        for lease in self.by_token.values_mut() {
            lease.keep_alive = false;
        }
    }

    /// Returns the next local deadline or renewal.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_token
            .values()
            .map(|lease| {
                if lease.keep_alive && !lease.renewing {
                    lease.deadline.min(lease.next_renewal)
                } else {
                    lease.deadline
                }
            })
            .min()
    }

    fn get_mut(&mut self, name: &str, token: Token) -> Option<&mut Tracked> {
        self.by_token
            .get_mut(&token)
            .filter(|lease| lease.name == name)
    }
}
