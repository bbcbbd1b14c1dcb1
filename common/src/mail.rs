//! Outgoing mail: one trait, sent through SES (v1 `SendEmail`, the API LocalStack emulates,
//! so the same code runs locally) or written to the log (plain local runs).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::config::{MailBackend, MailConfig};
use crate::domain::Masked;
use crate::message::OrderMail;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The mail service refused this mail for good (an invalid or rejected recipient, a
    /// rejected message): sending it again would fail the same way. `code` is the service's
    /// error code, safe to log; `reason` is its message, which may name the recipient, so it
    /// goes to the delivery record, not to the log.
    #[error("mail rejected: {code}")]
    Rejected { code: String, reason: String },
    /// Anything else (throttling, the service failing, a timeout, the network, our own
    /// configuration): worth trying again later.
    #[error("sending mail failed: {0}")]
    Send(String),
    #[error("MAILER={0} needs a back-end this binary was built without (feature `ses`)")]
    Unsupported(String),
}

/// A mail with a plain-text and an HTML body. `Debug` masks the recipient and leaves the
/// bodies out: they name the recipient and may one day carry a link with a token.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &Masked::new(&self.to))
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// `Ok` once the mail service accepted the mail.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// The welcome mail for a new account.
pub fn welcome(to: &str) -> Mail {
    let escaped = html_escape(to);
    Mail {
        to: to.to_owned(),
        subject: "Welcome to the Game Store".to_owned(),
        text: format!(
            "Hello,\n\nyour Game Store account {to} is ready. Sign in and find your next game.\n\n\
             If you did not create this account, ignore this mail.\n\n-- The Game Store\n"
        ),
        html: format!(
            "<!doctype html><html><body>\
             <h1>Welcome to the Game Store</h1>\
             <p>Your account <strong>{escaped}</strong> is ready. Sign in and find your next game.</p>\
             <p>If you did not create this account, ignore this mail.</p>\
             <p>&mdash; The Game Store</p></body></html>"
        ),
    }
}

/// The confirmation of a new order: its lines and total.
pub fn order_confirmation(order: &OrderMail) -> Mail {
    order_mail(
        order,
        &format!("Your Game Store order {}", order.order_id),
        "thank you for your order. We have reserved these games for you:",
    )
}

/// The notice that an order was cancelled and its games released.
pub fn order_cancelled(order: &OrderMail) -> Mail {
    order_mail(
        order,
        &format!("Your Game Store order {} is cancelled", order.order_id),
        "your order has been cancelled; you will not be charged for these games:",
    )
}

/// An order mail. The subject holds only the order id; the bodies hold the product names,
/// which create-product validated (no control characters, so no line breaks), HTML-escaped
/// in the HTML body; nothing else a user typed.
fn order_mail(order: &OrderMail, subject: &str, intro: &str) -> Mail {
    let text_lines: String = order
        .lines
        .iter()
        .map(|l| format!("  {} x {} at {} = {}\n", l.quantity, l.name, cents(l.unit_price), cents(line_total(l))))
        .collect();
    let html_lines: String = order
        .lines
        .iter()
        .map(|l| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                l.quantity,
                html_escape(&l.name),
                cents(l.unit_price),
                cents(line_total(l))
            )
        })
        .collect();
    let total = cents(order.total);
    Mail {
        to: order.to.clone(),
        subject: subject.to_owned(),
        text: format!(
            "Hello,\n\n{intro}\n\n{text_lines}\nTotal: {total}\n\nOrder {id}.\n\n-- The Game Store\n",
            id = order.order_id
        ),
        html: format!(
            "<!doctype html><html><body>\
             <h1>{subject}</h1><p>Hello, {intro}</p>\
             <table><tr><th>quantity</th><th>game</th><th>price</th><th>amount</th></tr>{html_lines}</table>\
             <p>Total: <strong>{total}</strong></p>\
             <p>&mdash; The Game Store</p></body></html>",
            subject = html_escape(subject),
            intro = html_escape(intro),
        ),
    }
}

fn line_total(line: &crate::message::OrderMailLine) -> i64 {
    i64::from(line.quantity).saturating_mul(line.unit_price)
}

/// Integer cents as `24.99`.
fn cents(amount: i64) -> String {
    format!("{}.{:02}", amount / 100, (amount % 100).abs())
}

fn html_escape(raw: &str) -> String {
    raw.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// The mailer `config` asks for.
pub async fn mailer(config: &MailConfig) -> Result<Arc<dyn Mailer>, MailError> {
    match &config.backend {
        MailBackend::Log { file } => Ok(Arc::new(LogMailer { file: file.clone() })),
        #[cfg(feature = "ses")]
        MailBackend::Ses => Ok(Arc::new(ses::SesMailer::from_env(&config.from).await)),
        #[cfg(not(feature = "ses"))]
        MailBackend::Ses => Err(MailError::Unsupported("ses".to_owned())),
    }
}

/// Writes each mail to the log, and optionally as a JSON line to a file (appended with one
/// write, so several processes can share the file: the tests count mails with it).
pub struct LogMailer {
    pub file: Option<PathBuf>,
}

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        // Not the text: it names the recipient (`MAIL_LOG` has the whole mail).
        tracing::info!(to = %Masked::new(&mail.to), subject = %mail.subject, "mail sent (log mailer)");
        if let Some(path) = &self.file {
            let mut line = serde_json::to_string(mail).map_err(|err| MailError::Send(err.to_string()))?;
            line.push('\n');
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|mut file| file.write_all(line.as_bytes()))
                    .map_err(|err| MailError::Send(format!("{}: {err}", path.display())))
            })
            .await
            .map_err(|err| MailError::Send(err.to_string()))??;
        }
        Ok(())
    }
}

#[cfg(feature = "ses")]
pub mod ses {
    use async_trait::async_trait;
    use aws_sdk_ses::Client;
    use aws_sdk_ses::error::{ProvideErrorMetadata, SdkError};
    use aws_sdk_ses::operation::send_email::SendEmailError;
    use aws_sdk_ses::types::{Body, Content, Destination, Message};

    use super::{Mail, MailError, Mailer};
    use crate::domain::Masked;

    pub struct SesMailer {
        client: Client,
        from: String,
    }

    impl SesMailer {
        pub async fn from_env(from: &str) -> Self {
            Self::with_client(Client::new(&crate::aws::sdk_config().await), from)
        }

        pub fn with_client(client: Client, from: &str) -> Self {
            Self { client, from: from.to_owned() }
        }
    }

    fn content(data: &str) -> Result<Content, MailError> {
        Content::builder().data(data).charset("UTF-8").build().map_err(|err| MailError::Send(err.to_string()))
    }

    #[async_trait]
    impl Mailer for SesMailer {
        async fn send(&self, mail: &Mail) -> Result<(), MailError> {
            let message = Message::builder()
                .subject(content(&mail.subject)?)
                .body(Body::builder().text(content(&mail.text)?).html(content(&mail.html)?).build())
                .build();
            let sent = self
                .client
                .send_email()
                .source(&self.from)
                .destination(Destination::builder().to_addresses(&mail.to).build())
                .message(message)
                .send()
                .await
                .map_err(|err| classify(err, &self.from, &mail.to))?;
            tracing::info!(to = %Masked::new(&mail.to), ses_message_id = sent.message_id(), "mail sent (SES)");
            Ok(())
        }
    }

    /// A permanent failure for what only this mail can cause; everything else, transient.
    /// A transient failure is logged and SES's text may quote the recipient: it is masked.
    fn classify(err: SdkError<SendEmailError>, sender: &str, recipient: &str) -> MailError {
        if let Some(service) = err.as_service_error()
            && is_permanent(service, sender)
        {
            return MailError::Rejected {
                code: service.code().unwrap_or_default().to_owned(),
                reason: service.message().unwrap_or_default().to_owned(),
            };
        }
        let text = format!("ses: {}", aws_sdk_ses::error::DisplayErrorContext(err));
        MailError::Send(text.replace(recipient, &Masked::new(recipient).to_string()))
    }

    /// Whether SES refused this mail for good. Only two answers are about the mail itself:
    /// `MessageRejected` (a rejected recipient or message; in the sandbox, an unverified
    /// recipient) and `InvalidParameterValue` (an address SES will not take). Both are also
    /// what SES answers when our own sender is not verified or malformed, and then the
    /// message names the sender: that is our configuration, fixed once for every mail, so
    /// it is retried like the rest. So are the other modelled errors (account or
    /// configuration set paused, MAIL FROM domain not verified: not the recipient's fault,
    /// and every mail fails until an operator fixes it), throttling and quotas, 5xx,
    /// credentials, timeouts and network errors: the mail goes to the dead-letter queue
    /// after its retries, the sweeper republishes it later, and it is sent once the cause is
    /// gone. When in doubt, retry: a retried mail costs a dead letter, a mail wrongly taken
    /// for rejected is never sent.
    pub fn is_permanent(err: &SendEmailError, sender: &str) -> bool {
        let about_mail = err.is_message_rejected() || err.code() == Some("InvalidParameterValue");
        let names_sender = err.message().is_some_and(|message| message.to_lowercase().contains(&sender.to_lowercase()));
        about_mail && !names_sender
    }

    #[cfg(test)]
    mod tests {
        use aws_sdk_ses::error::ErrorMetadata;
        use aws_sdk_ses::types::error::{MailFromDomainNotVerifiedException, MessageRejected};

        use super::*;

        const SENDER: &str = "welcome@gamestore.example";

        // As the SDK parses an error response: the code and message in the metadata, and
        // the message in the modelled error too.
        fn meta(code: &str, message: &str) -> ErrorMetadata {
            ErrorMetadata::builder().code(code).message(message).build()
        }

        fn coded(code: &str, message: &str) -> SendEmailError {
            SendEmailError::generic(meta(code, message))
        }

        fn rejected(message: &str) -> SendEmailError {
            SendEmailError::MessageRejected(
                MessageRejected::builder().message(message).meta(meta("MessageRejected", message)).build(),
            )
        }

        #[test]
        fn only_failures_of_this_mail_are_permanent() {
            let permanent = [
                rejected("Email address is not verified. The following identities failed the check: ann@example.com"),
                rejected("Message rejected"),
                coded("InvalidParameterValue", "Local address contains control or whitespace"),
            ];
            for err in &permanent {
                assert!(is_permanent(err, SENDER), "{err:?}");
            }
            let transient = [
                rejected(
                    "Email address is not verified. The following identities failed the check: Welcome@GameStore.example",
                ),
                rejected("Email address not verified welcome@gamestore.example"),
                coded("InvalidParameterValue", "Illegal address: welcome@gamestore.example"),
                SendEmailError::MailFromDomainNotVerifiedException(
                    MailFromDomainNotVerifiedException::builder()
                        .message("MAIL FROM domain not verified")
                        .meta(meta("MailFromDomainNotVerifiedException", "MAIL FROM domain not verified"))
                        .build(),
                ),
                coded("AccountSendingPausedException", "sending paused"),
                coded("Throttling", "Maximum sending rate exceeded."),
                coded("Throttling", "Daily message quota exceeded."),
                coded("ServiceUnavailable", "Service unavailable"),
                coded("InternalFailure", "internal error"),
                coded("AccessDenied", "not authorized to perform ses:SendEmail"),
            ];
            for err in &transient {
                assert!(!is_permanent(err, SENDER), "{err:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::OrderMailLine;

    fn order() -> OrderMail {
        OrderMail {
            to: "ann@example.com".into(),
            order_id: 12,
            lines: vec![
                OrderMailLine { product_id: 3, name: "<b>Celeste</b> & co".into(), quantity: 2, unit_price: 1999 },
                OrderMailLine { product_id: 9, name: "Hades".into(), quantity: 1, unit_price: 2500 },
            ],
            total: 6498,
        }
    }

    #[test]
    fn order_mails_list_lines_and_total_and_escape_names_in_html() {
        let mail = order_confirmation(&order());
        assert_eq!(mail.to, "ann@example.com");
        assert_eq!(mail.subject, "Your Game Store order 12");
        assert!(mail.text.contains("  2 x <b>Celeste</b> & co at 19.99 = 39.98\n"), "{}", mail.text);
        assert!(mail.text.contains("  1 x Hades at 25.00 = 25.00\n"), "{}", mail.text);
        assert!(mail.text.contains("Total: 64.98"), "{}", mail.text);
        assert!(mail.html.contains("&lt;b&gt;Celeste&lt;/b&gt; &amp; co"), "{}", mail.html);
        assert!(!mail.html.contains("<b>Celeste"), "{}", mail.html);
        let cancelled = order_cancelled(&order());
        assert_eq!(cancelled.subject, "Your Game Store order 12 is cancelled");
        assert!(cancelled.text.contains("Total: 64.98"));
    }
}
