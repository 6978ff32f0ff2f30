"""The log contract: schema, atomic Parquet I/O, validation, simulation of logging policies.

Needs numpy, pandas and pyarrow only. See ``logging_data.schema`` for the contract itself.
"""

from .io import Log, LogError, create_log, open_log, read_table, require_valid_log, to_arrow, validate_log
from .schema import (
    ALIGNMENT_METRICS,
    ARM_KINDS,
    SCHEMA_VERSION,
    SPLITS,
    TABLES,
    Arm,
    Column,
    LogMetadata,
    RewardDefinition,
    arrow_schema,
    columns,
)
from .validate import LogValidationError, Problem, ValidationReport, check_frame, check_query_agreement
from .describe import describe_log

__all__ = [
    "ALIGNMENT_METRICS", "ARM_KINDS", "SCHEMA_VERSION", "SPLITS", "TABLES",
    "Arm", "Column", "Log", "LogError", "LogMetadata", "LogValidationError", "Problem",
    "RewardDefinition", "ValidationReport", "arrow_schema", "check_frame", "check_query_agreement",
    "columns", "create_log", "describe_log", "open_log", "read_table", "require_valid_log", "to_arrow", "validate_log",
]
