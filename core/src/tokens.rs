//! The global fencing-token sequence and its durable ceiling.

use crate::error::Error;

/// The largest token ever issued: 2^53-1, so that JavaScript numbers hold every token exactly.
pub const MAX_TOKEN: u64 = (1 << 53) - 1;

/// Issues strictly increasing tokens (invariant I2) without a durable write per token: it
/// reserves blocks by raising a ceiling that the host must persist before it reveals any token
/// above the previously persisted ceiling.
#[derive(Debug, Clone)]
pub(crate) struct TokenSequence {
    /// The next token to issue.
    next: u64,
    /// The highest token covered by a ceiling handed to the host for persisting.
    ceiling: u64,
    /// A raised ceiling not yet taken by the host.
    pending: Option<u64>,
    block: u64,
}

impl TokenSequence {
    /// Starts issuing at `next` with `ceiling` the last ceiling persisted: after a crash `next`
    /// is `ceiling + 1`; after a clean shutdown it is the snapshot's next token.
    pub(crate) fn resume(ceiling: u64, next: u64, block: u64) -> Self {
        let next = next.max(1);
        TokenSequence {
            next,
            ceiling,
            pending: None,
            block: block.max(1),
        }
    }

    /// Rebuilds a sequence exactly as an engine image saved it: the same next token, ceiling
    /// and ceiling not yet taken by the host.
    pub(crate) fn restore(next: u64, ceiling: u64, pending: Option<u64>, block: u64) -> Self {
        TokenSequence {
            next: next.max(1),
            ceiling,
            pending,
            block: block.max(1),
        }
    }

    /// Issues the next token, raising the ceiling first when it is reached.
    ///
    /// # Errors
    /// [`Error::Exhausted`] once 2^53-1 has been issued.
    pub(crate) fn issue(&mut self) -> Result<u64, Error> {
        let token = self.next;
        if token > MAX_TOKEN {
            return Err(Error::Exhausted);
        }
        if token > self.ceiling {
            let raised = token.saturating_add(self.block - 1).min(MAX_TOKEN);
            self.ceiling = raised;
            self.pending = Some(raised);
        }
        self.next = token + 1;
        Ok(token)
    }

    /// Returns the highest token issued so far (0 if none).
    pub(crate) fn last_issued(&self) -> u64 {
        self.next - 1
    }

    /// Returns the next token that would be issued.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Returns the ceiling the host has been asked to persist.
    pub(crate) fn ceiling(&self) -> u64 {
        self.ceiling
    }

    /// Returns a raised ceiling the host has not taken yet.
    pub(crate) fn pending(&self) -> Option<u64> {
        self.pending
    }

    /// Takes a raised ceiling that the host must persist before revealing new tokens.
    pub(crate) fn poll_persist(&mut self) -> Option<u64> {
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_blocks_and_resumes_above_ceiling() {
        let mut seq = TokenSequence::resume(0, 1, 10);
        assert_eq!(seq.issue(), Ok(1));
        assert_eq!(seq.poll_persist(), Some(10));
        for expected in 2..=10 {
            assert_eq!(seq.issue(), Ok(expected));
            assert_eq!(seq.poll_persist(), None);
        }
        assert_eq!(seq.issue(), Ok(11));
        assert_eq!(seq.poll_persist(), Some(20));
        // A crash after persisting 20: issuing resumes at 21 even though only 11 was used.
        let mut after_crash = TokenSequence::resume(20, 21, 10);
        assert_eq!(after_crash.issue(), Ok(21));
    }

    #[test]
    fn never_wraps_past_max_token() {
        let mut seq = TokenSequence::resume(MAX_TOKEN - 1, MAX_TOKEN, 1000);
        assert_eq!(seq.issue(), Ok(MAX_TOKEN));
        assert_eq!(seq.poll_persist(), Some(MAX_TOKEN));
        assert_eq!(seq.issue(), Err(Error::Exhausted));
        assert_eq!(seq.issue(), Err(Error::Exhausted));
    }
}
