"""One module per scenario of issue 7; each has `async def run(bench) -> Outcome`."""
