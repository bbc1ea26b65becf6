"""mailflow: a micro mentoring programme run by email and calendar.

The flow of one message, and where each step lives:

    mailboxes (Maildir | IMAP)  -> engine.py reads it
    intake/ (text, form, budget) -> route.py decides what it is
    workflow.py                  -> the request's state machine decides what happens
    match.py, slots.py           -> who is asked, when sessions go
    compose.py, render.py, invite.py -> the messages to send
    store.py                     -> state and outbox committed atomically
    senders (Maildir | SMTP)     -> engine.py delivers, then files the message away
"""

__version__ = "0.1.0"
