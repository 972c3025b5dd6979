"""Plain typed values of the trading domain: no I/O, no clocks, no asyncio."""
