"""One live event of each log kind, in the BETH schema.

Sensors produce these, transports carry them (`to_record`/`from_record` give plain JSON-able dicts),
the collector and `beth sense` write them with `beth.data.write`, the live detector encodes them with
`beth.features`. Field names are the BETH column names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from beth.schema import DNS_COLUMNS, DNS_TIMESTAMP_FORMAT, PROCESS_COLUMNS


@dataclass(slots=True)
class ProcessEvent:
    """A process-log row: one Tracee-style event (syscall, LSM-like hook or scheduler event)."""

    timestamp: float  # seconds since boot, microsecond precision
    processId: int
    threadId: int
    parentProcessId: int
    userId: int
    mountNamespace: int
    processName: str
    hostName: str
    eventId: int
    eventName: str
    stackAddresses: list[int] = field(default_factory=list)
    argsNum: int = 0
    returnValue: int = 0
    args: list[dict[str, Any]] = field(default_factory=list)  # [{'name', 'type', 'value'}, ...]
    sus: int = 0
    evil: int = 0

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ProcessEvent:
        return cls(**{f.name: record[f.name] for f in fields(cls)})

    def csv_fields(self) -> list[str]:
        """The row as BETH CSV text fields, in `PROCESS_COLUMNS` order (Kaggle formatting)."""
        return [
            repr(round(self.timestamp, 6)),
            str(self.processId),
            str(self.threadId),
            str(self.parentProcessId),
            str(self.userId),
            str(self.mountNamespace),
            self.processName,
            self.hostName,
            str(self.eventId),
            self.eventName,
            repr(self.stackAddresses),
            str(self.argsNum),
            str(self.returnValue),
            repr(self.args),
            str(self.sus),
            str(self.evil),
        ]


@dataclass(slots=True)
class DnsEvent:
    """A DNS-log row: one DNS query or response packet as the BETH DNS sensor logged it."""

    Timestamp: datetime  # UTC, written with second precision
    SourceIP: str
    DestinationIP: str
    DnsQuery: str
    DnsAnswer: list[str] = field(default_factory=list)
    DnsAnswerTTL: list[str] = field(default_factory=list)
    DnsQueryNames: str = ""
    DnsQueryClass: list[str] = field(default_factory=list)
    DnsQueryType: list[str] = field(default_factory=list)
    NumberOfAnswers: int = 0
    DnsResponseCode: int = 0
    DnsOpCode: int = 0
    SensorId: str = ""
    sus: int = 0
    evil: int = 0

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["Timestamp"] = self.Timestamp.isoformat()
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DnsEvent:
        values = {f.name: record[f.name] for f in fields(cls)}
        values["Timestamp"] = datetime.fromisoformat(values["Timestamp"]).astimezone(UTC)
        return cls(**values)

    def csv_fields(self) -> list[str]:
        """The row as BETH CSV text fields, in `DNS_COLUMNS` order (empty lists as empty fields)."""

        def lst(values: list[str]) -> str:
            return repr(values) if values else ""

        return [
            self.Timestamp.astimezone(UTC).strftime(DNS_TIMESTAMP_FORMAT),
            self.SourceIP,
            self.DestinationIP,
            self.DnsQuery,
            lst(self.DnsAnswer),
            lst(self.DnsAnswerTTL),
            self.DnsQueryNames,
            lst(self.DnsQueryClass),
            lst(self.DnsQueryType),
            str(self.NumberOfAnswers),
            str(self.DnsResponseCode),
            str(self.DnsOpCode),
            self.SensorId,
            str(self.sus),
            str(self.evil),
        ]


assert tuple(f.name for f in fields(ProcessEvent)) == PROCESS_COLUMNS
assert tuple(f.name for f in fields(DnsEvent)) == DNS_COLUMNS
