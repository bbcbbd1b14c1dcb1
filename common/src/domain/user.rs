//! Accounts: email, password, user id, role.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Invalid, invalid};

/// A plain mailbox, `local@domain`, normalised: the local part lower-cased (addresses are
/// unique regardless of case), the domain lower-cased and, when given in Unicode, in
/// punycode (what SES and DNS take). Nothing else passes: no display name, angle brackets,
/// list, comment, quoted local part, domain literal or IP address, whitespace or control
/// character, so what is stored, mailed and logged (masked) is exactly this string.
///
/// No `Display`: the full address is personal data, so it is spelled out on purpose with
/// [`Email::as_str`] (storage, mail) and logged as [`Email::masked`]; `Debug` masks it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Email(String);

impl Email {
    /// RFC 5321's limit on a forward path (256) minus its angle brackets.
    pub const MAX_LEN: usize = 254;
    /// RFC 5321's limit on a local part.
    const MAX_LOCAL_LEN: usize = 64;

    /// Hand-written rather than `email_address`: that crate accepts quoted local parts
    /// (`"a b <x@y.z>"@corp.com`), Unicode local parts SES cannot deliver and dotted IPs as
    /// domains, and returns its input unchanged, so it would need all the checks below anyway.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        const NOT_A_MAILBOX: &str = "must be a plain address such as ann@example.com";
        if raw.is_empty() {
            return invalid("is required");
        }
        // Cheap bound before the IDN mapping; the real limit is checked on the result.
        if raw.chars().count() > Self::MAX_LEN {
            return invalid(format!("must be at most {} characters", Self::MAX_LEN));
        }
        let Some((local, domain)) = raw.split_once('@') else {
            return invalid(NOT_A_MAILBOX);
        };
        let (Some(local), Some(domain)) = (local_part(local), domain_part(domain)) else {
            return invalid(NOT_A_MAILBOX);
        };
        let email = format!("{local}@{domain}");
        if email.len() > Self::MAX_LEN {
            return invalid(format!("must be at most {} characters", Self::MAX_LEN));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address as logs show it: `a***@example.com`.
    pub fn masked(&self) -> Masked<'_> {
        Masked(&self.0)
    }
}

/// RFC 5321's `Dot-string` over ASCII `atext`, lower-cased: no quoted strings, whose
/// spaces, commas and brackets are what display-name and list tricks need.
fn local_part(raw: &str) -> Option<String> {
    let is_atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let valid = (1..=Email::MAX_LOCAL_LEN).contains(&raw.len())
        && raw.split('.').all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
    valid.then(|| raw.to_ascii_lowercase())
}

/// A DNS host name of at least two labels, in its ASCII (punycode) form after UTS 46
/// mapping; letters, digits and hyphens only (no `[literal]`), and a top-level label that
/// is not all digits, so `127.0.0.1` is not a domain either.
fn domain_part(raw: &str) -> Option<String> {
    let domain = idna::domain_to_ascii_strict(raw).ok()?;
    let labels: Vec<&str> = domain.split('.').collect();
    let tld = labels.last()?;
    let valid = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        && !tld.chars().all(|c| c.is_ascii_digit());
    valid.then_some(domain)
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

/// An address with all of its local part but the first character hidden, for logs.
/// Built from an [`Email`], or with [`Masked::new`] from a string that should hold one
/// (a queued mail's recipient): whatever the string holds, only its first character and
/// what follows its last `@` are shown.
#[derive(Clone, Copy)]
pub struct Masked<'a>(&'a str);

impl<'a> Masked<'a> {
    pub fn new(address: &'a str) -> Self {
        Self(address)
    }
}

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.rsplit_once('@') {
            Some((local, domain)) => {
                let first = local.chars().next().filter(|c| !c.is_control()).unwrap_or('*');
                write!(f, "{first}***@{}", domain.escape_debug())
            }
            None => f.write_str("***"),
        }
    }
}

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A new password: 8 to 128 characters. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: String) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return invalid(format!("must be at least {} characters", Self::MIN_CHARS));
        }
        if chars > Self::MAX_CHARS {
            return invalid(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Identifier of a user, as stored; only ever built from the database or a verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UserId(i64);

impl UserId {
    pub fn new(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    pub fn from_db(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Self::User),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Result<String, Invalid> {
        Email::parse(raw.to_owned()).map(|email| email.as_str().to_owned())
    }

    #[test]
    fn plain_mailboxes_are_accepted_and_normalised() {
        let max_local = "l".repeat(64);
        let max_total = format!("{}@{}.{}.{}.example", "m".repeat(64), "a".repeat(63), "b".repeat(63), "c".repeat(53));
        assert_eq!(max_total.len(), Email::MAX_LEN);
        let cases: &[(&str, &str)] = &[
            ("ann@example.com", "ann@example.com"),
            ("Ann.Lee@Example.COM", "ann.lee@example.com"),
            ("ann+games@mail.example.co.uk", "ann+games@mail.example.co.uk"),
            ("o'brien@example.ie", "o'brien@example.ie"),
            ("x_y-z!#$%&*/=?^`{|}~@example.com", "x_y-z!#$%&*/=?^`{|}~@example.com"),
            ("ann@123.example", "ann@123.example"),
            ("ann@sub-domain.example", "ann@sub-domain.example"),
            // IDN domains: accepted in Unicode, stored (and mailed) in punycode, so both
            // spellings are one account.
            ("ann@bücher.example", "ann@xn--bcher-kva.example"),
            ("ann@BÜCHER.example", "ann@xn--bcher-kva.example"),
            ("ann@xn--bcher-kva.example", "ann@xn--bcher-kva.example"),
            ("ann@例え.テスト", "ann@xn--r8jz45g.xn--zckzah"),
            ("ann@ｅｘａｍｐｌｅ.com", "ann@example.com"),
            (&format!("{max_local}@example.com"), &format!("{max_local}@example.com")),
            (&max_total, &max_total),
        ];
        for (raw, stored) in cases {
            assert_eq!(parsed(raw).as_deref(), Ok(*stored), "{raw:?}");
            // Normalising is idempotent: the stored form parses to itself.
            assert_eq!(parsed(stored).as_deref(), Ok(*stored), "{stored:?}");
        }
    }

    #[test]
    fn anything_but_a_plain_mailbox_is_refused() {
        let refused: &[&str] = &[
            // The forms of issue 12: a display name, a list, a domain literal.
            "Claim your refund at evil.example <victim@corp.com>",
            "a <victim@corp.com>",
            "b <victim@corp.com>",
            "x@evil.com, y <victim2@corp.com>",
            "user@[127.0.0.1]",
            // Brackets, lists, comments, quoted local parts.
            "<victim@corp.com>",
            "victim@corp.com>",
            "x@evil.com,y@corp.com",
            "x@evil.com;y@corp.com",
            "(comment)ann@example.com",
            "ann(comment)@example.com",
            "ann@example.com (Ann)",
            "\"ann lee\"@example.com",
            "\"a<victim@corp.com>\"@example.com",
            "user@[IPv6:::1]",
            "mailto:ann@example.com",
            // Whitespace and control characters, anywhere.
            " ann@example.com",
            "ann@example.com ",
            "ann @example.com",
            "ann@exa mple.com",
            "ann@example.com\n",
            "ann@example.com\r\nBcc: victim@corp.com",
            "ann\t@example.com",
            "a\0b@example.com",
            "ann@example.com\u{85}",
            "ann@example.com\u{a0}",
            // Domains that are not dotted host names.
            "ann@localhost",
            "ann@example",
            "ann@127.0.0.1",
            "ann@example.123",
            "ann@-example.com",
            "ann@example-.com",
            "ann@exam_ple.com",
            "ann@example..com",
            "ann@.example.com",
            "ann@example.com.",
            // Local parts outside RFC 5321's dot-string, or not ASCII (SES cannot send them).
            ".ann@example.com",
            "ann.@example.com",
            "an..n@example.com",
            "ännchen@example.com",
            // Not an address at all.
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@@example.com",
            "ann@b@example.com",
        ];
        for raw in refused {
            assert!(parsed(raw).is_err(), "{raw:?} accepted as {:?}", parsed(raw));
        }

        // Too long: a local part over 64, a label over 63, a whole address over 254.
        assert!(parsed(&format!("{}@example.com", "l".repeat(65))).is_err());
        assert!(parsed(&format!("ann@{}.example", "a".repeat(64))).is_err());
        let long = format!("{}@{}.{}.{}.example", "m".repeat(64), "a".repeat(63), "b".repeat(63), "c".repeat(54));
        assert_eq!(parsed(&long), Err(Invalid("must be at most 254 characters".into())));
        // A Unicode domain counts in its stored, punycode form.
        let idn = format!("{}@{}.{}.{}.example", "m".repeat(64), "a".repeat(63), "b".repeat(63), "ü".repeat(50));
        assert!(idn.chars().count() <= Email::MAX_LEN);
        assert!(parsed(&idn).is_err());
    }

    #[test]
    fn logs_see_a_masked_address() {
        let email = Email::parse("Ann.Lee@Example.com".into()).map_err(|e| e.0);
        assert_eq!(email.as_ref().map(|e| e.masked().to_string()), Ok("a***@example.com".to_owned()));
        assert_eq!(email.as_ref().map(|e| format!("{e:?}")), Ok("Email(a***@example.com)".to_owned()));
        assert_eq!(Masked::new("x@evil.com, y <victim@corp.com>").to_string(), "x***@corp.com>");
        assert_eq!(Masked::new("\nfake@x.y\r\nline").to_string(), "****@x.y\\r\\nline");
        assert_eq!(Masked::new("no address").to_string(), "***");
    }
}
