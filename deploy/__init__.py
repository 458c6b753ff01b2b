"""Deployment files and the tools that check them."""
