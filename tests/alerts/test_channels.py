"""Each channel against a real loopback receiver: what arrives, and how failures read."""

from __future__ import annotations

import json
import shlex
import sys
from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from tmtool.alerts.channels import CommandChannel, DeliveryError, EmailChannel, TelegramChannel, WebhookChannel
from tmtool.alerts.config import AlertsConfig

from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, make_alert
from tests.util import wait_for

TOKEN = "424242:AAF-channel-test-token"


def config_for(table: dict, environ: dict[str, str] | None = None) -> AlertsConfig:
    return AlertsConfig.from_table(table, environ=environ or {})


# --------------------------------------------------------------------------- webhook


def test_webhook_posts_the_alert_as_json_with_the_configured_headers(http_receiver):
    receiver = http_receiver()
    config = config_for({"webhook": {"url": f"{receiver.base_url}/hooks/desk", "headers": {"X-Desk-Key": "k-123"}}})
    channel = WebhookChannel(config.webhook)
    try:
        channel.send(make_alert(7, "CRITICAL", "TRADE", "EXIT_FAILED RELIANCE"))
    finally:
        channel.close()
    [request] = receiver.received()
    assert request.path == "/hooks/desk"
    assert request.headers["x-desk-key"] == "k-123"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert (body["id"], body["priority"], body["category"], body["text"]) == (7, "CRITICAL", "TRADE", "EXIT_FAILED RELIANCE")


def test_webhook_refusal_reports_the_status_without_the_path(http_receiver):
    receiver = http_receiver()
    receiver.status = 503
    channel = WebhookChannel(config_for({"webhook": {"url": f"{receiver.base_url}/T0/SECRET-PATH"}}).webhook)
    try:
        with pytest.raises(DeliveryError) as caught:
            channel.send(make_alert())
    finally:
        channel.close()
    assert str(caught.value).startswith("HTTP 503 from 127.0.0.1:")
    assert "SECRET-PATH" not in str(caught.value)


def test_webhook_down_is_a_clear_connection_error(refused_url):
    channel = WebhookChannel(config_for({"webhook": {"url": f"{refused_url}/hook", "timeout": 2}}).webhook)
    try:
        with pytest.raises(DeliveryError, match=r"cannot connect to 127\.0\.0\.1:\d+"):
            channel.send(make_alert())
    finally:
        channel.close()


def test_webhook_slower_than_its_timeout_fails_with_a_timeout(http_receiver):
    receiver = http_receiver()
    receiver.hold = True
    channel = WebhookChannel(config_for({"webhook": {"url": f"{receiver.base_url}/hook", "timeout": 0.2}}).webhook)
    try:
        with pytest.raises(DeliveryError, match=r"no answer from 127\.0\.0\.1:\d+ within 0\.2 s"):
            channel.send(make_alert())
    finally:
        channel.close()


# --------------------------------------------------------------------------- Telegram


def telegram_config(api_base: str) -> AlertsConfig:
    return config_for(
        {"telegram": {"bot_token_env": "TG_TOKEN", "chat_id_env": "TG_CHAT", "api_base": api_base, "timeout": 2}},
        {"TG_TOKEN": TOKEN, "TG_CHAT": "-1001234"},
    )


def test_telegram_sends_the_short_line_to_the_chat(http_receiver):
    receiver = http_receiver()
    channel = TelegramChannel(telegram_config(receiver.base_url).telegram)
    try:
        channel.send(make_alert(12, "CRITICAL", "TRADE", "EXIT_FAILED RELIANCE: rejected"))
    finally:
        channel.close()
    [request] = receiver.received()
    assert request.path == f"/bot{TOKEN}/sendMessage"
    body = request.json()
    assert body["chat_id"] == "-1001234"
    assert body["text"] == "tmtool CRITICAL TRADE #12 momentum: EXIT_FAILED RELIANCE: rejected [09:30:00 IST]"
    assert "parse_mode" not in body  # plain text: alert text cannot inject markup


def test_telegram_error_keeps_the_description_but_never_the_token(http_receiver):
    receiver = http_receiver()
    receiver.status = 401
    receiver.reply = lambda request: {"ok": False, "description": f"Unauthorized for {request.path}"}
    channel = TelegramChannel(telegram_config(receiver.base_url).telegram)
    try:
        with pytest.raises(DeliveryError) as caught:
            channel.send(make_alert())
    finally:
        channel.close()
    message = str(caught.value)
    assert message.startswith("HTTP 401 from 127.0.0.1:") and "Unauthorized for /bot***/sendMessage" in message
    assert TOKEN not in message and TOKEN not in repr(caught.value)


def test_telegram_ok_false_in_a_200_answer_is_a_failure(http_receiver):
    receiver = http_receiver()
    receiver.reply = lambda request: {"ok": False, "description": "Bad Request: chat not found"}
    channel = TelegramChannel(telegram_config(receiver.base_url).telegram)
    try:
        with pytest.raises(DeliveryError, match="chat not found"):
            channel.send(make_alert())
    finally:
        channel.close()


# --------------------------------------------------------------------------- e-mail


def email_table(port: int, **extra) -> dict:
    return {"email": {"host": "127.0.0.1", "port": port, "from": "desk@example.com", "to": ["me@example.com"], **extra}}


def test_email_delivers_over_a_plain_relay_when_starttls_is_off(plain_smtp):
    controller, mailbox = plain_smtp
    channel = EmailChannel(config_for(email_table(controller.port, starttls=False)).email)
    channel.send(make_alert(21, "WARNING", "PORTFOLIO", "momentum down 4,800 of 5,000 limit"))
    [mail] = mailbox.messages
    assert (mail.mail_from, mail.recipients, mail.over_tls) == ("desk@example.com", ["me@example.com"], False)
    message = message_from_bytes(mail.content, policy=default_policy)
    assert message["Subject"] == "tmtool WARNING PORTFOLIO #12 momentum: momentum down 4,800 of 5,000 limit"
    assert message["X-Tmtool-Priority"] == "WARNING"
    assert "alert id:  21" in message.get_content()


def test_email_uses_starttls_and_logs_in(starttls_smtp, tls_certificate):
    controller, mailbox = starttls_smtp
    cert, _ = tls_certificate
    table = email_table(controller.port, username=SMTP_USER, password_env="SMTP_PW", ca_file=str(cert))
    channel = EmailChannel(config_for(table, {"SMTP_PW": SMTP_PASSWORD}).email)
    channel.send(make_alert(22, "CRITICAL", "SYSTEM", "database failing", trade_id=None, strategy=None))
    [mail] = mailbox.messages
    assert mail.over_tls and mail.login == SMTP_USER.encode()
    assert message_from_bytes(mail.content, policy=default_policy)["Subject"].startswith("tmtool CRITICAL SYSTEM:")


def test_email_with_a_wrong_password_says_so_without_the_password(starttls_smtp, tls_certificate):
    controller, mailbox = starttls_smtp
    table = email_table(controller.port, username=SMTP_USER, password_env="SMTP_PW", ca_file=str(tls_certificate[0]))
    channel = EmailChannel(config_for(table, {"SMTP_PW": "wrong-password-xyz"}).email)
    with pytest.raises(DeliveryError) as caught:
        channel.send(make_alert())
    assert "refused the login for 'desk'" in str(caught.value)
    assert "wrong-password-xyz" not in str(caught.value)
    assert mailbox.messages == []


def test_email_refuses_an_untrusted_certificate(starttls_smtp):
    controller, mailbox = starttls_smtp
    channel = EmailChannel(config_for(email_table(controller.port)).email)  # system CAs only
    with pytest.raises(DeliveryError, match="TLS certificate of 127.0.0.1:.* not trusted"):
        channel.send(make_alert())
    assert mailbox.messages == []


def test_email_requiring_starttls_refuses_a_server_without_it(plain_smtp):
    controller, mailbox = plain_smtp
    channel = EmailChannel(config_for(email_table(controller.port)).email)  # starttls on by default
    with pytest.raises(DeliveryError, match="does not offer STARTTLS; refusing to send in clear text"):
        channel.send(make_alert())
    assert mailbox.messages == []


def test_email_to_a_closed_port_is_a_connection_error(refused_url):
    port = int(refused_url.rsplit(":", 1)[1])
    channel = EmailChannel(config_for(email_table(port, starttls=False, timeout=2)).email)
    with pytest.raises(DeliveryError, match=rf"cannot connect to 127.0.0.1:{port}"):
        channel.send(make_alert())


# --------------------------------------------------------------------------- command


DUMP_ENV = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


def test_command_gets_the_alert_in_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    monkeypatch.setenv("KEEP_ME", "visible")
    out = tmp_path / "env.json"
    config = config_for({"command": {"command": [sys.executable, "-c", DUMP_ENV, str(out)]}})
    channel = CommandChannel(config.command, hidden_env=frozenset({"TG_TOKEN"}))
    channel.send(make_alert(31, "CRITICAL", "TRADE", "stop hit RELIANCE at 2,480.05"))
    env = json.loads(out.read_text())
    assert env["TMTOOL_ALERT_ID"] == "31" and env["TMTOOL_ALERT_PRIORITY"] == "CRITICAL"
    assert env["TMTOOL_ALERT_CATEGORY"] == "TRADE" and env["TMTOOL_ALERT_TRADE_ID"] == "12"
    assert env["TMTOOL_ALERT_TEXT"] == "stop hit RELIANCE at 2,480.05"
    assert env["TMTOOL_ALERT_MESSAGE"].startswith("tmtool CRITICAL TRADE #12 momentum: stop hit")
    assert env["KEEP_ME"] == "visible"
    assert "TG_TOKEN" not in env  # tmtool's secrets are not handed to the command


@pytest.mark.parametrize("text", ["$(touch {pwned})", "`touch {pwned}`", "'; touch {pwned}; echo '", '"; touch {pwned} #'])
def test_alert_text_cannot_inject_into_a_shell_command(tmp_path, text):
    pwned, out = tmp_path / "pwned", tmp_path / "text.out"
    text = text.format(pwned=pwned)
    channel = CommandChannel(config_for({"command": {"command": f'printf "%s" "$TMTOOL_ALERT_TEXT" > {shlex.quote(str(out))}'}}).command)
    channel.send(make_alert(text=text))
    assert out.read_text() == text
    assert not pwned.exists()


def test_a_failing_command_reports_its_status_and_stderr():
    channel = CommandChannel(config_for({"command": {"command": "echo 'no display' >&2; exit 3"}}).command)
    with pytest.raises(DeliveryError, match="command exited with status 3: no display"):
        channel.send(make_alert())


def test_a_missing_program_is_a_clear_error():
    channel = CommandChannel(config_for({"command": {"command": ["/nonexistent/notifier"]}}).command)
    with pytest.raises(DeliveryError, match="cannot run '/nonexistent/notifier'"):
        channel.send(make_alert())


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    # The shell starts a long-running child and waits for it.
    command = f"sleep 30 & echo $! > {shlex.quote(str(pid_file))}; wait"
    channel = CommandChannel(config_for({"command": {"command": command, "timeout": 0.3}}).command)
    with pytest.raises(DeliveryError, match="did not finish within 0.3 s; killed"):
        channel.send(make_alert())
    child = int(pid_file.read_text())
    wait_for(lambda: not _running(child), timeout=5, what="the command's child to be killed")
