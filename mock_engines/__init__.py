"""Mock inference engines: one engine core and a thin dialect module per engine."""
