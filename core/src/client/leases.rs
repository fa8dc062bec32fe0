//! Leases a client took: their conservative local deadlines, the renewal schedule of those
//! kept alive, and the rules that declare one lost.

use crate::hash_map::HashMap;
use alloc::string::String;
use alloc::vec::Vec;
use hashbrown::hash_map::Entry;

use super::{ConnId, RequestId};
use crate::text::Text;
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
            LostReason::Refused(error) => Text::new("the server refused it: ")
                .str(&error.text())
                .into(),
            LostReason::Lapsed => {
                String::from("its lease time ran out before a renewal was confirmed")
            }
            LostReason::Expired => String::from("server push: expired"),
            LostReason::Stolen { by_token } => Text::new("server push: stolen by token ")
                .num(*by_token)
                .into(),
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
    /// The conservative local deadline, derived from `renewals` and `confirmed_from`.
    deadline: Instant,
    keep_alive: bool,
    next_renewal: Instant,
    /// An automatic renewal is in flight.
    renewing: bool,
    /// The connection that took it, for an EPHEMERAL lease.
    ephemeral_conn: Option<ConnId>,
    /// The grant and the renewals the server may have run last, or may still run: whichever
    /// of them it runs last sets the lease's end, so the deadline is the earliest they allow.
    renewals: Vec<Renewal>,
    /// The latest send of a confirmed renewal (or of the grant): the server ran that one at
    /// this instant or later, so any renewal it runs last runs no earlier than this.
    confirmed_from: Instant,
}

/// The grant or a renewal of a lease, as far as it may set the server's deadline.
#[derive(Debug, Clone, Copy)]
struct Renewal {
    /// The request carrying it; `None` for the grant and for copies left on failed connections.
    request: Option<RequestId>,
    /// No copy of it runs on the server before this instant.
    sent_at: Instant,
    /// What the server leaves the lease when it runs it: the TTL asked, or the time left it
    /// confirmed.
    ttl_ms: u64,
    /// When it was sent, in the order of the lease events ([`Leases::next_event`]).
    sent_event: u64,
    state: RenewalState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RenewalState {
    /// The grant: any renewal the server confirms ran after it (the token did not exist before).
    Grant,
    /// Sent; no reply yet.
    InFlight,
    /// Its reply came at lease event `at`: the server ran it before anything sent after that.
    Confirmed { at: u64 },
    /// A copy sent on a connection that then failed: the server may still run it, at any
    /// time, and no reply will say so.
    Orphan,
}

impl Renewal {
    /// The earliest end of the lease if the server runs this one last: no earlier than its
    /// send, and no earlier than the runs of every confirmed renewal (`confirmed_from`).
    fn earliest_end(&self, confirmed_from: Instant) -> Instant {
        self.sent_at.max(confirmed_from).plus_ms(self.ttl_ms)
    }
}

impl Tracked {
    /// A third of the TTL: two renewals can fail before the lease runs out.
    fn interval_ms(&self) -> u64 {
        (self.ttl_ms / 3).max(1)
    }

    /// Recomputes the conservative deadline: the server's lease ends when the renewal it ran
    /// last says, and that may be any of `renewals`.
    fn settle(&mut self) {
        let confirmed_from = self.confirmed_from;
        if let Some(deadline) = self
            .renewals
            .iter()
            .map(|renewal| renewal.earliest_end(confirmed_from))
            .min()
        {
            self.deadline = deadline;
        }
    }

    fn in_flight(&self, request: RequestId) -> Option<usize> {
        self.renewals.iter().position(|renewal| {
            renewal.request == Some(request) && renewal.state == RenewalState::InFlight
        })
    }

    /// Drops the orphan copies another orphan makes redundant: one that runs no later and
    /// leaves no more time gives an end no later, now and after `confirmed_from` moves on.
    fn drop_redundant_orphans(&mut self) {
        let confirmed_from = self.confirmed_from;
        let mut index = 0;
        while let Some(renewal) = self.renewals.get(index).copied() {
            let redundant = renewal.state == RenewalState::Orphan
                && self.renewals.iter().enumerate().any(|(other, by)| {
                    other != index
                        && by.state == RenewalState::Orphan
                        && by.sent_at.max(confirmed_from) <= renewal.sent_at.max(confirmed_from)
                        && by.ttl_ms <= renewal.ttl_ms
                        && (by.sent_at.max(confirmed_from), by.ttl_ms, other)
                            < (renewal.sent_at.max(confirmed_from), renewal.ttl_ms, index)
                });
            if redundant {
                self.renewals.remove(index);
            } else {
                index += 1;
            }
        }
    }
}

/// The tracked leases, by token (tokens are unique across all locks). Lists drawn from the
/// map are sorted by token, so runs are reproducible whatever the hash order.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    by_token: HashMap<Token, Tracked>,
    /// Orders sends and replies: a renewal sent after another's reply came ran after it.
    events: u64,
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
        let at = self.next_event();
        let grant = Renewal {
            request: None,
            sent_at,
            ttl_ms,
            sent_event: at,
            state: RenewalState::Grant,
        };
        let mut renewals = Vec::with_capacity(2);
        renewals.push(grant);
        let mut lease = Tracked {
            name,
            ttl_ms,
            deadline: sent_at.plus_ms(ttl_ms),
            keep_alive: false,
            next_renewal: sent_at,
            renewing: false,
            ephemeral_conn,
            renewals,
            confirmed_from: sent_at,
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

    /// Records the renewal `request` sent at `sent_at` with `ttl_ms` (by the user or the
    /// schedule): once the server runs it the lease may end as early as `sent_at + ttl_ms`,
    /// before its reply comes, so the deadline cannot stay later.
    pub(crate) fn renewal_sent(
        &mut self,
        name: &str,
        token: Token,
        request: RequestId,
        sent_at: Instant,
        ttl_ms: u64,
    ) {
        let sent_event = self.next_event();
        if let Some(lease) = self.get_mut(name, token) {
            lease.renewals.push(Renewal {
                request: Some(request),
                sent_at,
                ttl_ms,
                sent_event,
                state: RenewalState::InFlight,
            });
            lease.settle();
        }
    }

    /// Records the confirmed renewal `request`, whose copy answered was sent at `sent_at`
    /// and left the lease `ms_left`. Renewals confirmed before it was sent ran before it and
    /// no longer count; those still in flight, or confirmed while it was, may have run after
    /// it and still cap the deadline.
    pub(crate) fn renewed(
        &mut self,
        name: &str,
        token: Token,
        request: RequestId,
        sent_at: Instant,
        ms_left: u64,
        automatic: bool,
    ) {
        let at = self.next_event();
        let Some(lease) = self.get_mut(name, token) else {
            return;
        };
        let confirmed = Renewal {
            request: Some(request),
            sent_at,
            ttl_ms: ms_left,
            sent_event: 0,
            state: RenewalState::Confirmed { at },
        };
        let sent_event = match lease.in_flight(request) {
            Some(index) => {
                let Some(renewal) = lease.renewals.get_mut(index) else {
                    return;
                };
                let sent_event = renewal.sent_event;
                *renewal = Renewal {
                    sent_event,
                    ..confirmed
                };
                sent_event
            }
            // Sent before the grant came back: it ran after the grant, and nothing else is known.
            None => {
                lease.renewals.push(confirmed);
                0
            }
        };
        lease.confirmed_from = lease.confirmed_from.max(sent_at);
        lease.renewals.retain(|renewal| match renewal.state {
            RenewalState::Grant => false,
            RenewalState::Confirmed { at } => at >= sent_event,
            RenewalState::InFlight | RenewalState::Orphan => true,
        });
        lease.drop_redundant_orphans();
        lease.settle();
        // A renewal in flight with a shorter TTL may cap the deadline: renew within a third
        // of what is left, as with a full TTL.
        let window_ms = lease.deadline.ms_since(sent_at);
        let interval_ms = lease.interval_ms().min((window_ms / 3).max(1));
        lease.next_renewal = sent_at.plus_ms(interval_ms);
        if automatic {
            lease.renewing = false;
        }
    }

    /// Records that the server refused the renewal `request` (an error reply): the copy that
    /// was answered changed nothing.
    pub(crate) fn renewal_refused(&mut self, name: &str, token: Token, request: RequestId) {
        if let Some(lease) = self.get_mut(name, token) {
            if let Some(index) = lease.in_flight(request) {
                lease.renewals.remove(index);
            }
            lease.settle();
        }
    }

    /// Records a reply to the renewal `request` that says nothing of the lease: the server
    /// ran it, with an unknown effect; it counts as run with the TTL asked.
    pub(crate) fn renewal_answered(
        &mut self,
        name: &str,
        token: Token,
        request: RequestId,
        automatic: bool,
    ) {
        let at = self.next_event();
        if let Some(lease) = self.get_mut(name, token) {
            if automatic {
                lease.renewing = false;
            }
            if let Some(renewal) = lease
                .in_flight(request)
                .and_then(|index| lease.renewals.get_mut(index))
            {
                renewal.state = RenewalState::Confirmed { at };
            }
        }
    }

    /// Records that the connection carrying the renewal `request` failed before its reply.
    /// If its bytes may have left (`sent`), that copy may still run on the server at any time
    /// and counts for good; unless it goes again on another connection (`retried`), nothing
    /// else of it will.
    pub(crate) fn renewal_cut(
        &mut self,
        name: &str,
        token: Token,
        request: RequestId,
        sent: bool,
        retried: bool,
    ) {
        let Some(lease) = self.get_mut(name, token) else {
            return;
        };
        let Some(index) = lease.in_flight(request) else {
            return;
        };
        let Some(renewal) = lease.renewals.get(index).copied() else {
            return;
        };
        if !retried {
            lease.renewals.remove(index);
        }
        if sent {
            lease.renewals.push(Renewal {
                request: None,
                state: RenewalState::Orphan,
                ..renewal
            });
            lease.drop_redundant_orphans();
        }
        lease.settle();
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

    /// Returns the number of the next send or reply.
    fn next_event(&mut self) -> u64 {
        self.events += 1;
        self.events
    }

    fn get_mut(&mut self, name: &str, token: Token) -> Option<&mut Tracked> {
        self.by_token
            .get_mut(&token)
            .filter(|lease| lease.name == name)
    }
}
