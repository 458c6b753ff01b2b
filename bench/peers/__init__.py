"""The peers users would pick instead of the stack, run beside it (`python -m bench --peers`)."""
