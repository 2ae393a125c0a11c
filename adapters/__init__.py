"""Worker adapters: the contract (``adapters.api``), the shared HTTP layer (``adapters.http_util``),
one module per engine, the fault-injecting mock adapter and the adapter host."""
