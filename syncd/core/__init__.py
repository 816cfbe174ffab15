"""The pure domain: events, SKUs, orders, the ledger, the catalog, the quantity policy,
reconciliation rules, manual actions and the error-table rules. No asyncio, aiohttp or
aiokafka, no clock: every function takes the time it needs as an argument."""
