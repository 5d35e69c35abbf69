"""Provider webhooks (contract section 5), from the signed delivery to sessions, recordings and status.

- `signing`: which provider signed a delivery (keys configured or fetched, refetched on rotation).
- `deliveries`: the receiver (record the raw body, enqueue its key), the sweep, replays.
- `state`: what a delivery says and how it merges into stored rows; pure, order-independent.
- `apply`: the queue function that applies recorded deliveries.
- `views`: the sessions and recordings endpoints.

`python -m shared.events` has the operator commands (replay, register-webhook).
"""
