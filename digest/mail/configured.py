"""`mailer_from_settings`: the backend the settings name, configured from them."""

from __future__ import annotations

from digest.config import Settings
from digest.mail.contract import Mailer
from digest.mail.maildir import MaildirMailer
from digest.mail.smtp import SmtpMailer


def mailer_from_settings(settings: Settings) -> Mailer:
    """The backend `delivery.backend` names, configured from the settings."""
    delivery, smtp = settings.delivery, settings.smtp
    if delivery.backend == "maildir":
        return MaildirMailer(delivery.maildir_path)
    return SmtpMailer(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=smtp.password,
        timeout=smtp.timeout_seconds,
        helo_name=smtp.helo_name,
        validate_certs=smtp.validate_certs,
        concurrency=delivery.concurrency,
        max_messages_per_connection=delivery.max_messages_per_connection,
        max_per_second=delivery.max_per_second,
    )
