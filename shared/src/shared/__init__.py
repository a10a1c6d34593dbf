"""The kernel all ICT Cadastre services share: event contracts, store, outbox, projectors, auth."""
