"""Delivery channels: webhook, Telegram, e-mail, local command.

Each channel's ``send(alert)`` delivers one alert within its own timeout or
raises ``DeliveryError`` with a message that is safe to log: secrets (the bot
token in Telegram's URL path, webhook paths and header values, the SMTP
password) are replaced by ``***``.  Channels are used from one worker thread
each; they do no retrying themselves (the dispatcher does).
"""

from __future__ import annotations

import email.policy
import logging
import os
import signal
import smtplib
import ssl
import subprocess
import threading
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Iterable, Protocol
from urllib.parse import urlsplit

import httpx

from tmtool.alerts.config import CommandConfig, EmailConfig, TelegramConfig, WebhookConfig
from tmtool.alerts.formatting import alert_environment, alert_payload, format_alert, format_details, format_subject
from tmtool.domain.models import Alert

TELEGRAM_MAX_TEXT = 4096
_MAIL_POLICY = email.policy.SMTP.clone(max_line_length=200)  # room for the subject on one line
_ERROR_DETAIL = 200  # characters of a receiver's error text kept in a failure message


class DeliveryError(Exception):
    """An alert could not be delivered; the message is safe to log (no secrets)."""


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...

    def redact(self, text: str) -> str: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- secret redaction in logs


class _SecretRedactor(logging.Filter):
    """Replaces registered secrets in records of the HTTP libraries' loggers.

    httpx logs every request's full URL at INFO, and Telegram's URL carries the
    bot token; this filter rewrites such records before any handler sees them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[str, int] = {}

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            for secret in secrets:
                self._secrets[secret] = self._secrets.get(secret, 0) + 1

    def remove(self, secrets: Iterable[str]) -> None:
        with self._lock:
            for secret in secrets:
                left = self._secrets.get(secret, 0) - 1
                if left > 0:
                    self._secrets[secret] = left
                else:
                    self._secrets.pop(secret, None)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_REDACTOR = _SecretRedactor()
# Logger filters do not apply to child loggers, so each logger that may log a URL is named.
for _logger_name in ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy"):
    logging.getLogger(_logger_name).addFilter(_REDACTOR)


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _describe(exc: BaseException) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


# --------------------------------------------------------------------------- HTTP channels


class _HttpChannel:
    """Shared by the webhook and Telegram channels: one httpx client, redacted errors."""

    name = "http"

    def __init__(self, timeout: float, secrets: tuple[str, ...], headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)
        _REDACTOR.add(self._secrets)
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), headers=list(headers), follow_redirects=False)
        self._timeout = timeout

    def redact(self, text: str) -> str:
        return _redact(text, self._secrets)

    def _post(self, url: str, origin: str, body: dict[str, object]) -> httpx.Response:
        try:
            return self._client.post(url, json=body)
        except httpx.TimeoutException:
            raise DeliveryError(f"no answer from {origin} within {self._timeout:g} s") from None
        except httpx.ConnectError as exc:
            raise DeliveryError(f"cannot connect to {origin}: {self.redact(_describe(exc))}") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"request to {origin} failed: {self.redact(_describe(exc))}") from None

    def _refusal(self, response: httpx.Response, origin: str, detail: str = "") -> DeliveryError:
        detail = detail or response.reason_phrase
        return DeliveryError(f"HTTP {response.status_code} from {origin}: {self.redact(detail)[:_ERROR_DETAIL]}")

    def close(self) -> None:
        if not self._client.is_closed:
            self._client.close()
            _REDACTOR.remove(self._secrets)


def _origin(url: str) -> str:
    return urlsplit(url).netloc


class WebhookChannel(_HttpChannel):
    """POSTs the alert as JSON; any 2xx answer counts as delivered."""

    name = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        super().__init__(config.timeout, config.secrets(), config.headers)
        self._url = config.url
        self._origin = _origin(config.url)

    def send(self, alert: Alert) -> None:
        response = self._post(self._url, self._origin, alert_payload(alert))
        if not response.is_success:
            raise self._refusal(response, self._origin)


class TelegramChannel(_HttpChannel):
    """Bot API ``sendMessage`` with the one-line message as plain text (no markup to inject)."""

    name = "telegram"

    def __init__(self, config: TelegramConfig) -> None:
        token = config.bot_token.reveal()
        super().__init__(config.timeout, (token,))
        self._url = f"{config.api_base}/bot{token}/sendMessage"
        self._origin = _origin(config.api_base)
        self._chat_id = config.chat_id

    def send(self, alert: Alert) -> None:
        text = format_alert(alert)[:TELEGRAM_MAX_TEXT]
        body = {"chat_id": self._chat_id, "text": text, "disable_web_page_preview": True}
        response = self._post(self._url, self._origin, body)
        description = ""
        try:
            answer = response.json()
            if isinstance(answer, dict):
                description = str(answer.get("description") or "")
                if response.is_success and answer.get("ok") is False:
                    raise self._refusal(response, self._origin, description or "ok=false")
        except ValueError:
            pass  # not JSON: judged by the status code alone
        if not response.is_success:
            raise self._refusal(response, self._origin, description)


# --------------------------------------------------------------------------- e-mail


class EmailChannel:
    """One SMTP session per alert: connect, STARTTLS (unless turned off), login, send, quit."""

    name = "email"

    def __init__(self, config: EmailConfig) -> None:
        self._config = config
        self._secrets = (config.password.reveal(),) if config.password else ()
        self._tls_context = ssl.create_default_context(cafile=config.ca_file or None)

    def redact(self, text: str) -> str:
        return _redact(text, self._secrets)

    def _message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage(policy=_MAIL_POLICY)
        message["Subject"] = format_subject(alert)
        message["From"] = self._config.sender
        message["To"] = ", ".join(self._config.recipients)
        message["Date"] = formatdate(alert.ts, localtime=False)
        message["Message-ID"] = make_msgid(idstring=f"alert-{alert.id}-{alert.count}", domain="tmtool.local")
        message["X-Tmtool-Priority"] = alert.priority.value
        message.set_content(format_details(alert))
        return message

    def send(self, alert: Alert) -> None:
        config = self._config
        where = f"{config.host}:{config.port}"
        try:
            with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
                smtp.ehlo()
                if config.starttls:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError(
                            f"{where} does not offer STARTTLS; refusing to send in clear text "
                            "(set starttls = false only for a trusted local relay)"
                        )
                    smtp.starttls(context=self._tls_context)
                    smtp.ehlo()
                if config.username and config.password:
                    smtp.login(config.username, config.password.reveal())
                smtp.send_message(self._message(alert))
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{where} refused the login for {config.username!r} (code {exc.smtp_code})") from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"TLS certificate of {where} not trusted: {exc.verify_message}") from None
        except (smtplib.SMTPException, ssl.SSLError) as exc:
            raise DeliveryError(f"SMTP to {where} failed: {self.redact(_describe(exc))[:_ERROR_DETAIL]}") from None
        except TimeoutError:
            raise DeliveryError(f"no answer from {where} within {config.timeout:g} s") from None
        except OSError as exc:
            raise DeliveryError(f"cannot connect to {where}: {exc.strerror or _describe(exc)}") from None

    def close(self) -> None:
        """Nothing held between alerts."""


# --------------------------------------------------------------------------- local command


class CommandChannel:
    """Runs the configured command; the alert travels only in ``TMTOOL_ALERT_*`` variables.

    A string command runs through ``/bin/sh -c`` (the user's own command line,
    never with alert text in it); a list runs as argv.  The command gets the
    desk's environment minus the variables that hold tmtool's secrets.  On
    timeout the whole process group is killed.
    """

    name = "command"

    def __init__(self, config: CommandConfig, hidden_env: frozenset[str] = frozenset()) -> None:
        self._config = config
        self._hidden_env = hidden_env
        if isinstance(config.command, str):
            self._argv: tuple[str, ...] = ("/bin/sh", "-c", config.command)
        else:
            self._argv = config.command

    def redact(self, text: str) -> str:
        return text

    def _environment(self, alert: Alert) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in self._hidden_env and not k.startswith("TMTOOL_ALERT_")}
        env.update(alert_environment(alert))
        return env

    def send(self, alert: Alert) -> None:
        timeout = self._config.timeout
        try:
            process = subprocess.Popen(
                self._argv,
                env=self._environment(alert),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise DeliveryError(f"cannot run {self._argv[0]!r}: {exc.strerror or _describe(exc)}") from None
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(process)
            process.communicate()
            raise DeliveryError(f"command did not finish within {timeout:g} s; killed") from None
        if process.returncode != 0:
            detail = " ".join(stderr.decode("utf-8", "replace").split())[-_ERROR_DETAIL:]
            raise DeliveryError(f"command exited with status {process.returncode}" + (f": {detail}" if detail else ""))

    @staticmethod
    def _kill_group(process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone

    def close(self) -> None:
        """Nothing held between alerts."""


def build_channels(channels: dict[str, object], hidden_env: frozenset[str] = frozenset()) -> list[Channel]:
    """One channel object per enabled channel config (``AlertsConfig.channels``)."""
    built: list[Channel] = []
    for config in channels.values():
        if isinstance(config, WebhookConfig):
            built.append(WebhookChannel(config))
        elif isinstance(config, TelegramConfig):
            built.append(TelegramChannel(config))
        elif isinstance(config, EmailConfig):
            built.append(EmailChannel(config))
        elif isinstance(config, CommandConfig):
            built.append(CommandChannel(config, hidden_env))
        else:
            raise TypeError(f"not a channel config: {type(config).__name__}")
    return built
