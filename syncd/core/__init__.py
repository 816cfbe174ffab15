"""The pure domain: events, keys, SKUs, orders, the ledger, the catalog, the quantity
policy and its rule layers, desired quantities, reconciliation rules, manual actions and
the error table's rules and classification. No asyncio, aiohttp or aiokafka, no clock:
every function takes the time it needs as an argument (import-linter's ``pure-core``
contract in pyproject.toml keeps it so)."""
