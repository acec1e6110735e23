"""Typed errors; each carries the context a person needs to fix the cause."""


class SinkdnsError(Exception):
    """Base of every error sinkdns raises on purpose."""


class ConfigError(SinkdnsError):
    """The configuration is unusable; `problems` lists every problem found, each naming file and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

