"""syncd: keeps every marketplace's stock number true, in moments, without overselling.

Two stages joined by Kafka topics. The compute stage (``syncd.compute``): input topics
-> ``contract`` (decode) -> ``core.orders`` / ``core.ledger`` (state) -> ``core.policy``
(quantity) -> ``<p>.desired``. The publish stage (``syncd.publish``): ``<p>.desired`` ->
per-account send queues -> channel APIs. One loop runs back: campaign holds the publish
stage learns from a platform go to the compute stage through ``<p>.holds``.
docs/architecture.md maps every module.
"""

__version__ = "0.1.0"
