"""intsim against a reference, per tensor, with every mismatch explained: the comparison
(core), the explanation classes (explain), the references (refs) and the HTML report (report).

`intsim.verify` (the package attribute) is the function `verify`; import the modules as
`from intsim.verify import report` or `from intsim.verify.report import render`."""
from __future__ import annotations

from .core import VerifyReport, random_feeds, verify
from .refs import REFERENCES

__all__ = ["REFERENCES", "VerifyReport", "random_feeds", "verify"]
