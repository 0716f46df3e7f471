"""The base of every system's records: what activities return and workflows reason over.

Pure pydantic, safe in workflow code. Each system module in the catalogue's ``activities``
package defines its records on this base beside the activities that return them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """A record as a system of record returns it. Unknown fields are ignored, so a new column
    upstream does not break a case; text fields hold whatever people typed, returned verbatim:
    data, never instructions."""

    model_config = ConfigDict(extra="ignore")
