"""One module per scenario (bench/README.md); each has `async def run(bench) -> Outcome`."""
