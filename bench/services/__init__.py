"""Processes the harness starts and talks to: ZooKeeper, brokers, member hosts, proxies, and what they share."""
