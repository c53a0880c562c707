"""The stages of one SMTP session, in the order `postmaster.checks.smtp.session` walks them.

Each stage is a function of the shared `SessionState`: it records a :class:`Stage` when it succeeds and raises
what `SessionState.failed` returns when it does not, so the walk stops at the first failure.

* `connection`: resolve the host, open a TCP connection to the first address that answers.
* `greeting`: hand the socket to aiosmtplib and read the banner (after the handshake, with implicit TLS);
  EHLO, or HELO for a server from before ESMTP.
* `encryption`: TLS: the context that records the handshake, STARTTLS, the facts about the certificate
  and cipher, and the sniff that tells an implicit-TLS port after a silent greeting.
* `authentication`: AUTH PLAIN, LOGIN and CRAM-MD5 with a password; XOAUTH2 with a token fetched first.
* `envelope`: MAIL FROM and RCPT TO (a probe stops there), DATA for the test message.
* `closing`: RSET and QUIT, which never fail a probe.
"""
