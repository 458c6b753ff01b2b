"""A real Redis Cluster from Debian's redis-server: three masters, three replicas, free ports.

Each node gets its own data folder and an explicit cluster bus port (free ports are high, and
the default bus port, port + 10000, may not exist). `redis-cli --cluster create` assigns the
slots and the replicas; the fixture is ready once every node reports `cluster_state:ok`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from tests.support.servers import Server, free_port, start, tcp_open, wait_until

# Short, so a killed master is replaced within seconds (the default is 15 s).
NODE_TIMEOUT_MS = 1000


@dataclass
class Cluster:
    nodes: list[Server]

    @property
    def url(self) -> str:
        """REDIS_URL for a cluster client: any one node; the client learns the others."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, decode_responses=True)

    def role(self, node: Server) -> str:
        info = redis.Redis(port=node.port, decode_responses=True).info("replication")
        return str(info["role"])

    def master_of(self, key: str) -> Server:
        """The node that holds `key`'s slot now."""
        client = self.client()
        try:
            port = client.get_node_from_key(key).port  # type: ignore[no-untyped-call]
        finally:
            client.close()
        return next(node for node in self.nodes if node.port == port)

    def healthy(self) -> bool:
        """Every live node sees all slots served."""
        try:
            return all(state_ok(node) for node in self.nodes if node.proc.poll() is None)
        except redis.RedisError:
            return False


def state_ok(node: Server) -> bool:
    info = redis.Redis(port=node.port, decode_responses=True).cluster("info")
    return bool(info["cluster_state"] == "ok")


def start_node() -> Server:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (run ./stack test, which installs it)")
    port, bus = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="redis-cluster-")
    cmd = [
        exe,
        *["--port", str(port), "--bind", "127.0.0.1", "--dir", data],
        *["--cluster-enabled", "yes", "--cluster-port", str(bus)],
        *["--cluster-config-file", "nodes.conf"],
        *["--cluster-node-timeout", str(NODE_TIMEOUT_MS)],
        *["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
    ]
    return start("redis-cluster-node", cmd, port, tcp_open(port))


@contextlib.contextmanager
def redis_cluster() -> Iterator[Cluster]:
    nodes: list[Server] = []
    try:
        for _ in range(6):
            nodes.append(start_node())
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *[f"127.0.0.1:{node.port}" for node in nodes],
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        cluster = Cluster(nodes)

        def ready() -> bool:
            try:
                replicas = sum(cluster.role(n) == "slave" for n in nodes)
            except redis.RedisError:
                return False
            return cluster.healthy() and replicas == 3

        wait_until(ready, 60, "redis cluster")
        yield cluster
    finally:
        for node in nodes:
            node.stop()
