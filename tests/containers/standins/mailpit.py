#!/usr/bin/env python3
"""Stand-in for Mailpit in the development stack's container test.

`mailpit` accepts every message on SMTP port 1025 (any or no AUTH, no TLS)
and keeps it in memory; HTTP on 8025 answers /readyz and lists the messages
at /api/v1/messages (count and subjects). `mailpit readyz` exits 0 when that
HTTP endpoint answers, like the real binary's healthcheck command.
"""
import asyncore
import email
import json
import sys
import threading
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import smtpd

MESSAGES = []


class Catcher(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        msg = email.message_from_bytes(data if isinstance(data, bytes) else data.encode())
        MESSAGES.append({"from": mailfrom, "to": rcpttos, "subject": msg.get("Subject", "")})


class Channel(smtpd.SMTPChannel):
    # Accept AUTH of any kind, as MP_SMTP_AUTH_ACCEPT_ANY does.
    def smtp_AUTH(self, arg):
        self.push("235 2.7.0 Authentication successful")


Catcher.channel_class = Channel


class Http(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/readyz":
            body = b"ok"
        elif self.path.startswith("/api/v1/messages"):
            body = json.dumps({"total": len(MESSAGES), "messages": MESSAGES}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    if sys.argv[1:] == ["readyz"]:
        try:
            with urllib.request.urlopen("http://127.0.0.1:8025/readyz", timeout=3) as r:
                sys.exit(0 if r.status == 200 else 1)
        except OSError:
            sys.exit(1)
    Catcher(("0.0.0.0", 1025), None, decode_data=False)
    server = ThreadingHTTPServer(("0.0.0.0", 8025), Http)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("mailpit stand-in: SMTP on 1025, HTTP on 8025", flush=True)
    asyncore.loop()


if __name__ == "__main__":
    main()
