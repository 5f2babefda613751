"""The small web app behind the links in every email: unsubscribe, confirm, manage, view,
vote; and, when the operator turns it on, a public subscribe form.

Routes (all under `web.base_url`):

    GET  /                 what this service is; with `web.public_subscribe`, the subscribe
                           form (address, one topic, time zone), else "subscriptions are
                           managed by the operator". Never a 404
    GET  /subscribe        the same form; 404 while `web.public_subscribe` is off
    POST /subscribe        ask for a subscription: checked like `digest subscribe`, always
                           pending plus a confirmation email, rate-limited per address and
                           per client, a honeypot field, and the same "check your inbox"
                           page whether the address was known or not (`web.subscribe`)
    GET  /u/{token}        which address would be unsubscribed, and a button
    POST /u/{token}        unsubscribe; also the RFC 8058 one-click POST that mail
                           providers send (`List-Unsubscribe=One-Click`)
    GET  /confirm/{token}  confirm page with a button (double opt-in)
    POST /confirm/{token}  confirm a pending subscriber
    GET  /m/{token}        manage page: topics, schedule, pause, votes
    POST /m/{token}        one change from that page, then back to it (303); also
                           `action=resubscribe`, the "Subscribe again" button that the
                           unsubscribed pages post here (active again, topics and
                           schedule kept, no re-confirmation: the token proves the address)
    GET  /d/{token}        "view in browser": a digest as sent, re-rendered
    GET  /more/{token}     "More like this" under a paper: its title, its topic, a button
    POST /more/{token}     record that vote for the topic that brought the paper, and say
                           what changes; with `undo=1`, take the vote back
    GET  /less/{token}     the same for "Less like this"
    POST /less/{token}
    GET  /healthz          for monitors: 200 when the database answers, with the
                           warnings `digest status` gives

Why there are no logins, cookies or CSRF tokens: every URL carries an HMAC
token (`digest.links`) that only the recipient of our email has, bound to one
purpose, one row and one address (a vote link: one vote, one digest, one paper
of it and one address). The token *is* the credential, and a
cross-site page cannot forge a request to a URL it does not know. RFC 8058
forbids anything more on the one-click POST anyway (no cookies, no redirect).
A GET never changes anything, because link scanners prefetch every link in a
message. Any token we did not make (unknown, forged, for another purpose, or
for a deleted subscriber; a vote link also for a paper that is not in its
digest or whose topic is gone) gets the same 404 page, so the app cannot be used to
find out which addresses are subscribed.

Pages are Jinja2 templates under `templates/web/` with autoescaping on; the
database work of each request runs in a worker thread (`run_in_threadpool`),
the one place where this async app meets the synchronous store.

Every route but the public form's takes a token; that one takes none, so it
has protections of its own, explained in `digest.web.subscribe`.

Modules:
    app         create_app, the handlers of the token routes, the security headers
    subscribe   the front page and the public subscribe form, its rate limits
    forms       reading small POSTed forms; the time zone list of the pickers

May import the stages (subscribers, outbox, health) and everything below them;
nothing imports it but the CLI's `digest serve`.
"""

from digest.web.app import create_app

__all__ = ["create_app"]
