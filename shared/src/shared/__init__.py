"""The kernel every ICT Cadastre service shares: event contracts, store, outbox, projectors and auth."""
