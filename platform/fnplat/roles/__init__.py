"""The composition root: which resources each server role starts, in which order.

- `one_host`: `fnctl up`, gateway and controller in one process (SQLite by default).
- `gateway`: `fnctl server gateway`, the stateless HTTP front door (any number of replicas).
- `controller`: `fnctl server controller`, one per Docker host (node).
- `migrate`: `fnctl server migrate`, brings the store to its schema and exits.

Each role is built from one `Settings` object as a stack of resources (`resources.ResourceStack`):
started in order, closed in reverse, failures gathered, so a half-started process never leaks.
"""
