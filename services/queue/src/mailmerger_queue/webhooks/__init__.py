"""Outgoing webhooks (Standard Webhooks): users' endpoints, events staged with the changes they
report, and the courier that delivers them, signed, retried with backoff, logged per attempt.

- ``events``: ``stage_message_events`` / ``stage_event``, called inside the transaction of the
  state change (the deliveries are its outbox);
- ``courier``: ``run_courier`` (or ``Courier.run``), a background loop any number of replicas run;
- ``endpoints``: the ``Webhooks`` use cases behind ``/v1/webhooks``;
- ``domain`` (event types, secrets, retry rule), ``sealing`` (secrets at rest), ``outcomes``
  (writing what came of each attempt), ``schemas`` (the API's shapes).
"""
