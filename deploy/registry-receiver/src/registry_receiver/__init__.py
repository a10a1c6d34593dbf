"""Reference receiver of the national registry of digital infrastructure (contract version 1).

Plays the remote system registry-sync pushes to: its own process, its own SQLite storage, the
contract in services/registry-sync/contract/registry-v1.openapi.yaml, plus an admin port that
injects faults (slow, failing, dropped, down) so the sender's delivery guarantees can be tested.
"""
