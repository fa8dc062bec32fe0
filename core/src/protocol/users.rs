//! Users and their rules: the users file (JSON, parsed here from the bytes a host read, so
//! every host accepts the same file), password hashes (PBKDF2-HMAC-SHA256) and the rule checks.
//!
//! ```json
//! { "users": [
//!     { "name": "deploy", "password": "pbkdf2-sha256$600000$<salt hex>$<hash hex>",
//!       "acquire": ["jobs/"], "read": ["reports/"], "steal": false, "debug": false } ] }
//! ```
//!
//! `acquire` lists the lock-name prefixes the user may ACQUIRE, RENEW and RELEASE (and read);
//! `read` the prefixes it may only VERIFY and QUERY. `""` is the prefix of every name.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use subtle::ConstantTimeEq;

use super::args::shown;
use crate::json::{self, Value};
use crate::text::Text;
use crate::vec_map::VecMap;
use crate::Error;

/// The user `AUTH password` (one argument) and `--requirepass` stand for, as in Redis.
pub const DEFAULT_USER: &str = "default";

/// The iteration count `hash_password` callers use unless told otherwise: slow enough that a
/// leaked users file resists guessing, fast enough (tens of ms) for an event loop that caches
/// successful checks (see `docs/PROTOCOL.md`, "Authentication").
pub const DEFAULT_ITERATIONS: u32 = 100_000;

/// The most iterations a hash may ask for: a bigger count would let a users file stall the server.
const MAX_ITERATIONS: u32 = 10_000_000;

/// The hash scheme's name, the first field of a hash string.
const SCHEME: &str = "pbkdf2-sha256";

/// Length of a derived key, in bytes (SHA-256's output).
const KEY_LEN: usize = 32;

/// The users a server knows, parsed from a users file or made for `--requirepass`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Users {
    by_name: VecMap<String, User>,
    /// The highest iteration count of any user, the cost of the check for an unknown user.
    most_iterations: u32,
}

/// One user: its password hash and what it may do.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    name: String,
    hash: PasswordHash,
    acquire: Vec<String>,
    read: Vec<String>,
    steal: bool,
    debug: bool,
}

/// What a command needs from the user's rules.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Need<'a> {
    /// ACQUIRE, RENEW, RELEASE of this lock.
    Write(&'a str),
    /// VERIFY of this lock.
    Read(&'a str),
    /// QUERY of every lock under this prefix.
    ReadPrefix(&'a str),
    /// ACQUIRE ... STEAL.
    Steal,
    /// DEBUG.
    Debug,
}

impl Users {
    /// Parses a users file (JSON) from its bytes.
    ///
    /// # Errors
    /// [`Error::BadRequest`] saying what is wrong: not JSON, an unknown field, a duplicate or
    /// malformed name, a password that is not a `pbkdf2-sha256$...` hash. The message never
    /// contains a password hash.
    pub fn parse(bytes: &[u8]) -> Result<Users, Error> {
        let file = json::parse(bytes)
            .and_then(|value| UsersFile::from_json(&value))
            .map_err(|error| Error::BadRequest(Text::new("users file: ").str(&error).into()))?;
        let mut users = Users::default();
        for entry in file.users {
            let hash = PasswordHash::parse(&entry.password).map_err(|why| {
                Error::BadRequest(format!(
                    "users file: user {}: {why}",
                    shown(entry.name.as_bytes())
                ))
            })?;
            let user = User {
                name: entry.name,
                hash,
                acquire: entry.acquire,
                read: entry.read,
                steal: entry.steal,
                debug: entry.debug,
            };
            users.add(user)?;
        }
        Ok(users)
    }

    /// Returns the users of `--requirepass`: one user, `default`, with every right, whose
    /// password hash the host made with [`hash_password`].
    ///
    /// # Errors
    /// [`Error::BadRequest`] when `hash` is not a `pbkdf2-sha256$...` hash.
    pub fn single(hash: &str) -> Result<Users, Error> {
        let hash = PasswordHash::parse(hash)
            .map_err(|why| Error::BadRequest(format!("requirepass: {why}")))?;
        let mut users = Users::default();
        users.add(User {
            name: String::from(DEFAULT_USER),
            hash,
            acquire: alloc::vec![String::new()],
            read: Vec::new(),
            steal: true,
            debug: true,
        })?;
        Ok(users)
    }

    /// Returns how many users there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Returns true when there are no users: then no password can succeed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Returns the user named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    fn add(&mut self, user: User) -> Result<(), Error> {
        let name = user.name.as_bytes();
        if name.is_empty() || name.len() > 128 || !name.iter().all(|&b| (b'!'..=b'~').contains(&b))
        {
            return Err(Error::BadRequest(format!(
                "users file: user name {} must be 1 to 128 printable ASCII characters without spaces",
                shown(name)
            )));
        }
        if self.by_name.contains_key(&user.name) {
            return Err(Error::BadRequest(format!(
                "users file: user {} is listed twice",
                shown(name)
            )));
        }
        self.most_iterations = self.most_iterations.max(user.hash.iterations);
        self.by_name.insert(user.name.clone(), user);
        Ok(())
    }
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_name.values()).finish()
    }
}

impl User {
    /// Returns the user's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns true when `password` is this user's password; the comparison takes the same
    /// time wherever the first difference is.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        self.hash.verify(password)
    }

    /// Checks a need against the rules; the error names the user and the rule.
    pub(crate) fn allows(&self, need: Need<'_>) -> Result<(), Error> {
        let covered =
            |prefixes: &[String], name: &str| prefixes.iter().any(|p| name.starts_with(p.as_str()));
        let allowed = match need {
            Need::Write(name) => covered(&self.acquire, name),
            Need::Read(name) | Need::ReadPrefix(name) => {
                covered(&self.acquire, name) || covered(&self.read, name)
            }
            Need::Steal => self.steal,
            Need::Debug => self.debug,
        };
        if allowed {
            return Ok(());
        }
        let user = shown(self.name.as_bytes());
        Err(Error::NoPerm(match need {
            Need::Write(name) => format!(
                "user {user} may not acquire, renew or release lock {}: no \"acquire\" prefix of the user matches",
                shown(name.as_bytes())
            ),
            Need::Read(name) => format!(
                "user {user} may not read lock {}: no \"acquire\" or \"read\" prefix of the user matches",
                shown(name.as_bytes())
            ),
            Need::ReadPrefix(prefix) => format!(
                "user {user} may not query prefix {}: no \"acquire\" or \"read\" prefix of the user covers it",
                shown(prefix.as_bytes())
            ),
            Need::Steal => format!("user {user} may not STEAL: its \"steal\" rule is false"),
            Need::Debug => format!("user {user} may not use DEBUG: its \"debug\" rule is false"),
        }))
    }
}

impl fmt::Debug for User {
    /// Shows the rules, never the hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("acquire", &self.acquire)
            .field("read", &self.read)
            .field("steal", &self.steal)
            .field("debug", &self.debug)
            .finish_non_exhaustive()
    }
}

/// Returns the users-file hash of `password`: `pbkdf2-sha256$ITERATIONS$SALT$KEY`, salt and
/// key in lowercase hex. The host supplies a random salt (16 bytes or more); `iterations` is
/// clamped to 1..=10 000 000.
#[must_use]
pub fn hash_password(password: &[u8], salt: &[u8], iterations: u32) -> String {
    let iterations = iterations.clamp(1, MAX_ITERATIONS);
    let key = derive(password, salt, iterations);
    format!("{SCHEME}${iterations}${}${}", hex(salt), hex(&key))
}

/// Returns true when `password` matches `hash` (a `hash_password` string); false for a
/// malformed hash.
#[must_use]
pub fn verify_password(hash: &str, password: &[u8]) -> bool {
    PasswordHash::parse(hash).is_ok_and(|hash| hash.verify(password))
}

/// A parsed password hash.
#[derive(Clone, PartialEq, Eq)]
struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    key: [u8; KEY_LEN],
}

impl PasswordHash {
    /// Parses `pbkdf2-sha256$ITERATIONS$SALT_HEX$KEY_HEX`; the error never repeats the text.
    fn parse(text: &str) -> Result<PasswordHash, &'static str> {
        const FORMAT: &str = "password must be a hash made by 'fencelock hash-password' (pbkdf2-sha256$iterations$salt$key), never a plain password";
        let mut fields = text.split('$');
        let (Some(SCHEME), Some(iterations), Some(salt), Some(key), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(FORMAT);
        };
        let iterations: u32 = iterations.parse().map_err(|_| FORMAT)?;
        if !(1..=MAX_ITERATIONS).contains(&iterations) {
            return Err("the hash's iteration count must be 1 to 10000000");
        }
        let salt = unhex(salt).ok_or(FORMAT)?;
        if salt.len() < 8 || salt.len() > 64 {
            return Err("the hash's salt must be 8 to 64 bytes");
        }
        let key: [u8; KEY_LEN] = unhex(key)
            .and_then(|key| key.try_into().ok())
            .ok_or(FORMAT)?;
        Ok(PasswordHash {
            iterations,
            salt,
            key,
        })
    }

    fn verify(&self, password: &[u8]) -> bool {
        let key = derive(password, &self.salt, self.iterations);
        key.ct_eq(&self.key).into()
    }
}

impl Users {
    /// Runs a hash with the cost of a real one, for an unknown user, so that a wrong name
    /// takes as long as a wrong password.
    pub(crate) fn dummy_verify(&self, password: &[u8]) {
        let _ = derive(
            password,
            b"fencelock-no-such-user",
            self.most_iterations.max(1),
        );
    }
}

fn derive(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut key);
    key
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        for nibble in [byte >> 4, byte & 0x0f] {
            text.push(char::from(
                *DIGITS.get(usize::from(nibble)).unwrap_or(&b'0'),
            ));
        }
    }
    text
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let high = char::from(*pair.first()?).to_digit(16)?;
            let low = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(high * 16 + low).ok()
        })
        .collect()
}

/// The users file as written: `{"users": [...]}`; unknown fields are refused.
struct UsersFile {
    users: Vec<UserEntry>,
}

struct UserEntry {
    name: String,
    password: String,
    acquire: Vec<String>,
    read: Vec<String>,
    steal: bool,
    debug: bool,
}

impl UsersFile {
    fn from_json(value: &Value) -> Result<UsersFile, String> {
        let fields = value.fields("the users file")?;
        fields.only(&["users"])?;
        let users = fields.required("users")?.array("users")?;
        Ok(UsersFile {
            users: users
                .iter()
                .map(UserEntry::from_json)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl UserEntry {
    fn from_json(value: &Value) -> Result<UserEntry, String> {
        let fields = value.fields("a user")?;
        fields.only(&["name", "password", "acquire", "read", "steal", "debug"])?;
        let prefixes = |key: &str| -> Result<Vec<String>, String> {
            fields
                .array_or_empty(key)?
                .iter()
                .map(|prefix| prefix.text(key).map(String::from))
                .collect()
        };
        Ok(UserEntry {
            name: fields.text("name")?,
            password: fields.text("password")?,
            acquire: prefixes("acquire")?,
            read: prefixes("read")?,
            steal: fields.boolean_or_false("steal")?,
            debug: fields.boolean_or_false("debug")?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password(b"s3cret", b"0123456789abcdef", 10);
        assert!(hash.starts_with("pbkdf2-sha256$10$"));
        assert!(verify_password(&hash, b"s3cret"));
        assert!(!verify_password(&hash, b"s3creT"));
        assert!(!verify_password("plain", b"plain"));
    }

    #[test]
    fn a_known_pbkdf2_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256("passwd", "salt", 1), first 32 bytes.
        let hash = hash_password(b"passwd", b"salt1234", 1);
        assert!(verify_password(&hash, b"passwd"));
        let key = derive(b"passwd", b"salt", 1);
        assert_eq!(
            hex(&key),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn errors_never_show_the_hash_or_a_plain_password() {
        let file = br#"{"users":[{"name":"a","password":"hunter2"}]}"#;
        let error = Users::parse(file).unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
        let file = br#"{"users":[{"name":"a","password":"x","stael":true}]}"#;
        assert!(Users::parse(file).is_err());
    }

    #[test]
    fn rules_cover_prefixes() {
        let hash = hash_password(b"pw", b"saltsalt", 1);
        let file = format!(
            r#"{{"users":[{{"name":"a","password":"{hash}","acquire":["jobs/"],"read":["r/"]}}]}}"#
        );
        let users = Users::parse(file.as_bytes()).unwrap();
        let user = users.get("a").unwrap();
        assert!(user.allows(Need::Write("jobs/1")).is_ok());
        assert!(user.allows(Need::Read("r/1")).is_ok());
        assert!(user.allows(Need::Write("r/1")).is_err());
        assert!(user.allows(Need::ReadPrefix("")).is_err());
        assert!(user.allows(Need::Steal).is_err());
        assert!(!format!("{users:?}").contains(&hash));
    }
}
