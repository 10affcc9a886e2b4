"""Sending a rendered report: by e-mail (SMTP, the HTML as the body and the PDF attached) or to a webhook (JSON).

The SMTP password is a SecretStr read from the settings: it is only revealed to `smtplib.login` and never logged or
printed. Reports carry no customer identifier (the records have none)."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import Any

from pipeline.core.settings import Settings


class DeliveryError(Exception):
    """A report could not be delivered: the message says where and why (never a password)."""


def send_email(
    settings: Settings, recipients: tuple[str, ...], subject: str, html: str, pdf: bytes, pdf_name: str
) -> None:
    if not settings.smtp_host:
        raise DeliveryError("PIPELINE_SMTP_HOST is empty: set it to send reports by e-mail")
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(recipients)
    msg.set_content("This report is HTML; open the attached PDF if your mail reader shows no HTML.")
    msg.add_alternative(html, subtype="html")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=pdf_name)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp.login(settings.smtp_user, password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        # the exception text of smtplib never holds the password; the host and port say where
        raise DeliveryError(f"sending to {settings.smtp_host}:{settings.smtp_port} failed: {exc}") from None


def post_webhook(url: str, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (a URL the operator configured)
            if resp.status >= 300:
                raise DeliveryError(f"webhook {url} answered {resp.status}")
    except OSError as exc:
        raise DeliveryError(f"webhook {url} failed: {exc}") from None
