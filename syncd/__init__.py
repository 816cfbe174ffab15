"""syncd: keeps every marketplace's stock number true, in moments, without overselling.

Data flows one way: input topics -> ``contract`` (decode) -> ``orders`` / ``ledger``
(state) -> ``policy`` (quantity) -> desired-quantity topic -> publisher -> channel APIs.
"""

__version__ = "0.1.0"
